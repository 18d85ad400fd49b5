"""Reranking candidate passages with exact MaxSim — for RAG pipelines that already have candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from colja import kernels
from colja._validation import check_texts

if TYPE_CHECKING:  # pragma: no cover
    from colja.model.colbert import ColBERT

DEFAULT_MODEL = "answerdotai/JaColBERTv2.5"


@dataclass(frozen=True)
class RerankHit:
    """One reranked passage: its position in the input list, scores and text.

    ``score`` is raw MaxSim (Σ over query vectors of the best dot product);
    ``normalized_score`` divides it by the number of query vectors (in [-1, 1]).
    """

    index: int
    score: float
    normalized_score: float
    text: str
    rank: int


def resolve_model(model: "ColBERT | str | None") -> "ColBERT":
    from colja.model.colbert import ColBERT

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, ColBERT):
        return model
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        return ColBERT.from_pretrained(model)
    raise TypeError(f"model must be a ColBERT, a folder or a hub id, got {type(model).__name__}")


def flatten(docs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-passage vectors: ``(D [sum n_i, dim], doc_offsets int64 [n+1])``."""
    offsets = torch.zeros(len(docs) + 1, dtype=torch.long)
    if docs:
        offsets[1:] = torch.tensor([d.shape[0] for d in docs]).cumsum(0)
    dim = docs[0].shape[1] if docs else 0
    D = torch.cat(docs) if docs else torch.empty((0, dim))
    return D, offsets


def score_passages(Q: torch.Tensor, D: torch.Tensor, doc_offsets: torch.Tensor) -> torch.Tensor:
    """Exact MaxSim of one query ``[Lq, dim]`` against every passage: float32 [n]."""
    Q = Q[Q.abs().sum(1) > 0].float().contiguous()
    return kernels.maxsim_dense(Q, D, doc_offsets)


def rank_scores(scores: torch.Tensor, k: int | None) -> list[int]:
    """Positions by descending score, ties by position; the first ``k``."""
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    return order if k is None else order[:k]


def rerank(query: str, passages: list[str], *, k: int | None = None, model: "ColBERT | str | None" = None,
           batch_size: int = 32) -> list[RerankHit]:
    """Sort ``passages`` by exact MaxSim against ``query``, best first.

    Args:
        query: the question.
        passages: candidate texts (from BM25, a vector database, …).
        k: keep the best ``k`` (default: all).
        model: a loaded :class:`~colja.ColBERT`, a folder or a hub id
            (default ``answerdotai/JaColBERTv2.5``).
    Returns:
        :class:`RerankHit` list: ``index`` into ``passages``, raw and
        normalised score, text, rank.
    """
    return rerank_batch([query], [passages], k=k, model=model, batch_size=batch_size)[0]


def rerank_batch(queries: list[str], passages: list[list[str]], *, k: int | None = None,
                 model: "ColBERT | str | None" = None, batch_size: int = 32) -> list[list[RerankHit]]:
    """``rerank`` for several queries, each with its own candidate list; encoding is batched."""
    queries = check_texts(queries, what="queries")
    if not isinstance(passages, (list, tuple)) or len(passages) != len(queries):
        raise ValueError(f"passages must be a list with one candidate list per query ({len(queries)}), "
                         f"got {type(passages).__name__} of length {len(passages) if hasattr(passages, '__len__') else '?'}")
    lists = [check_texts(p, what=f"passages[{i}]") for i, p in enumerate(passages)]
    if k is not None and (not isinstance(k, int) or k <= 0):
        raise ValueError(f"k must be a positive int or None, got {k!r}")
    model = resolve_model(model)
    Q = model.encode_queries(queries, batch_size=batch_size)
    # encode every candidate once, even when candidate lists overlap
    unique = list(dict.fromkeys(t for lst in lists for t in lst))
    vectors = dict(zip(unique, model.encode_documents(unique, batch_size=batch_size))) if unique else {}
    out = []
    for qi, lst in enumerate(lists):
        if not lst:
            out.append([])
            continue
        D, offsets = flatten([vectors[t] for t in lst])
        scores = score_passages(Q[qi], D, offsets)
        n_q = int((Q[qi].abs().sum(1) > 0).sum())
        out.append([RerankHit(index=i, score=float(scores[i]), normalized_score=float(scores[i]) / n_q,
                              text=lst[i], rank=r) for r, i in enumerate(rank_scores(scores, k), start=1)])
    return out
