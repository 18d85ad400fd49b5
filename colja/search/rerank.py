"""Reranking candidate passages with exact MaxSim — for RAG pipelines that already have candidates."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from colja import kernels
from colja._validation import check_texts
from colja.model.encoder import Encoder, resolve_model
from colja.search.results import Hit


def pack_passages(docs: Sequence[torch.Tensor], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-passage vectors: ``(D [sum n_i, dim], doc_offsets int64 [n+1])``."""
    offsets = kernels.lengths_to_offsets([d.shape[0] for d in docs])
    D = torch.cat(list(docs)) if docs else torch.empty((0, dim))
    return D, offsets


def score_passages(Q: torch.Tensor, D: torch.Tensor, doc_offsets: torch.Tensor,
                   pids: torch.Tensor | None = None) -> torch.Tensor:
    """Exact MaxSim of one query ``[Lq, dim]`` against passages (all, or ``pids``): float32."""
    q = kernels.query_rows(Q.float()).contiguous()
    n = int(doc_offsets.numel() - 1) if pids is None else int(pids.numel())
    if q.shape[0] == 0 or n == 0:
        return torch.zeros(n, dtype=torch.float32)
    return kernels.maxsim_dense(q, D, doc_offsets, pids)


def rerank(query: str, passages: Sequence[str], *, k: int | None = None, model: Encoder | str | None = None,
           doc_ids: Sequence[str] | None = None, batch_size: int = 32) -> list[Hit]:
    """Sort ``passages`` by exact MaxSim against ``query``, best first.

    Args:
        query: the question.
        passages: candidate texts (from BM25, a vector database, …).
        k: keep the best ``k`` (default: all).
        model: a loaded :class:`~colja.ColBERT`, a folder or a hub id
            (default ``answerdotai/JaColBERTv2.5``).
        doc_ids: one id per passage, returned as ``Hit.doc_id`` (default:
            the passage's position in ``passages`` as a string).
    Returns:
        :class:`~colja.Hit` list: ``pid`` is the position in ``passages``;
        raw and normalised score, text, rank.
    """
    return rerank_batch([query], [passages], k=k, model=model,
                        doc_ids=None if doc_ids is None else [doc_ids], batch_size=batch_size)[0]


def rerank_batch(queries: Sequence[str], passages: Sequence[Sequence[str]], *, k: int | None = None,
                 model: Encoder | str | None = None, doc_ids: Sequence[Sequence[str]] | None = None,
                 batch_size: int = 32) -> list[list[Hit]]:
    """``rerank`` for several queries, each with its own candidate list; encoding is batched."""
    queries = check_texts(queries, what="queries")
    if not isinstance(passages, (list, tuple)) or len(passages) != len(queries):
        raise ValueError(f"passages must be a list with one candidate list per query ({len(queries)}), "
                         f"got {type(passages).__name__} of length {len(passages) if hasattr(passages, '__len__') else '?'}")
    lists = [check_texts(p, what=f"passages[{i}]") for i, p in enumerate(passages)]
    ids = _check_ids(doc_ids, lists)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
        raise ValueError(f"k must be a positive int or None, got {k!r}")
    encoder = resolve_model(model)
    Q = encoder.encode_queries(queries, batch_size=batch_size)
    # encode every candidate once, even when candidate lists overlap
    unique = list(dict.fromkeys(t for lst in lists for t in lst))
    vectors = dict(zip(unique, encoder.encode_documents(unique, batch_size=batch_size))) if unique else {}
    out = []
    for qi, lst in enumerate(lists):
        if not lst:
            out.append([])
            continue
        D, offsets = pack_passages([vectors[t] for t in lst], Q.shape[-1])
        scores = score_passages(Q[qi], D, offsets)
        top_scores, top = kernels.top_k(scores, torch.arange(len(lst)), len(lst) if k is None else k)
        n_q = kernels.query_length(Q[qi])
        out.append([Hit(doc_id=ids[qi][i] if ids is not None else str(i), score=float(s), rank=r, text=lst[i],
                        normalized_score=float(s) / n_q if n_q else None, pid=i)
                    for r, (s, i) in enumerate(zip(top_scores.tolist(), top.tolist()), start=1)])
    return out


def _check_ids(doc_ids: Any, lists: list[list[str]]) -> list[list[str]] | None:
    if doc_ids is None:
        return None
    if not isinstance(doc_ids, (list, tuple)) or len(doc_ids) != len(lists):
        raise ValueError(f"doc_ids must hold one id list per query ({len(lists)})")
    out = []
    for qi, (ids, lst) in enumerate(zip(doc_ids, lists)):
        ids = check_texts(ids, what=f"doc_ids[{qi}]")
        if len(ids) != len(lst):
            raise ValueError(f"doc_ids[{qi}] has {len(ids)} ids for {len(lst)} passages; give one id per passage")
        out.append(ids)
    return out


__all__ = ["rerank", "rerank_batch", "pack_passages", "score_passages"]
