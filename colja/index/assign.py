"""Assigning vectors to centroids: exact argmax, or a faster two-level search.

``assign_exact`` is the reference rule, ``code = argmax(centroids @ emb)``,
computed in float32 blocks. It costs ``n * C * dim`` multiply-adds: for 1.2M
vectors and 16,384 centroids a 5 TFLOP float32 GEMM (35-70 s on two cores).

``TwoLevelAssigner`` files each centroid under its ``probe`` best coarse cells
(``~sqrt(C)`` cells from a faiss k-means over the centroids), sends each vector
to its best cell and takes the argmax over that cell's list only (one GEMM per
cell): with 128 cells and ``probe=8``, 1,024 candidates instead of 16,384.
It is an option, not the default: ``benchmarks/build.py`` measures how often it
differs from exact assignment and what that costs in search fidelity.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Bound (in float32 elements) on the score block materialised at once.
_BLOCK_ELEMENTS = 1 << 26  # 256 MB of float32 scores


def assign_exact(embs: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``int32 [n]``: index of the largest ``centroids @ emb`` for each row of ``embs``.

    ``embs``: float32 ``[n, dim]``; ``centroids``: float32 ``[C, dim]``. Ties go
    to the lowest centroid id (as ``torch.max``). Scores are computed as
    ``embs @ centroids.T`` into one reused float32 block (the reference's
    ``centroids @ embs.T`` gives the same codes on the parity fixture, and
    reducing along rows is ~3x faster than along columns).
    """
    n = embs.shape[0]
    device = centroids.device  # the CPU, or a GPU for a build with device="cuda"
    out = torch.empty(n, dtype=torch.int32, device=device)
    if n == 0:
        return out
    centroids_t = centroids.float().T.contiguous()
    block = max(1, min(n, _BLOCK_ELEMENTS // max(1, centroids.shape[0])))
    scores = torch.empty((block, centroids.shape[0]), dtype=torch.float32, device=device)
    values = torch.empty(block, dtype=torch.float32, device=device)
    indices = torch.empty(block, dtype=torch.int64, device=device)
    for start in range(0, n, block):
        rows = embs[start : start + block].to(device, torch.float32)
        b = rows.shape[0]
        torch.mm(rows, centroids_t, out=scores[:b])
        torch.max(scores[:b], 1, out=(values[:b], indices[:b]))
        out[start : start + b] = indices[:b]
    return out


class TwoLevelAssigner:
    """Approximate ``assign_exact``: search only the centroids filed under a vector's coarse cell.

    The centroids are grouped into ``~sqrt(C)`` cells (faiss k-means over the
    centroids) and each centroid is filed under its ``probe`` best cells
    (redundant "spilled" lists). A vector goes to its best cell by
    ``emb @ cell_centre`` and is scored against that cell's list only; vectors
    are grouped by cell so that each cell is one dense GEMM.
    """

    def __init__(self, centroids: torch.Tensor, *, probe: int = 8, num_cells: int | None = None, seed: int = 123, niters: int = 10):
        from colja.index.kmeans import faiss_kmeans, normalize_rows

        self.centroids = centroids.float().contiguous()
        num_centroids = self.centroids.shape[0]
        cells = num_cells or max(1, int(round(math.sqrt(num_centroids))))
        cells = min(cells, num_centroids)
        coarse = faiss_kmeans(self.centroids.numpy(), cells, niters=niters, seed=seed, show_progress=False)
        self.coarse = torch.from_numpy(normalize_rows(coarse))
        self.coarse_t = self.coarse.T.contiguous()
        self.probe = max(1, min(probe, cells))
        filed = (self.centroids @ self.coarse_t).topk(self.probe, dim=1).indices.reshape(-1)  # [C * probe]
        owner = torch.arange(num_centroids).repeat_interleave(self.probe)
        order = torch.argsort(filed, stable=True)
        counts = torch.bincount(filed, minlength=cells).tolist()
        self.candidates = list(torch.split(owner[order], counts))  # ascending centroid ids per cell
        self.candidate_t = [self.centroids[ids].T.contiguous() for ids in self.candidates]

    @property
    def mean_candidates(self) -> float:
        return float(sum(len(c) for c in self.candidates) / max(1, len(self.candidates)))

    def __call__(self, embs: torch.Tensor) -> torch.Tensor:
        """``int32 [n]`` approximate codes of float32 ``[n, dim]`` vectors."""
        n = embs.shape[0]
        codes = torch.zeros(n, dtype=torch.int32)
        if n == 0:
            return codes
        embs = embs.float()
        cell = torch.empty(n, dtype=torch.int64)
        block = max(1, _BLOCK_ELEMENTS // max(1, self.coarse.shape[0]))
        for start in range(0, n, block):
            cell[start : start + block] = (embs[start : start + block] @ self.coarse_t).argmax(dim=1)
        order = torch.argsort(cell, stable=True)
        counts = torch.bincount(cell, minlength=len(self.candidates)).tolist()
        start = 0
        for g, count in enumerate(counts):
            if count == 0:
                continue
            idx = order[start : start + count]
            start += count
            if len(self.candidates[g]) == 0:  # pragma: no cover - a cell always holds its own members
                codes[idx] = assign_exact(embs[idx], self.centroids)
                continue
            rows = embs[idx]
            step = max(1, _BLOCK_ELEMENTS // max(1, len(self.candidates[g])))
            for s in range(0, count, step):
                best = (rows[s : s + step] @ self.candidate_t[g]).argmax(dim=1)
                codes[idx[s : s + step]] = self.candidates[g][best].to(torch.int32)
        return codes


def agreement(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Share of equal entries of two code arrays."""
    a = np.asarray(a)
    b = np.asarray(b)
    return float((a == b).mean()) if a.size else 1.0
