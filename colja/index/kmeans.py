"""Centroids for the residual codec: faiss k-means, seeded and deterministic.

As in the reference, k-means runs in L2 (``faiss.Clustering``, seed 123 by
default) on a sample of document vectors, and the centroids are then
L2-normalised. The caller stores them as float16.

Two ways to train:

* ``"flat"`` (the reference): one faiss k-means over all ``k`` centroids. Each
  iteration costs ``n * k * dim`` multiply-adds, which dominates a build.
* ``"two_level"``: faiss k-means into ``~sqrt(k)`` coarse cells, then each cell's
  vectors into its share of the ``k`` centroids (proportional to the cell's
  size). About ``sqrt(k)/2`` times fewer operations per iteration.

faiss is driven one iteration at a time (identical to one call with ``niter``
iterations, which is checked in the tests) so that a progress bar can follow.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from colja._progress import progress, progress_enabled

logger = logging.getLogger(__name__)

#: cells of a two-level k-means with fewer than this many (points x centroids) use one thread
_SMALL_PROBLEM = 1 << 22
#: default centroids per coarse cell of a two-level k-means
CELL_SIZE = 512
#: coarse cells whose centroids a vector may move to during the refinement of a two-level k-means
REFINE_PROBE = 3
#: bound (float32 elements) on a score block materialised at once (256 MB)
_BLOCK_ELEMENTS = 1 << 26


def _import_faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        from colja.errors import MissingDependencyError

        raise MissingDependencyError("building an index needs faiss: pip install faiss-cpu") from exc
    return faiss


def _faiss_iteration(faiss, x: np.ndarray, k: int, seed: int, init: np.ndarray | None) -> tuple[np.ndarray, float]:
    """One faiss k-means iteration from ``init`` (random init from ``seed`` when None)."""
    n, dim = x.shape
    clus = faiss.Clustering(dim, k)
    clus.niter = 1
    clus.seed = seed
    clus.verbose = False
    # The caller subsamples; keep faiss from subsampling again or warning about sizes.
    clus.max_points_per_centroid = max(1, -(-n // k))
    clus.min_points_per_centroid = 1
    if init is not None:
        faiss.copy_array_to_vector(np.ascontiguousarray(init, dtype=np.float32).ravel(), clus.centroids)
    index = faiss.IndexFlatL2(dim)
    clus.train(x, index)
    centroids = faiss.vector_to_array(clus.centroids).reshape(k, dim)
    stats = clus.iteration_stats
    objective = float(stats.at(stats.size() - 1).obj) if stats.size() else float("nan")
    return centroids, objective


def faiss_kmeans(
    x: np.ndarray,
    k: int,
    *,
    niters: int,
    seed: int,
    show_progress: bool | None = None,
    desc: str = "k-means",
) -> np.ndarray:
    """Plain faiss k-means (L2): ``float32 [k, dim]`` raw (not normalised) centroids.

    ``x`` is ``float32 [n, dim]`` with ``n >= k``; every vector is used (no subsampling).
    """
    faiss = _import_faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} vectors, got {x.shape[0]}")
    centroids = None
    objective = float("nan")
    show = progress_enabled(show_progress, niters)
    for _ in progress(range(niters), total=niters, desc=desc, show=show, unit="iter"):
        centroids, objective = _faiss_iteration(faiss, x, k, seed, centroids)
    logger.debug("%s: k=%d n=%d objective=%.6g", desc, k, x.shape[0], objective)
    return centroids


def _allocate(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` centroids over cells in proportion to ``sizes``: each live cell gets
    1..size, the total is ``k`` (largest remainder). Needs ``sizes.sum() >= k``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    share = sizes * (k / sizes.sum())
    alloc = np.clip(np.floor(share).astype(np.int64), np.minimum(sizes, 1), sizes)
    while (missing := int(k - alloc.sum())) != 0:
        if missing > 0:  # give one more to the cells furthest below their share
            gain = np.where(alloc < sizes, share - alloc, -np.inf)
            picked = np.argsort(-gain, kind="stable")[: min(missing, int((alloc < sizes).sum()))]
            alloc[picked] += 1
        else:  # take one back from the cells furthest above their share
            loss = np.where(alloc > 1, alloc - share, -np.inf)
            picked = np.argsort(-loss, kind="stable")[: min(-missing, int((alloc > 1).sum()))]
            alloc[picked] -= 1
    return alloc


def nearest_l2(x: np.ndarray, centres: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """int64 ``[n]``: the nearest (L2) of ``centres`` for each row of ``x`` (torch GEMM in blocks)."""
    c = torch.from_numpy(np.ascontiguousarray(centres, dtype=np.float32))
    c_t = c.T.contiguous()
    half_sq = 0.5 * (c * c).sum(1)
    block = max(1, min(block, _BLOCK_ELEMENTS // max(1, c.shape[0])))
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], block):
        rows = torch.from_numpy(np.ascontiguousarray(x[start : start + block], dtype=np.float32))
        out[start : start + block] = (rows @ c_t - half_sq).argmax(dim=1).numpy()
    return out


def two_level_kmeans(
    x: np.ndarray,
    k: int,
    *,
    niters: int,
    seed: int,
    cells: int | None = None,
    refine_iters: int = 0,
    refine_probe: int = REFINE_PROBE,
    show_progress: bool | None = None,
) -> np.ndarray:
    """k-means into ``cells`` coarse cells, then each cell into its share of ``k``: ``float32 [k, dim]``.

    ``cells`` defaults to ``round(k / 512)`` (512 centroids per cell; one cell,
    i.e. plain k-means, below 768 centroids). The coarse k-means trains on at
    most ``256 * cells`` vectors (faiss's own default cap); every vector then
    goes to its nearest cell, and each cell's vectors are clustered into
    ``k * cell_size / n`` centroids (largest remainder, at least one per
    non-empty cell). Per vector and iteration that is ``cells + k / cells``
    distance computations instead of ``k``.

    ``refine_iters`` Lloyd iterations then run over all ``k`` centroids, each
    vector choosing among the centroids of its ``refine_probe`` nearest cells
    (:func:`local_lloyd_refine`): vectors near a cell border move to the better
    centroid next door, which the per-cell k-means cannot do.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    k1 = max(1, min(k, cells or int(round(k / CELL_SIZE))))
    if k1 == 1:
        return faiss_kmeans(x, k, niters=niters, seed=seed, show_progress=show_progress)
    coarse = faiss_kmeans(x[subsample(n, 256 * k1, seed)], k1, niters=niters, seed=seed, show_progress=False)
    assign = nearest_l2(x, coarse)
    sizes = np.bincount(assign, minlength=k1)
    alloc = _allocate(sizes, k)
    order = np.argsort(assign, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts, owners = [], []
    show = progress_enabled(show_progress, k1)
    faiss = _import_faiss()
    threads = faiss.omp_get_max_threads()
    try:
        for cell in progress(range(k1), total=k1, desc=f"k-means ({k} centroids, two-level)", show=show, unit="cell"):
            if alloc[cell] == 0:
                continue
            members = x[order[bounds[cell] : bounds[cell + 1]]]
            # Small problems run on one OpenMP thread: thread barriers cost up to 40x on a
            # busy machine. faiss's results do not depend on the thread count.
            faiss.omp_set_num_threads(1 if members.shape[0] * int(alloc[cell]) < _SMALL_PROBLEM else threads)
            parts.append(faiss_kmeans(members, int(alloc[cell]), niters=niters, seed=seed + cell, show_progress=False))
            owners.append(np.full(int(alloc[cell]), cell, dtype=np.int64))
    finally:
        faiss.omp_set_num_threads(threads)
    centroids = np.concatenate(parts).astype(np.float32, copy=False)
    if refine_iters > 0:
        centroids = local_lloyd_refine(x, centroids, np.concatenate(owners), coarse, niters=refine_iters,
                                       probe=refine_probe, show_progress=show_progress)
    return centroids


def local_lloyd_refine(x: np.ndarray, centroids: np.ndarray, owner: np.ndarray, coarse: np.ndarray, *,
                       niters: int, probe: int = REFINE_PROBE, show_progress: bool | None = None) -> np.ndarray:
    """Lloyd iterations where each vector picks among the centroids of its ``probe`` nearest coarse cells.

    ``owner[j]``: the coarse cell centroid ``j`` was trained in. With ``probe >=``
    the number of cells this is exactly :func:`lloyd_refine`; with a few cells it
    costs ``probe * k / cells`` distances per vector instead of ``k``.
    A centroid with no vectors stays put. Returns ``float32 [k, dim]``.
    """
    centroids = np.array(centroids, dtype=np.float32, copy=True)
    k, dim = centroids.shape
    k1 = coarse.shape[0]
    probe = max(1, min(probe, k1))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    n = xt.shape[0]
    near = _nearest_cells(xt, torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32)), probe)  # [n, probe]
    members = [torch.nonzero((near == c).any(1)).flatten() for c in range(k1)]
    owned = [torch.from_numpy(np.flatnonzero(owner == c)) for c in range(k1)]
    show = progress_enabled(show_progress, niters)
    for _ in progress(range(niters), total=niters, desc=f"k-means refinement ({k} centroids)", show=show, unit="iter"):
        c = torch.from_numpy(centroids)
        half_sq = 0.5 * (c * c).sum(1)
        best = torch.full((n,), -float("inf"))
        assign = torch.zeros(n, dtype=torch.int64)
        for cell in range(k1):
            rows, ids = members[cell], owned[cell]
            if rows.numel() == 0 or ids.numel() == 0:
                continue
            ct = c[ids].T.contiguous()
            hs = half_sq[ids]
            step = max(1, _BLOCK_ELEMENTS // max(1, ids.numel()))
            for s in range(0, rows.numel(), step):
                r = rows[s : s + step]
                val, arg = (xt[r] @ ct - hs).max(dim=1)
                better = val > best[r]
                best[r[better]] = val[better]
                assign[r[better]] = ids[arg[better]]
        centroids = _mean_update(xt, assign, centroids)
    return centroids


def _nearest_cells(xt: torch.Tensor, coarse: torch.Tensor, probe: int) -> torch.Tensor:
    """int64 ``[n, probe]``: the ``probe`` nearest (L2) coarse cells of each row."""
    half_sq = 0.5 * (coarse * coarse).sum(1)
    ct = coarse.T.contiguous()
    out = torch.empty((xt.shape[0], probe), dtype=torch.int64)
    step = max(1, _BLOCK_ELEMENTS // max(1, coarse.shape[0]))
    for s in range(0, xt.shape[0], step):
        out[s : s + step] = (xt[s : s + step] @ ct - half_sq).topk(probe, dim=1).indices
    return out


def _mean_update(xt: torch.Tensor, assign: torch.Tensor, centroids: np.ndarray) -> np.ndarray:
    """Each centroid moves to the mean of its rows (summed in float64, in chunks); empty ones stay."""
    k, dim = centroids.shape
    sums = torch.zeros((k, dim), dtype=torch.float64)
    for s in range(0, xt.shape[0], 1 << 16):
        sums.index_add_(0, assign[s : s + (1 << 16)], xt[s : s + (1 << 16)].double())
    counts = torch.bincount(assign, minlength=k)
    live = counts > 0
    out = np.array(centroids, dtype=np.float32, copy=True)
    out[live.numpy()] = (sums[live] / counts[live].unsqueeze(1).double()).float().numpy()
    return out


def lloyd_refine(x: np.ndarray, centroids: np.ndarray, *, niters: int, show_progress: bool | None = None) -> np.ndarray:
    """``niters`` plain Lloyd iterations over *all* centroids at once: ``float32 [k, dim]``.

    Each iteration assigns every row of ``x`` to its nearest centroid (L2) and moves
    each centroid to the mean of its rows; a centroid with no rows stays put. After a
    two-level k-means this lets vectors near a cell border move to the better
    centroid of the neighbouring cell, which the per-cell k-means cannot do.
    """
    centroids = np.array(centroids, dtype=np.float32, copy=True)
    k = centroids.shape[0]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    show = progress_enabled(show_progress, niters)
    for _ in progress(range(niters), total=niters, desc=f"k-means refinement ({k} centroids)", show=show, unit="iter"):
        centroids = _mean_update(xt, torch.from_numpy(nearest_l2(x, centroids)), centroids)
    return centroids


def normalize_rows(centroids: np.ndarray) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero), as ``torch.nn.functional.normalize``."""
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return (centroids / np.maximum(norms, 1e-12)).astype(np.float32)


def train_centroids(
    x: np.ndarray,
    k: int,
    *,
    niters: int,
    seed: int,
    method: str = "flat",
    cells: int | None = None,
    refine_iters: int = 0,
    show_progress: bool | None = None,
) -> np.ndarray:
    """k-means centroids of ``x`` (``float32 [n, dim]``), L2-normalised: ``float32 [k, dim]``.

    ``refine_iters`` global Lloyd iterations follow a two-level k-means (ignored for "flat").

    Round them to float16 for storage (``centroids.astype(np.float16)``) as the reference does.
    """
    started = time.perf_counter()
    if method == "flat":
        raw = faiss_kmeans(x, k, niters=niters, seed=seed, show_progress=show_progress, desc=f"k-means ({k} centroids)")
    elif method == "two_level":
        raw = two_level_kmeans(x, k, niters=niters, seed=seed, cells=cells, refine_iters=refine_iters,
                               show_progress=show_progress)
    else:
        raise ValueError(f"unknown k-means method {method!r}; valid: 'flat', 'two_level'")
    logger.info("k-means (%s): %d centroids from %d vectors, %d iterations in %.1f s",
                method, k, x.shape[0], niters, time.perf_counter() - started)
    return normalize_rows(raw)


def subsample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` rows (all rows when ``n <= limit``)."""
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)
