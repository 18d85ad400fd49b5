"""Metrics against hand-computed cases (trec_eval definitions, see colja/eval/metrics.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colja.eval import evaluate, parse_metric, to_markdown
from colja.eval.metrics import rank_docs

ALL = ("recall@1", "recall@5", "recall@10", "precision@1", "precision@5", "ndcg@1", "ndcg@2", "ndcg@10",
       "mrr@1", "mrr@10", "map@2", "map@10")
L3 = math.log2(3)  # discount of rank 2; rank 1 -> log2(2) = 1, rank 3 -> log2(4) = 2

# q1: graded qrels, a score tie, a non-relevant judged doc and an unjudged one.
Q1_QRELS = {"d1": 2, "d2": 1, "d3": 0, "d5": 1}  # relevant: d1, d2, d5 -> n_rel = 3; ideal gains [2, 1, 1]
Q1_RUN = {"d1": 0.5, "d2": 0.9, "d3": 0.9, "d4": 0.1}
# ranking: d3 (0.9), d2 (0.9) [tie -> doc id descending: "d3" > "d2"], d1 (0.5), d4 (0.1)
# grades by rank: [0, 1, 2, 0]
Q1_EXPECTED = {
    "recall@1": 0 / 3,
    "recall@5": 2 / 3,                      # d2 and d1; d5 never retrieved
    "recall@10": 2 / 3,
    "precision@1": 0 / 1,
    "precision@5": 2 / 5,                   # denominator is k even with 4 docs retrieved
    "ndcg@1": 0.0,                          # DCG@1 = 0
    # DCG@2 = 1/log2(3) = 0.63093; IDCG@2 = 2/1 + 1/log2(3) = 2.63093 -> 0.23981
    "ndcg@2": (1 / L3) / (2 + 1 / L3),
    # DCG@10 = 1/log2(3) + 2/log2(4) = 0.63093 + 1 = 1.63093
    # IDCG@10 = 2/1 + 1/log2(3) + 1/log2(4) = 2 + 0.63093 + 0.5 = 3.13093 -> 0.52091
    "ndcg@10": (1 / L3 + 2 / 2) / (2 + 1 / L3 + 1 / 2),
    "mrr@1": 0.0,
    "mrr@10": 1 / 2,                        # first relevant (d2) at rank 2
    "map@2": (1 / 2) / 3,                   # P@2 at d2 = 1/2; / n_rel 3 = 0.16667
    "map@10": (1 / 2 + 2 / 3) / 3,          # P@2 = 1/2 (d2), P@3 = 2/3 (d1) -> 1.16667 / 3 = 0.38889
}

# q2: a ranked list, the single relevant doc at rank 2.
Q2_QRELS = {"x": 1}
Q2_RUN = ["y", "x"]
Q2_EXPECTED = {
    "recall@1": 0.0, "recall@5": 1.0, "recall@10": 1.0,
    "precision@1": 0.0, "precision@5": 1 / 5,
    "ndcg@1": 0.0,
    "ndcg@2": 1 / L3,                       # DCG = 1/log2(3) = 0.63093, IDCG = 1
    "ndcg@10": 1 / L3,
    "mrr@1": 0.0, "mrr@10": 1 / 2,
    "map@2": 1 / 2, "map@10": 1 / 2,
}


def test_ndcg_literal_values():
    # the formulas above, checked once against numbers worked out by hand
    assert Q1_EXPECTED["ndcg@10"] == pytest.approx(0.5209090851, abs=1e-9)
    assert Q1_EXPECTED["ndcg@2"] == pytest.approx(0.2398124666, abs=1e-9)
    assert Q1_EXPECTED["map@10"] == pytest.approx(0.3888888889, abs=1e-9)


def test_single_queries_graded_and_tied():
    per = evaluate({"q1": Q1_RUN, "q2": Q2_RUN}, {"q1": Q1_QRELS, "q2": Q2_QRELS}, ALL, per_query=True)
    assert per["q1"] == pytest.approx(Q1_EXPECTED, abs=1e-12)
    assert per["q2"] == pytest.approx(Q2_EXPECTED, abs=1e-12)


def test_mean_counts_missing_queries_as_zero_and_skips_unjudged():
    qrels = {"q1": Q1_QRELS, "q2": Q2_QRELS,
             "q3": {"a": 1},          # not in the run -> 0 on every metric, still averaged
             "q4": {"z": 0}}          # no relevant doc -> skipped
    run = {"q1": Q1_RUN, "q2": Q2_RUN, "q4": ["z"], "q99": ["a"]}  # q99 has no qrels -> ignored
    res = evaluate(run, qrels, ALL)
    expected = {m: (Q1_EXPECTED[m] + Q2_EXPECTED[m] + 0.0) / 3 for m in ALL}
    assert res == pytest.approx(expected, abs=1e-12)
    # e.g. ndcg@10 = (0.52091 + 0.63093 + 0) / 3 = 0.38395
    assert res["ndcg@10"] == pytest.approx((0.5209090851 + 0.6309297536) / 3, abs=1e-9)
    assert list(res) == list(ALL)
    assert all(type(v) is float for v in res.values())
    json.dumps(res)


def test_ties_sort_by_doc_id_descending():
    # all three tie: trec_eval ranks c, b, a -> the relevant "a" is at rank 3
    res = evaluate({"q": {"a": 1.0, "b": 1.0, "c": 1.0}}, {"q": {"a": 1}}, ["mrr@10", "recall@2"])
    assert res == {"mrr@10": pytest.approx(1 / 3), "recall@2": 0.0}
    assert rank_docs({"a": 1.0, "b": 1.0, "c": 1.0, "d": 2.0}) == ["d", "c", "b", "a"]
    assert rank_docs({"a": 1.0, "b": 3.0, "c": 2.0}, limit=2) == ["b", "c"]


def test_large_dict_run_uses_partial_selection_with_same_order():
    run = {f"d{i:04d}": float(i % 7) for i in range(500)}
    full = sorted(run, key=lambda d: (run[d], d), reverse=True)
    assert rank_docs(run, limit=10) == full[:10]


def test_empty_runs():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}}
    for run in ({}, {"q1": {}, "q2": []}):
        assert evaluate(run, qrels, ALL) == {m: 0.0 for m in ALL}


def test_k_larger_than_the_run():
    # 2 retrieved docs, both relevant, 3 relevant in total
    res = evaluate({"q": ["a", "b"]}, {"q": {"a": 1, "b": 1, "c": 1}},
                   ["recall@100", "precision@100", "map@100", "ndcg@100", "mrr@100"])
    idcg = 1 + 1 / L3 + 1 / 2  # three grade-1 docs at ranks 1..3
    assert res == pytest.approx({
        "recall@100": 2 / 3,
        "precision@100": 2 / 100,
        "map@100": (1 / 1 + 2 / 2) / 3,      # P@1 = 1, P@2 = 1 -> 2 / 3
        "ndcg@100": (1 + 1 / L3) / idcg,     # 1.63093 / 2.13093 = 0.76536
        "mrr@100": 1.0,
    }, abs=1e-12)


def test_map_denominator_is_all_relevant_not_k():
    # 5 relevant docs, cutoff 2, both top docs relevant: (1 + 1) / 5, not / 2
    qrels = {"q": {c: 1 for c in "abcde"}}
    assert evaluate({"q": ["a", "b"]}, qrels, ["map@2"]) == {"map@2": pytest.approx(2 / 5)}


def test_graded_ideal_uses_best_grades_first():
    # run puts grade 1 before grade 3: DCG = 1 + 3/log2(3); IDCG = 3 + 1/log2(3)
    res = evaluate({"q": ["lo", "hi"]}, {"q": {"lo": 1, "hi": 3}}, ["ndcg@10"])
    assert res["ndcg@10"] == pytest.approx((1 + 3 / L3) / (3 + 1 / L3))  # 2.8928 / 3.6309 = 0.79671


def test_metric_names():
    assert parse_metric("nDCG@10") == ("ndcg", 10)
    assert evaluate({"q": ["a"]}, {"q": {"a": 1}}, ["MRR@5"]) == {"mrr@5": 1.0}
    for bad in ("foo@10", "ndcg", "ndcg@0", "ndcg@x", "recall@-1", "ndcg_cut_10"):
        with pytest.raises(ValueError, match="valid metrics are recall@k, precision@k, ndcg@k, mrr@k, map@k"):
            evaluate({}, {"q": {"a": 1}}, [bad])


def test_bad_inputs():
    with pytest.raises(ValueError, match="appears twice"):
        evaluate({"q": ["a", "b", "a"]}, {"q": {"a": 1}})
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate({"q": ["a"]}, {"q": {"a": 0}})
    with pytest.raises(TypeError, match="single str"):
        evaluate({"q": "a"}, {"q": {"a": 1}})


def test_ids_compare_as_strings():
    assert evaluate({1: [10, 20]}, {"1": {"20": 1}}, ["mrr@10"]) == {"mrr@10": 0.5}


def test_to_markdown():
    table = to_markdown({"bm25": {"recall@1": 0.88122, "ndcg@10": 0.5}, "a|b": {"ndcg@10": 1.0}})
    assert table == (
        "| system | recall@1 | ndcg@10 |\n"
        "| --- | ---: | ---: |\n"
        "| bm25 | 0.8812 | 0.5000 |\n"
        "| a\\|b | - | 1.0000 |\n"
    )


@settings(max_examples=60, deadline=None)
@given(grades=st.lists(st.integers(0, 3), min_size=1, max_size=12), k=st.integers(1, 15))
def test_properties(grades, k):
    """Bounds, and the ideal ordering scores 1 on nDCG, MAP (when k covers every relevant doc) and MRR."""
    docs = [f"d{i:02d}" for i in range(len(grades))]
    qrels = {"q": dict(zip(docs, grades))}
    if not any(grades):
        return
    metrics = [f"{m}@{k}" for m in ("recall", "precision", "ndcg", "mrr", "map")]
    shuffled = evaluate({"q": docs[::-1]}, qrels, metrics)
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in shuffled.values())
    ideal = sorted(docs, key=lambda d: -qrels["q"][d])
    best = evaluate({"q": ideal}, qrels, metrics)
    assert best[f"ndcg@{k}"] == pytest.approx(1.0)
    assert best[f"mrr@{k}"] == 1.0
    n_rel = sum(g >= 1 for g in grades)
    assert best[f"recall@{k}"] == pytest.approx(min(k, n_rel) / n_rel)
    if k >= n_rel:
        assert best[f"map@{k}"] == pytest.approx(1.0)
    assert best[f"ndcg@{k}"] >= shuffled[f"ndcg@{k}"] - 1e-12
    # a score dict with strictly decreasing scores ranks like the list
    scored = {d: float(len(ideal) - i) for i, d in enumerate(ideal)}
    assert evaluate({"q": scored}, qrels, metrics) == best
