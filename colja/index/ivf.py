"""Inverted file: for each centroid, the sorted unique passage ids with a vector there.

Content is that of the reference's ``ivf.pid.pt``: ``ivf`` int32 (the pid lists
of centroids 0, 1, ... concatenated) and ``ivf_lengths`` int64 ``[C]``. (The
reference's tensor carries trailing zero padding past ``ivf_lengths.sum()``;
colja stores exactly ``ivf_lengths.sum()`` entries.)

Built incrementally, one chunk of passages at a time, so the codes of the
whole collection never need to be in memory together.
"""

from __future__ import annotations

import numpy as np


def chunk_pairs(codes: np.ndarray, doclens: np.ndarray, pid_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(code, pid)`` pairs of one chunk, sorted by code then pid.

    ``codes``: int32 ``[sum(doclens)]``; ``doclens``: ``[n]`` vectors per passage
    of the chunk, whose first passage id is ``pid_offset``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    doclens = np.asarray(doclens, dtype=np.int64)
    n = len(doclens)
    if codes.size == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    local = np.repeat(np.arange(n, dtype=np.int64), doclens)
    keys = np.unique(codes * n + local)
    return (keys // n).astype(np.int32), (keys % n + pid_offset).astype(np.int32)


class IVFBuilder:
    """Collect per-chunk ``(code, pid)`` pairs (chunks in ascending pid order), then ``finish``."""

    def __init__(self, num_centroids: int):
        self.num_centroids = int(num_centroids)
        self._codes: list[np.ndarray] = []
        self._pids: list[np.ndarray] = []
        self._next_pid = 0

    def add(self, codes: np.ndarray, doclens: np.ndarray, pid_offset: int) -> None:
        if pid_offset < self._next_pid:
            raise ValueError(f"chunks must come in ascending pid order (got offset {pid_offset} after {self._next_pid})")
        c, p = chunk_pairs(codes, doclens, pid_offset)
        if c.size and (c.min() < 0 or c.max() >= self.num_centroids):
            raise ValueError(f"codes must be in [0, {self.num_centroids}), got [{c.min()}, {c.max()}]")
        self._codes.append(c)
        self._pids.append(p)
        self._next_pid = pid_offset + len(doclens)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ivf int32 [sum(lengths)], ivf_lengths int64 [C])``."""
        codes = np.concatenate(self._codes) if self._codes else np.empty(0, np.int32)
        pids = np.concatenate(self._pids) if self._pids else np.empty(0, np.int32)
        # a stable sort by code keeps pids ascending: chunks arrive in pid order
        order = np.argsort(codes, kind="stable")
        ivf = pids[order].astype(np.int32, copy=False)
        lengths = np.bincount(codes, minlength=self.num_centroids).astype(np.int64)
        self._codes, self._pids = [], []
        return ivf, lengths


def build_ivf(codes: np.ndarray, doclens: np.ndarray, num_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """IVF of a whole collection in one call: ``(ivf int32, ivf_lengths int64 [C])``."""
    builder = IVFBuilder(num_centroids)
    builder.add(codes, doclens, 0)
    return builder.finish()


def ivf_offsets(ivf_lengths: np.ndarray) -> np.ndarray:
    """int64 ``[C+1]`` start of each centroid's list in ``ivf``."""
    out = np.zeros(len(ivf_lengths) + 1, dtype=np.int64)
    np.cumsum(ivf_lengths, out=out[1:])
    return out
