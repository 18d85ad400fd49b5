"""faiss k-means: seeded, deterministic, normalised; the two-level variant."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colja.index.kmeans import (
    _allocate,
    faiss_kmeans,
    local_lloyd_refine,
    lloyd_refine,
    nearest_l2,
    normalize_rows,
    subsample,
    train_centroids,
    two_level_kmeans,
)

from .index_helpers import clustered_docs


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return np.concatenate(clustered_docs(n_docs=150, dim=32, n_clusters=20, seed=3))


def test_iteration_by_iteration_equals_one_faiss_call(points):
    ours = faiss_kmeans(points, 16, niters=3, seed=123)
    clus = faiss.Clustering(32, 16)
    clus.niter, clus.seed = 3, 123
    clus.max_points_per_centroid = 10**6
    clus.min_points_per_centroid = 1
    clus.train(points, faiss.IndexFlatL2(32))
    theirs = faiss.vector_to_array(clus.centroids).reshape(16, 32)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("method", ["flat", "two_level"])
def test_deterministic_and_normalised(points, method):
    a = train_centroids(points, 64, niters=2, seed=123, method=method, cells=8)
    b = train_centroids(points, 64, niters=2, seed=123, method=method, cells=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (64, 32) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    c = train_centroids(points, 64, niters=2, seed=7, method=method, cells=8)
    assert not np.array_equal(a, c)


def test_thread_count_does_not_change_centroids(points):
    a = faiss_kmeans(points, 32, niters=2, seed=123)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        b = faiss_kmeans(points, 32, niters=2, seed=123)
    finally:
        faiss.omp_set_num_threads(threads)
    np.testing.assert_array_equal(a, b)


def test_two_level_quality_close_to_flat(points):
    def objective(c):
        return float((((points[:, None, :] - c[None]) ** 2).sum(-1)).min(1).mean())

    flat = faiss_kmeans(points, 64, niters=6, seed=123)
    two = two_level_kmeans(points, 64, niters=6, seed=123, cells=8)
    assert two.shape == (64, 32)
    assert objective(two) < 1.25 * objective(flat)


def _objective(points, c):
    return float((((points[:, None, :] - c[None]) ** 2).sum(-1)).min(1).mean())


def test_lloyd_refine_lowers_the_objective_and_keeps_empty_centroids(points):
    two = two_level_kmeans(points, 64, niters=2, seed=123, cells=8)
    refined = lloyd_refine(points, two, niters=2)
    assert refined.shape == two.shape
    assert _objective(points, refined) <= _objective(points, two) + 1e-6
    # every live centroid is the mean of the points assigned to it
    once = lloyd_refine(points, two, niters=1)
    assign = nearest_l2(points, two)
    for c in np.unique(assign)[:10]:
        np.testing.assert_allclose(once[c], points[assign == c].mean(0), rtol=1e-5, atol=1e-6)
    far = np.concatenate([two, np.full((1, 32), 1e3, dtype=np.float32)])  # a centroid nobody picks
    np.testing.assert_array_equal(lloyd_refine(points, far, niters=1)[-1], far[-1])


def test_local_refinement_equals_exact_lloyd_when_probing_every_cell(points):
    coarse = faiss_kmeans(points, 8, niters=2, seed=1)
    base = two_level_kmeans(points, 64, niters=2, seed=123, cells=8)
    owner = nearest_l2(base, coarse)  # any cell labelling of the centroids
    everywhere = local_lloyd_refine(points, base, owner, coarse, niters=2, probe=8)
    np.testing.assert_allclose(everywhere, lloyd_refine(points, base, niters=2), rtol=1e-5, atol=1e-6)
    near = local_lloyd_refine(points, base, owner, coarse, niters=2, probe=2)
    assert _objective(points, near) <= _objective(points, base) + 1e-6


def test_refinement_is_part_of_two_level_training(points):
    plain = train_centroids(points, 64, niters=2, seed=123, method="two_level", cells=8)
    refined = train_centroids(points, 64, niters=2, seed=123, method="two_level", cells=8, refine_iters=1)
    np.testing.assert_array_equal(refined, normalize_rows(two_level_kmeans(points, 64, niters=2, seed=123, cells=8,
                                                                           refine_iters=1)))
    assert not np.array_equal(plain, refined)
    raw_plain = two_level_kmeans(points, 64, niters=2, seed=123, cells=8)
    raw_refined = two_level_kmeans(points, 64, niters=2, seed=123, cells=8, refine_iters=2)
    assert _objective(points, raw_refined) < _objective(points, raw_plain)


def test_two_level_cells_setting(points):
    a = two_level_kmeans(points, 64, niters=2, seed=123, cells=4)
    b = two_level_kmeans(points, 64, niters=2, seed=123, cells=16)
    assert a.shape == b.shape == (64, 32) and not np.array_equal(a, b)
    np.testing.assert_array_equal(normalize_rows(a), train_centroids(points, 64, niters=2, seed=123, method="two_level", cells=4))


def test_two_level_default_cells(points):
    # 512 centroids per cell by default: below 768 centroids it is plain (flat) k-means
    np.testing.assert_array_equal(two_level_kmeans(points, 64, niters=2, seed=5), faiss_kmeans(points, 64, niters=2, seed=5))


def test_k_equals_n_and_errors(points):
    few = points[:5]
    c = train_centroids(few, 5, niters=2, seed=1)
    assert c.shape == (5, 32)
    with pytest.raises(ValueError):
        faiss_kmeans(few, 6, niters=1, seed=1)
    with pytest.raises(ValueError):
        train_centroids(few, 2, niters=1, seed=1, method="hnsw")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=20), st.data())
def test_allocate_shares(sizes, data):
    sizes = np.array(sizes)
    total = int(sizes.sum())
    live = int((sizes > 0).sum())
    if total == 0:
        return
    k = data.draw(st.integers(max(1, live), total))
    alloc = _allocate(sizes, k)
    assert alloc.sum() == k
    assert np.all(alloc <= sizes)
    assert np.all(alloc[sizes > 0] >= 1)


def test_subsample():
    assert np.array_equal(subsample(5, 10, 0), np.arange(5))
    s = subsample(100, 10, 0)
    assert len(s) == 10 and np.all(np.diff(s) > 0)
    assert np.array_equal(s, subsample(100, 10, 0))
