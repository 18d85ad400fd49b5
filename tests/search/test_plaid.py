"""PLAID stages and guarantees on synthetic compressed collections."""

from __future__ import annotations

import threading

import pytest
import torch

from colja import kernels
from tests.oracle import maxsim_matrix
from colja.kernels import top_k
from colja.search.plaid import candidate_pids, centroid_scores, search_one
from colja.search.settings import SearchSettings
from tests.search.conftest import make_arrays, make_query


def decompressed_docs(arrays):
    D = kernels.decompress_residuals(arrays.codes, arrays.residuals, arrays.centroids, arrays.bucket_weights, arrays.nbits)
    o = arrays.doc_offsets
    return [D[o[i]:o[i + 1]] for i in range(arrays.num_passages)]


def resolved(k, arrays, **overrides):
    return SearchSettings.from_overrides(overrides).resolve(k, arrays.num_passages, arrays.num_centroids)


def test_candidate_pids_are_the_ivf_lists_of_the_top_cells(collection):
    arrays, V, _ = collection
    Q = make_query(arrays, V, arrays.doc_offsets, pid=3)
    S = centroid_scores(Q, arrays.centroids)
    got = candidate_pids(S, 2, arrays.ivf, arrays.ivf_offsets, arrays.num_passages)
    cells = set(S.topk(2, dim=0).indices.flatten().tolist())
    want = set()
    for c in cells:
        want |= set(arrays.ivf[arrays.ivf_offsets[c]:arrays.ivf_offsets[c + 1]].tolist())
    assert got.tolist() == sorted(want)


def test_exhaustive_equals_maxsim_over_decompressed_vectors(collection):
    arrays, V, _ = collection
    docs = decompressed_docs(arrays)
    for pid in (0, 17, 299):
        Q = make_query(arrays, V, arrays.doc_offsets, pid)
        scores, pids = search_one(Q, arrays, 10, resolved(10, arrays, exhaustive=True))
        want = maxsim_matrix(Q.unsqueeze(0), docs)[0]
        want_scores, want_pids = top_k(want, torch.arange(len(docs)), 10)
        assert pids.tolist() == want_pids.tolist()
        torch.testing.assert_close(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_plaid_agrees_with_exhaustive(collection):
    arrays, V, _ = collection
    agree = []
    for pid in range(0, 300, 10):
        Q = make_query(arrays, V, arrays.doc_offsets, pid, seed=pid)
        _, plaid = search_one(Q, arrays, 10, resolved(10, arrays))
        _, exact = search_one(Q, arrays, 10, resolved(10, arrays, exhaustive=True))
        agree.append(len(set(plaid.tolist()) & set(exact.tolist())) / 10)
        assert plaid[0] == exact[0]
    assert sum(agree) / len(agree) >= 0.95


@pytest.mark.parametrize("n_docs, k", [(1, 10), (3, 10), (12, 10), (40, 100)])
def test_returns_min_k_n_unique_hits_even_on_tiny_collections(n_docs, k):
    arrays, V, _ = make_arrays(n_docs=n_docs, n_centroids=8, seed=n_docs)
    Q = make_query(arrays, V, arrays.doc_offsets, 0)
    # the most restrictive settings still give min(k, n) unique hits
    for overrides in ({}, {"ncells": 1, "centroid_score_threshold": 0.99, "ndocs": 1, "nfinal": 1}):
        scores, pids = search_one(Q, arrays, k, resolved(k, arrays, **overrides))
        assert len(pids) == min(k, n_docs)
        assert len(set(pids.tolist())) == len(pids)
        assert (scores[:-1] >= scores[1:]).all()


def test_allowed_mask_is_respected(collection):
    arrays, V, _ = collection
    allowed = torch.zeros(arrays.num_passages, dtype=torch.bool)
    allowed[::7] = True
    Q = make_query(arrays, V, arrays.doc_offsets, 3)
    for overrides in ({}, {"exhaustive": True}):
        _, pids = search_one(Q, arrays, 20, resolved(20, arrays, **overrides), allowed)
        assert len(pids) == 20 and all(p % 7 == 0 for p in pids.tolist())
    allowed[:] = False
    allowed[5] = True
    _, pids = search_one(Q, arrays, 10, resolved(10, arrays), allowed)
    assert pids.tolist() == [5]


def test_zero_query_rows_are_ignored(collection):
    arrays, V, _ = collection
    Q = make_query(arrays, V, arrays.doc_offsets, 8)
    padded = torch.cat([Q, torch.zeros(16, Q.shape[1])])
    a = search_one(Q, arrays, 10, resolved(10, arrays))
    b = search_one(padded, arrays, 10, resolved(10, arrays))
    assert a[1].tolist() == b[1].tolist()
    torch.testing.assert_close(a[0], b[0])


def test_concurrent_searches_match_sequential(collection):
    arrays, V, _ = collection
    queries = [make_query(arrays, V, arrays.doc_offsets, p, seed=p) for p in range(0, 300, 25)]
    settings = resolved(10, arrays)
    expected = [search_one(q, arrays, 10, settings)[1].tolist() for q in queries]
    got = [None] * len(queries)

    def run(i):
        for _ in range(3):
            got[i] = search_one(queries[i], arrays, 10, settings)[1].tolist()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_settings_validation():
    with pytest.raises(TypeError, match="ncell"):
        SearchSettings.from_overrides({"ncell": 2})
    with pytest.raises(ValueError, match="ndocs"):
        SearchSettings.from_overrides({"ndocs": 0})
    s = SearchSettings().resolve(10, 10_000, 4096)
    assert s.ncells >= 1 and s.nfinal >= 10 and s.ndocs >= s.nfinal
    big = SearchSettings().resolve(1000, 10_000, 4096)
    assert big.nfinal >= 1000


@pytest.mark.parametrize("threads", [1, 2])
def test_search_many_equals_one_query_at_a_time(collection, threads):
    """The one-call C++ path (plaid_search_batch: one query per thread, stage 2's pruning found in stage 1's
    pass) gives the results of the stage-by-stage kernels: plain, with a filter leaving fewer candidates
    than k (those queries widen their probe), and with an all-padding query."""
    from colja.search.plaid import _search_scored, search_many

    def stage_by_stage(q, k, settings, where):
        q = kernels.query_rows(q).contiguous()
        if q.shape[0] == 0:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        return _search_scored(q, centroid_scores(q, arrays.centroids), arrays, k, settings, where)

    arrays, V, _ = collection
    Qs = torch.stack([make_query(arrays, V, arrays.doc_offsets, pid, seed=pid) for pid in range(0, 300, 23)])
    Qs[3] = 0.0  # padding only: no hit
    allowed = torch.zeros(arrays.num_passages, dtype=torch.bool)
    allowed[::29] = True
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for k, where in ((10, None), (10, allowed), (500, None)):
            settings = resolved(k, arrays)
            batch = search_many(Qs, arrays, k, settings, where)
            for i in range(len(Qs)):
                scores, pids = stage_by_stage(Qs[i], k, settings, where)
                assert torch.equal(batch[i][1], pids), (k, i)
                assert torch.equal(batch[i][0], scores)
            assert batch[3][1].numel() == 0
            if where is not None:
                assert all(bool(where[p]) for _, pids in batch for p in pids)
    finally:
        torch.set_num_threads(old)
