"""``colja eval``: systems over one index, metrics identical to evaluating the runs by hand, CLI output."""

from __future__ import annotations

import json

import pytest

from colja.cli import main
from colja.eval import evaluate, load_beir
from colja.eval.datasets import BeirData
from colja.eval.runner import SYSTEMS, evaluate_beir, evaluate_reranking, stages_needed
from tests.conftest import DATA, FIXTURE_MODEL

pytest.importorskip("bm25s")
pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def small_beir() -> BeirData:
    """The first 60 jsquad-dev passages and the queries whose answers are among them."""
    full = load_beir(DATA / "jsquad-dev")
    keep = dict(list(full.corpus.items())[:60])
    qrels = {q: r for q, r in full.qrels.items() if set(r) <= set(keep)}
    qids = list(qrels)[:40]
    return BeirData(corpus=keep, queries={q: full.queries[q] for q in qids}, qrels={q: qrels[q] for q in qids})


def _write_beir(data: BeirData, folder):
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, d in data.corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in data.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "qrels.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, rels in data.qrels.items():
            for doc_id, grade in rels.items():
                f.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder


def test_metrics_equal_evaluating_each_system_by_hand(small_beir, _fixture_model, tmp_path):
    systems = ["plaid", "exhaustive", "bm25", "bm25+maxsim", "hybrid"]
    path = tmp_path / "index"
    results = evaluate_beir(small_beir, model=_fixture_model, systems=systems, index_path=path, latency_queries=3)
    assert list(results) == systems
    from colja import Index

    index = Index.load(path, model=_fixture_model)
    assert set(index.first_stages) == {"bm25"}
    qids = list(small_beir.queries)
    queries = [small_beir.queries[q] for q in qids]
    runs = {
        "plaid": index.search_batch(queries, 10),
        "exhaustive": index.search_batch(queries, 10, exhaustive=True),
        "bm25+maxsim": index.search_batch(queries, 10, first_stage="bm25"),
        "hybrid": index.search_batch(queries, 10, first_stage=["plaid", "bm25"]),
    }
    for system, hits in runs.items():
        expected = evaluate({q: [h.doc_id for h in hs] for q, hs in zip(qids, hits)}, small_beir.qrels)
        assert {m: v for m, v in results[system].items() if m != "ms_per_query"} == pytest.approx(expected)
        assert results[system]["ms_per_query"] > 0
    ids = index._snapshot.docs.all_doc_ids()
    bm25_hits = index.first_stage("bm25").search_batch(queries, 10)
    expected = evaluate({q: [ids[p] for p in h.pids] for q, h in zip(qids, bm25_hits)}, small_beir.qrels)
    assert {m: v for m, v in results["bm25"].items() if m != "ms_per_query"} == pytest.approx(expected)
    assert results["bm25"]["recall@10"] > 0.8  # BM25 works on this data; the fixture model is random
    # a second run reuses the index (and its BM25) instead of building again
    generation = index.generation.name
    again = evaluate_beir(small_beir, model=_fixture_model, systems=["bm25"], index_path=path, latency_queries=1)
    assert again["bm25"]["ndcg@10"] == pytest.approx(results["bm25"]["ndcg@10"])
    assert Index.load(path).generation.name == generation


def test_stages_and_system_errors(small_beir, _fixture_model):
    assert stages_needed(["hybrid"]) == ["bm25"]
    assert stages_needed(["static+maxsim", "hybrid", "bm25"]) == ["bm25", "static"]
    assert "bm25+maxsim" in SYSTEMS
    with pytest.raises(ValueError, match="unknown system"):
        evaluate_beir(small_beir, model=_fixture_model, systems=["colbert"])
    with pytest.raises(ValueError, match="needs a model"):
        evaluate_beir(small_beir, model=_fixture_model, systems=["dense"])


def test_reranking_set(_fixture_model):
    rows = [
        {"query": "日本の首都は？", "candidates": [{"id": "a", "text": "大阪は食の都です。", "label": 0},
                                                 {"id": "b", "text": "東京は日本の首都です。", "label": 1}]},
        {"query": "富士山の高さ", "candidates": [{"id": "c", "text": "富士山は3776メートル。", "label": 1},
                                               {"id": "d", "text": "😀", "label": 0},
                                               {"id": "e", "text": "", "label": 0}]},
    ]
    from colja import rerank

    results = evaluate_reranking(rows, model=_fixture_model)
    reranked = {f"q{i}": [r["candidates"][h.pid]["id"] for h in rerank(r["query"], [c["text"] for c in r["candidates"]],
                                                                          model=_fixture_model)]
                for i, r in enumerate(rows)}
    qrels = {f"q{i}": {c["id"]: c["label"] for c in r["candidates"]} for i, r in enumerate(rows)}
    expected = evaluate(reranked, qrels)
    assert {m: v for m, v in results["maxsim rerank"].items() if m != "ms_per_query"} == pytest.approx(expected)
    assert results["given order"]["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)


def test_cli_writes_json_and_markdown(small_beir, tmp_path, capsys):
    folder = _write_beir(small_beir, tmp_path / "beir")
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    rc = main(["eval", "--data", str(folder), "--model", str(FIXTURE_MODEL), "--systems", "bm25", "plaid",
               "--metrics", "recall@5", "ndcg@10", "--latency-queries", "2", "--max-queries", "10",
               "--json", str(out_json), "--markdown", str(out_md), "--no-progress"])
    assert rc == 0
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(report["results"]) == {"bm25", "plaid"}
    assert set(report["results"]["bm25"]) == {"recall@5", "ndcg@10", "ms_per_query"}
    table = out_md.read_text(encoding="utf-8")
    assert table.startswith("| system | recall@5 | ndcg@10 | ms_per_query |") and table in capsys.readouterr().out
    assert main(["eval", "--model", "x"]) == 2
    assert main(["eval", "--data", str(folder), "--model", str(FIXTURE_MODEL), "--systems", "nope"]) == 2
    assert "unknown system" in capsys.readouterr().err
