"""BEIR and reranking loaders: tiny files written under tmp_path, plus the shared jsquad-dev."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from colja.eval import from_hf_dataset, load_beir, load_reranking

SHARED = Path(os.environ.get("COLJA_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
DATA = SHARED / "data"


def _write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def beir(tmp_path: Path) -> Path:
    _write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": "d2", "title": "東京", "text": "東京は日本の首都です。"},
        {"_id": "d1", "text": "大阪は食の都です。"},                 # no title
        {"_id": 7, "title": None, "text": "整数の id"},              # int id -> "7"
    ])
    _write_jsonl(tmp_path / "queries.jsonl", [
        {"_id": "q1", "text": "日本の首都は？"},
        {"_id": "q2", "text": "食の都は？"},
        {"_id": "q3", "text": "qrels のない質問"},
    ])
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t2\nq2\td2\t0\n",
                                        encoding="utf-8")
    return tmp_path


def test_load_beir(beir: Path):
    data = load_beir(beir)
    assert data.doc_ids == ["d2", "d1", "7"]  # file order kept
    assert data.corpus["d1"] == {"title": "", "text": "大阪は食の都です。"}
    assert data.queries == {"q1": "日本の首都は？", "q2": "食の都は？"}  # q3 has no qrels
    assert data.qrels == {"q1": {"d2": 1}, "q2": {"d1": 2, "d2": 0}}
    assert data.passages() == ["東京\n東京は日本の首都です。", "大阪は食の都です。", "整数の id"]
    assert data.passages(with_title=False)[0] == "東京は日本の首都です。"
    assert "docs=3" in repr(data)


def test_beir_split_folder(beir: Path):
    (beir / "qrels").mkdir()
    (beir / "qrels.tsv").rename(beir / "qrels" / "test.tsv")
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\t7\t1\n", encoding="utf-8")
    assert load_beir(beir).qrels["q1"] == {"d2": 1}
    assert load_beir(beir, split="dev").queries == {"q3": "qrels のない質問"}
    with pytest.raises(FileNotFoundError, match=r"qrels/train.tsv"):
        load_beir(beir, split="train")


def test_beir_missing_files(beir: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no BEIR dataset folder"):
        load_beir(tmp_path / "nope")
    (beir / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="has no queries.jsonl"):
        load_beir(beir)


@pytest.mark.parametrize("file, content, message", [
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n\n{"_id": "d2", "text": oops}\n', r"corpus.jsonl:3: not valid JSON"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"text": "b"}\n', r"corpus.jsonl:2: field '_id' is missing"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', r"corpus.jsonl:2: duplicate doc id"),
    ("queries.jsonl", '{"_id": "q1", "text": 5}\n', r"queries.jsonl:1: field 'text' is a int"),
    ("queries.jsonl", '["q1", "text"]\n', r"queries.jsonl:1: expected a JSON object"),
    ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\tyes\n", r"qrels.tsv:3: score 'yes'"),
    ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td2\n", r"qrels.tsv:2: expected query-id<TAB>corpus-id<TAB>score"),
])
def test_beir_bad_lines(beir: Path, file: str, content: str, message: str):
    (beir / file).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_beir(beir)


def test_beir_qrels_without_header_and_unknown_ids(beir: Path, caplog):
    (beir / "qrels.tsv").write_text("q1\td2\t1\nq9\td1\t1\nq2\tmissing\t1\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="colja.eval.datasets"):
        data = load_beir(beir)
    assert data.qrels == {"q1": {"d2": 1}, "q2": {"missing": 1}}  # q9 is not a query: dropped
    assert "1 query ids not in queries.jsonl" in caplog.text
    assert "1 qrels name doc ids that are not in corpus.jsonl" in caplog.text


def test_shared_jsquad_dev():
    folder = DATA / "jsquad-dev"
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    data = load_beir(folder)
    assert (len(data.corpus), len(data.queries), sum(map(len, data.qrels.values()))) == (1159, 4420, 4420)
    assert data.doc_ids[0] == "a1025052p0" and data.corpus["a1025052p0"]["title"] == "ジェイ・キャスト"
    assert data.qrels["a1025052p0q0"] == {"a1025052p0": 1}


# ------------------------------------------------------------------ reranking
RERANK_ROWS = [
    {"query": "日本の首都は？", "query_id": "qa",
     "candidates": [{"id": "d7", "title": "東京", "text": "東京は日本の首都。", "label": 1},
                    {"text": "大阪は食の都。", "label": 0}]},
    {"query": "富士山の高さは？",
     "candidates": [{"text": "富士山は3776m。", "label": True}, {"id": 3, "text": "…", "label": 0}]},
]


def test_load_reranking_jsonl_and_rows(tmp_path: Path):
    path = tmp_path / "rerank.jsonl"
    _write_jsonl(path, RERANK_ROWS)
    for source in (path, str(path), RERANK_ROWS):
        data = load_reranking(source)
        # row 1 has no query_id -> "q1" (its 0-based row); a candidate without id -> "<query id>/<position>"
        assert data.queries == {"qa": "日本の首都は？", "q1": "富士山の高さは？"}
        assert data.candidates["qa"] == [{"id": "d7", "title": "東京", "text": "東京は日本の首都。"},
                                         {"id": "qa/1", "title": "", "text": "大阪は食の都。"}]
        assert [c["id"] for c in data.candidates["q1"]] == ["q1/0", "3"]
        assert data.qrels == {"qa": {"d7": 1, "qa/1": 0}, "q1": {"q1/0": 1, "3": 0}}


@pytest.mark.parametrize("row, message", [
    ({"candidates": []}, "'query' must be a string"),
    ({"query": "q", "candidates": "abc"}, "'candidates' must be a list"),
    ({"query": "q", "candidates": [{"text": "a"}]}, "'label' must be an int grade"),
    ({"query": "q", "candidates": [{"text": "a", "label": -1}]}, "label -1 is negative"),
    ({"query": "q", "candidates": [{"text": "a", "label": "1"}]}, "'label' must be an int grade"),
    ({"query": "q", "candidates": [{"label": 1}]}, "candidate 0 has no 'text'"),
    ({"query": "q", "candidates": [{"id": "x", "text": "a", "label": 1}, {"id": "x", "text": "b", "label": 0}]},
     "candidate id 'x' appears twice"),
])
def test_load_reranking_errors_name_the_line(tmp_path: Path, row: dict, message: str):
    path = tmp_path / "bad.jsonl"
    _write_jsonl(path, [RERANK_ROWS[0], row])
    with pytest.raises(ValueError, match=rf"bad.jsonl:2: .*{message}"):
        load_reranking(path)
    with pytest.raises(ValueError, match=rf"row 2: .*{message}"):
        load_reranking([RERANK_ROWS[0], row])


def test_load_reranking_duplicates_and_missing(tmp_path: Path):
    with pytest.raises(ValueError, match="duplicate query_id 'qa'"):
        load_reranking([RERANK_ROWS[0], RERANK_ROWS[0]])
    with pytest.raises(FileNotFoundError, match="no reranking file"):
        load_reranking(tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match="holds no queries"):
        load_reranking([])


def test_from_hf_dataset_flat_and_nested():
    datasets = pytest.importorskip("datasets")
    flat = datasets.Dataset.from_list([
        {"q_id": 10, "question": "日本の首都は？", "passage_row_id": "p1", "title": "東京", "text": "東京は首都。", "label": 1},
        {"q_id": 10, "question": "日本の首都は？", "passage_row_id": "p2", "title": "大阪", "text": "大阪は都。", "label": 0},
        {"q_id": 11, "question": "富士山は？", "passage_row_id": "p1", "title": "東京", "text": "東京は首都。", "label": 0},
    ])
    data = from_hf_dataset(flat, query_column="question", query_id_column="q_id", doc_id_column="passage_row_id",
                           title_column="title")
    assert data.queries == {"10": "日本の首都は？", "11": "富士山は？"}
    assert data.candidates["10"][1] == {"id": "p2", "title": "大阪", "text": "大阪は都。"}
    assert data.qrels == {"10": {"p1": 1, "p2": 0}, "11": {"p1": 0}}
    # grouped by query text, default ids
    by_text = from_hf_dataset(flat, query_column="question")
    assert by_text.qrels == {"q0": {"q0/0": 1, "q0/1": 0}, "q1": {"q1/0": 0}}
    with pytest.raises(ValueError, match="no column 'query'"):
        from_hf_dataset(flat)
    nested = datasets.Dataset.from_list([RERANK_ROWS[0]])
    assert from_hf_dataset(nested).qrels == {"qa": {"d7": 1, "qa/1": 0}}
    assert from_hf_dataset(iter([RERANK_ROWS[0]])).queries == {"qa": "日本の首都は？"}
