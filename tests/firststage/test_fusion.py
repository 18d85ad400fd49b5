"""Reciprocal-rank fusion (hand-computed values, determinism) and the FirstStage protocol."""

from __future__ import annotations

import numpy as np
import pytest

from colja.firststage import FIRST_STAGES, FirstStage, Ranking, first_stage_class, reciprocal_rank_fusion


def _reference(rankings, k=60, weights=None) -> dict[int, float]:
    """The formula, written out: sum of w / (k + rank) over the first occurrence in each ranking."""
    out: dict[int, float] = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else weights[i]
        seen = set()
        for rank, pid in enumerate(ranking, start=1):
            if pid < 0 or pid in seen:
                continue
            seen.add(pid)
            out[pid] = out.get(pid, 0.0) + w / (k + rank)
    return out


def test_hand_computed_values():
    hits = reciprocal_rank_fusion([np.array([3, 1, 2]), np.array([1, 2])])
    assert isinstance(hits, Ranking) and hits.pids.dtype == np.int64 and hits.scores.dtype == np.float32
    assert hits.pids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(hits.scores, [1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 61], rtol=1e-6)

    hits = reciprocal_rank_fusion([[3, 1, 2], [1, 2]], k=0, weights=[2.0, 1.0])
    # pid 3: 2/1 = 2; pid 1: 2/2 + 1/1 = 2; pid 2: 2/3 + 1/2 — 1 and 3 tie, the smaller pid first
    assert hits.pids.tolist() == [1, 3, 2]
    np.testing.assert_allclose(hits.scores, [2.0, 2.0, 2 / 3 + 1 / 2], rtol=1e-6)

    hits = reciprocal_rank_fusion([[5, 9]], k=1, limit=1)
    assert hits.pids.tolist() == [5] and hits.scores.tolist() == [0.5]


def test_ties_break_by_the_smaller_pid_with_identical_scores():
    hits = reciprocal_rank_fusion([[7, 5], [5, 7]])
    assert hits.pids.tolist() == [5, 7] and hits.scores[0] == hits.scores[1]
    # three lists, each pid once at rank 1, 2 and 3: the same multiset of contributions, summed in the
    # same (ascending) order whatever the list order, so the scores are bit-identical and pids decide
    for rankings in ([[1, 2, 3], [2, 3, 1], [3, 1, 2]], [[3, 2, 1], [1, 3, 2], [2, 1, 3]]):
        hits = reciprocal_rank_fusion(rankings, k=1)
        assert hits.pids.tolist() == [1, 2, 3] and len(set(hits.scores.tolist())) == 1


def test_deterministic_and_equal_to_the_formula():
    rng = np.random.default_rng(0)
    rankings = [rng.permutation(200)[: rng.integers(1, 150)] for _ in range(4)]
    weights = [1.0, 0.5, 2.0, 1.0]
    a = reciprocal_rank_fusion(rankings, weights=weights)
    b = reciprocal_rank_fusion(rankings[::-1], weights=weights[::-1])  # order of retrievers does not matter
    np.testing.assert_array_equal(a.pids, b.pids)
    np.testing.assert_array_equal(a.scores, b.scores)
    ref = _reference(rankings, weights=weights)
    assert sorted(a.pids.tolist()) == sorted(ref)
    np.testing.assert_allclose(a.scores, [ref[p] for p in a.pids.tolist()], rtol=1e-6)
    order = sorted(ref, key=lambda p: (-ref[p], p))
    exact = np.array([ref[p] for p in order])
    # same order as the formula wherever neighbours differ by more than float noise
    gaps = np.r_[np.inf, exact[:-1] - exact[1:], np.inf]
    clear = (gaps[:-1] > 1e-12) & (gaps[1:] > 1e-12)
    np.testing.assert_array_equal(a.pids[clear], np.array(order)[clear])


def test_padding_duplicates_hits_and_empty_inputs():
    hits = reciprocal_rank_fusion([Ranking(np.array([4, -1, -1]), np.zeros(3, np.float32)), np.array([2, 2, 4])])
    assert hits.pids.tolist() == [4, 2]  # -1 skipped, the second 2 ignored: 1/61 + 1/63 beats 1/61
    np.testing.assert_allclose(hits.scores, [1 / 61 + 1 / 63, 1 / 61], rtol=1e-6)
    for empty in ([], [np.empty(0, np.int64)], [[-1, -1]]):
        out = reciprocal_rank_fusion(empty)
        assert out.pids.shape == (0,) and out.pids.dtype == np.int64 and out.scores.dtype == np.float32
    assert reciprocal_rank_fusion([[1, 2]], limit=0).pids.size == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="one per ranking"):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        reciprocal_rank_fusion([[1]], weights=[-1.0])
    with pytest.raises(ValueError, match="RRF constant"):
        reciprocal_rank_fusion([[1]], k=-1)
    with pytest.raises(ValueError, match="limit"):
        reciprocal_rank_fusion([[1]], limit=-2)
    with pytest.raises(ValueError, match="1-d"):
        reciprocal_rank_fusion([np.zeros((2, 2), np.int64)])
    with pytest.raises(TypeError, match="integer pids"):
        reciprocal_rank_fusion([np.array([0.5, 1.5])])
    with pytest.raises(TypeError, match="list of pid arrays"):
        reciprocal_rank_fusion(np.array([1, 2]))


def test_first_stage_names():
    assert set(FIRST_STAGES) == {"bm25", "dense", "static"}
    for name, cls in FIRST_STAGES.items():
        assert first_stage_class(name) is cls and cls.name == name
    with pytest.raises(ValueError, match="unknown first stage 'plaid'"):
        first_stage_class("plaid")


def test_bm25_follows_the_protocol_and_add_rebuilds():
    pytest.importorskip("bm25s")
    from colja.firststage import BM25Retriever

    docs = ["東京は日本の首都です。", "大阪は食の都です。", "富士山は日本で一番高い山です。", "京都には寺が多い。"]
    bm25 = BM25Retriever.build(docs[:2])
    assert isinstance(bm25, FirstStage) and bm25.name == "bm25" and bm25.rebuilds_on_add
    with pytest.raises(ValueError, match="existing_texts"):
        bm25.add(docs[2:])
    with pytest.raises(ValueError, match="has 1 texts but the index holds 2"):
        bm25.add(docs[2:], existing_texts=docs[:1])
    np.testing.assert_array_equal(bm25.add(docs[2:], existing_texts=docs[:2]), [2, 3])
    whole = BM25Retriever.build(docs)
    assert len(bm25) == 4 and bm25.search("富士山", k=1).pids.tolist() == [2]
    for q in ["日本", "寺", "食の都"]:
        np.testing.assert_array_equal(bm25.get_scores(q), whole.get_scores(q))
    assert bm25.add([], existing_texts=docs).size == 0 and len(bm25) == 4
    # BM25 hits fuse like any other ranking
    fused = reciprocal_rank_fusion([bm25.search("日本", k=4), np.array([3, 2])])
    assert fused.pids[0] == 2
