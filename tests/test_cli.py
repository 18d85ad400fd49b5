"""``colja index`` / ``search`` / ``rerank`` on the user's own files (JSONL, CSV, text)."""

from __future__ import annotations

import json

import pytest

from colja import Index
from colja.cli import main
from tests.conftest import FIXTURE_MODEL

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")

ROWS = [
    {"_id": "tokyo", "text": "東京は日本の首都であり、世界有数の大都市である。", "source": "wiki"},
    {"_id": "fuji", "text": "富士山は標高3776メートルで、日本で最も高い山である。", "source": "wiki"},
    {"_id": "osaka", "text": "大阪は「天下の台所」と呼ばれた商業の町。たこ焼きが有名！", "source": "blog"},
    {"_id": "emoji", "text": "今日はいい天気😀ＡＢＣ１２３", "source": "blog"},
    {"_id": "kyoto", "text": "京都には千年以上の歴史を持つ寺社が数多くある。", "source": "wiki"},
]


def test_index_search_and_rerank_from_files(tmp_path, capsys):
    pytest.importorskip("bm25s")
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    path = tmp_path / "index"
    assert main(["index", str(data), "--index", str(path), "--model", str(FIXTURE_MODEL), "--first-stage", "bm25"]) == 0
    out = capsys.readouterr().out
    assert "5 passages" in out and "first stages: bm25" in out
    index = Index.load(path)
    assert index._snapshot.docs.all_doc_ids() == [r["_id"] for r in ROWS]
    source = {r["_id"]: r["source"] for r in ROWS}
    assert all(h.metadata == {"source": source[h.doc_id]} for h in index.search("富士山", k=5))

    for extra in ([], ["--first-stage", "bm25"], ["--first-stage", "hybrid", "--candidates", "3"], ["--exhaustive"]):
        assert main(["search", "富士山の高さ", "日本の首都", "--index", str(path), "-k", "3", "--json", *extra]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["query"] for line in lines] == ["富士山の高さ", "日本の首都"]
        assert all(len(line["hits"]) == 3 and len({h["doc_id"] for h in line["hits"]}) == 3 for line in lines)
    assert main(["search", "富士山", "--index", str(path), "--first-stage", "dense"]) == 2
    assert "no first stage named 'dense'" in capsys.readouterr().err

    again = main(["index", str(data), "--index", str(path), "--model", str(FIXTURE_MODEL)])
    assert again == 2 and "overwrite" in capsys.readouterr().err
    assert Index.load(path).first_stages  # the refused rebuild left the index as it was

    texts = tmp_path / "cands.txt"
    texts.write_text("\n".join(r["text"] for r in ROWS) + "\n", encoding="utf-8")
    assert main(["rerank", "日本で一番高い山", str(texts), "--model", str(FIXTURE_MODEL), "--json", "-k", "2"]) == 0
    out = capsys.readouterr().out
    ranked = [json.loads(line) for line in out.splitlines()] if out.lstrip().startswith("{") else None
    assert ranked is not None and len(ranked) == 2


def test_search_where_and_group_by_doc_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    path = tmp_path / "index"
    assert main(["index", str(data), "--index", str(path), "--model", str(FIXTURE_MODEL)]) == 0
    capsys.readouterr()
    blog = {r["_id"] for r in ROWS if r["source"] == "blog"}
    for extra in ([], ["--exhaustive"]):
        assert main(["search", "富士山の高さ", "--index", str(path), "-k", "5", "--json",
                     "--where", '{"source": "blog"}', *extra]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
        assert {h["doc_id"] for h in hits} == blog  # min(k, matching) hits, all of them blog passages
        assert all(h["metadata"]["source"] == "blog" for h in hits)
    assert main(["search", "京都", "--index", str(path), "--json", "--where", '{"source": {"$in": ["wiki"]}}',
                 "--group-by-doc", "-k", "2"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 2 and all(h["metadata"]["source"] == "wiki" for h in hits)

    assert main(["search", "京都", "--index", str(path), "--where", "{source: wiki}"]) == 2
    assert "--where must be a JSON object" in capsys.readouterr().err
    assert main(["search", "京都", "--index", str(path), "--where", '["wiki"]']) == 2
    assert "got list" in capsys.readouterr().err
    assert main(["search", "京都", "--index", str(path), "--where", '{"source": {"$regex": "w"}}']) == 2
    assert "$regex" in capsys.readouterr().err
