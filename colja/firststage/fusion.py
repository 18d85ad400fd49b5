"""What every first stage returns and promises, and how several rankings are fused.

A first stage turns a query into candidate passage ids for the exact MaxSim
rerank. Each one (:class:`~colja.firststage.bm25.BM25Retriever`,
:class:`~colja.firststage.dense.DenseRetriever`,
:class:`~colja.firststage.static.StaticRetriever`) follows :class:`FirstStage`;
``hybrid`` search fuses their rankings (and PLAID's) with
:func:`reciprocal_rank_fusion`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

# The constant of Cormack, Clarke & Buettcher (SIGIR 2009), "Reciprocal rank fusion outperforms
# Condorcet and individual rank learning methods": a hit at rank r adds 1 / (60 + r).
RRF_K = 60


class Ranking(NamedTuple):
    """Top hits of one query: ``pids`` int64 ``[k']`` and ``scores`` float32 ``[k']``, best first.

    ``k' <= k``: fewer when the collection is smaller than ``k`` or (BM25) when
    fewer passages match at all. Unpacks as ``pids, scores = hits``.
    """

    pids: np.ndarray
    scores: np.ndarray


@runtime_checkable
class FirstStage(Protocol):
    """The interface an index uses to build, extend, search, save and load a first stage.

    * ``name``: ``"bm25"``, ``"dense"`` or ``"static"`` (the ``first_stage=`` value).
    * ``rebuilds_on_add``: ``True`` when :meth:`add` needs the texts already
      indexed (BM25: its weights depend on every passage) and rebuilds.
    * ``build(texts, *, show_progress=None, **settings)`` (classmethod): a new
      first stage over ``texts``; passage ``i`` gets pid ``i``.
    * ``add(texts, *, existing_texts=None, show_progress=None)``: append; the
      new passages get pids ``len(self) ..``, which are returned (int64).
    * ``search(query, k)`` -> :class:`Ranking`; ``search_batch(queries, k)`` ->
      ``list[Ranking]``. ``k`` larger than the collection is fine.
    * ``save(folder, *, overwrite=True)`` writes JSON + ``.npy`` / faiss files
      only (no pickle), atomically; ``load(folder, mmap=False)`` (classmethod)
      reads them back. :func:`colja.firststage.load_first_stage` picks the
      class from the folder.
    """

    name: ClassVar[str]
    rebuilds_on_add: ClassVar[bool]

    @classmethod
    def build(cls, texts: Sequence[str], *, show_progress: bool | None = None, **settings: Any) -> "FirstStage": ...

    def add(self, texts: Sequence[str], *, existing_texts: Sequence[str] | None = None,
            show_progress: bool | None = None) -> np.ndarray: ...

    def search(self, query: str, k: int = 10) -> Any: ...

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[Any]: ...

    def save(self, folder: str | os.PathLike, *, overwrite: bool = True) -> Path: ...

    @classmethod
    def load(cls, folder: str | os.PathLike, mmap: bool = False) -> "FirstStage": ...

    def __len__(self) -> int: ...


def reciprocal_rank_fusion(rankings: Sequence[Any], k: int = RRF_K, weights: Sequence[float] | None = None,
                           limit: int | None = None) -> Ranking:
    """Fuse ranked pid lists: ``score(p) = sum_i weights[i] / (k + rank_i(p))`` (ranks from 1).

    ``rankings``: one entry per retriever, best first — an int array ``[n_i]``
    of pids, or anything with a ``pids`` attribute (:class:`Ranking`,
    ``Ranking``). A pid absent from a ranking gets nothing from it; ``-1``
    entries (padding) are skipped and a repeated pid counts at its first
    (best) rank only. ``k``: the RRF constant (60, Cormack et al. 2009);
    larger values flatten the difference between top and lower ranks.
    ``weights``: one non-negative number per ranking (default all 1).
    ``limit``: keep only the best ``limit`` pids (default all).

    Returns :class:`Ranking` with pids int64 and scores float32, best first.
    Deterministic: each pid's contributions are summed smallest first, so
    pids with the same multiset of contributions get bit-identical scores,
    and equal scores are ordered by the smaller pid.

    >>> reciprocal_rank_fusion([[3, 1], [1, 2]])
    Ranking(pids=array([1, 3, 2]), scores=array([0.03252247, 0.01639344, 0.01612903], dtype=float32))
    """
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not k >= 0:
        raise ValueError(f"k must be a non-negative number (the RRF constant, usually 60), got {k!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    if isinstance(rankings, np.ndarray) or not isinstance(rankings, Sequence):
        raise TypeError("rankings must be a list of pid arrays (one per retriever), "
                        f"got {type(rankings).__name__}")
    lists = [_pids_of(r, i) for i, r in enumerate(rankings)]
    if weights is None:
        w = np.ones(len(lists), dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape[0] != len(lists):
            raise ValueError(f"weights has {w.shape[0]} entries for {len(lists)} rankings; give one per ranking")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}")

    all_pids, contrib = [], []
    for pids, weight in zip(lists, w):
        ranks = np.arange(1, pids.shape[0] + 1, dtype=np.float64)
        keep = pids >= 0
        pids, ranks = pids[keep], ranks[keep]
        _, first = np.unique(pids, return_index=True)  # first (best) occurrence of each pid
        first.sort()
        all_pids.append(pids[first])
        contrib.append(weight / (k + ranks[first]))
    if not all_pids or sum(p.size for p in all_pids) == 0:
        return Ranking(np.empty(0, np.int64), np.empty(0, np.float32))
    pids = np.concatenate(all_pids)
    contrib = np.concatenate(contrib)
    order = np.lexsort((contrib, pids))  # by pid, then contribution ascending
    pids, contrib = pids[order], contrib[order]
    starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
    fused_pids = pids[starts]
    fused = np.add.reduceat(contrib, starts)
    best = np.lexsort((fused_pids, -fused))
    if limit is not None:
        best = best[: int(limit)]
    return Ranking(fused_pids[best].astype(np.int64), fused[best].astype(np.float32))


def _pids_of(ranking: Any, i: int) -> np.ndarray:
    pids = getattr(ranking, "pids", ranking)
    arr = np.asarray(pids)
    if arr.ndim != 1:
        raise ValueError(f"rankings[{i}] must be a 1-d array of pids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"rankings[{i}] must hold integer pids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


__all__ = ["RRF_K", "FirstStage", "Ranking", "reciprocal_rank_fusion"]
