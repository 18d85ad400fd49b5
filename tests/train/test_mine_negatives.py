"""Hard-negative mining (API and ``colja mine-negatives``) on a small BEIR folder."""

from __future__ import annotations

import json
import sys

import pytest

from colja.cli import main
from colja.search.results import Hit
from colja.train.data import load_training_data
from colja.train.mining import MiningError, mine_negatives
from tests.train.beir import make_beir

pytest.importorskip("bm25s")


@pytest.fixture()
def beir(tmp_path):
    return make_beir(tmp_path / "beir")


def test_bm25_negatives_skip_the_positive_and_the_top(beir):
    rows = mine_negatives(beir, k=3)
    assert {r["query_id"] for r in rows} <= {f"q{i}" for i in range(12)}
    for r in rows:
        assert f"d{r['query_id'][1:]}" not in r["negatives"]  # the positive is never a negative
        assert 1 <= len(r["negatives"]) <= 3 and len(r["negatives"]) == len(r["negative_scores"])
        assert r["negative_scores"] == sorted(r["negative_scores"], reverse=True)
    deeper = {r["query_id"]: r["negatives"] for r in mine_negatives(beir, k=4)}
    skipped = {r["query_id"]: r["negatives"] for r in mine_negatives(beir, k=3, skip_top=1)}
    for qid, negs in skipped.items():
        assert negs == deeper[qid][1:4]


def test_cli_writes_a_file_training_reads(beir, tmp_path, capsys):
    out = tmp_path / "neg.jsonl"
    assert main(["mine-negatives", "--data", str(beir), "--out", str(out), "--k", "2", "--no-progress"]) == 0
    assert "wrote negatives for" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines and all(len(r["negatives"]) <= 2 for r in lines)
    examples = load_training_data(beir, negatives=out)
    assert len(examples) == len(lines)


def test_cli_errors(beir, tmp_path, capsys):
    assert main(["mine-negatives", "--data", str(beir), "--out", str(tmp_path / "n.jsonl"), "--method", "index"]) == 2
    assert "--index PATH" in capsys.readouterr().err
    assert main(["mine-negatives", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "n.jsonl")]) == 2
    assert "no BEIR dataset folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="k must be"):
        mine_negatives(beir, k=0)
    with pytest.raises(ValueError, match="unknown mining method"):
        mine_negatives(beir, method="dense")


class FakeIndex:
    """Anything with ``search_batch(queries, k) -> list[list[Hit]]`` works as an index."""

    def __init__(self, ids):
        self.ids = ids

    def search_batch(self, queries, k=10):
        return [[Hit(doc_id=d, score=float(10 - r), rank=r + 1) for r, d in enumerate(self.ids[:k])] for _ in queries]


def test_index_method_uses_search_batch(beir):
    rows = mine_negatives(beir, method="index", index=FakeIndex(["d0", "d5", "d6", "d7"]), k=2)
    by_q = {r["query_id"]: r["negatives"] for r in rows}
    assert by_q["q0"] == ["d5", "d6"] and by_q["q5"] == ["d0", "d6"]
    with pytest.raises(MiningError, match="not in the BEIR corpus"):
        mine_negatives(beir, method="index", index=FakeIndex(["zz"]), k=2)
    with pytest.raises(ValueError, match="needs index="):
        mine_negatives(beir, method="index")


def test_index_method_without_colja_index(beir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "colja.searchable.index", None)  # as if the index package were missing
    with pytest.raises(MiningError, match="use method='bm25'"):
        mine_negatives(beir, method="index", index=tmp_path / "idx")
