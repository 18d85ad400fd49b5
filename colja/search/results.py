"""What a search returns: arrays inside, ``Hit`` objects at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``score`` is the raw MaxSim score (Σ over query vectors of the best dot
    product); ``normalized_score`` divides it by the number of query vectors,
    giving a value in [-1, 1] that is comparable across queries. Passages
    split from a longer document carry its id (``parent_id``) and their
    character ``span`` in it.
    """

    doc_id: str
    score: float
    rank: int
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    normalized_score: float | None = None
    pid: int = -1
    #: the document this passage was split from (``Index.build(..., split=True)``), else None
    parent_id: str | None = None
    #: the passage's ``(start, end)`` characters in its parent document, else None
    span: tuple[int, int] | None = None


class SearchResults(NamedTuple):
    """Top-k of several queries: ``scores`` float32 and ``pids`` int64, both ``[n_queries, k]``.

    Missing hits (fewer than k passages) are padded with ``-inf`` / ``-1``.
    """

    scores: np.ndarray
    pids: np.ndarray

    @classmethod
    def merge(cls, parts: list["SearchResults"]) -> "SearchResults":
        if not parts:
            return cls(np.empty((0, 0), np.float32), np.empty((0, 0), np.int64))
        k = max(p.scores.shape[1] for p in parts)
        scores = np.concatenate([_pad(p.scores, k, -np.inf) for p in parts])
        pids = np.concatenate([_pad(p.pids, k, -1) for p in parts])
        return cls(scores.astype(np.float32), pids.astype(np.int64))


def _pad(a: np.ndarray, k: int, value) -> np.ndarray:
    if a.shape[1] == k:
        return a
    out = np.full((a.shape[0], k), value, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out
