"""A stale ``Index`` object keeps every first stage of its generation while other objects write."""

from __future__ import annotations

import json

import pytest

from colja import Index
from tests.conftest import DATA

pytest.importorskip("bm25s")
pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:40]


@pytest.mark.parametrize("first_stage", ["plaid", "bm25", "static", "dense", "hybrid"])
def test_stale_object_searches_each_first_stage_after_other_writes(
        first_stage, _fixture_model, rows, static_model_path, st_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")  # writers remove whatever no reader pins
    path = tmp_path / "index"
    index = Index.build([r["text"] for r in rows], path, model=_fixture_model, doc_ids=[r["_id"] for r in rows],
                        first_stages="bm25")
    index.add_first_stage("static", str(static_model_path))
    index.add_first_stage("dense", str(st_model_path))
    index.close()
    query = rows[7]["text"][:25]
    stale = Index.load(path, model=_fixture_model)  # loads no first stage yet
    expected = [h.doc_id for h in Index.load(path, model=_fixture_model).search(query, k=5, first_stage=first_stage)]
    writer = Index.load(path, model=_fixture_model)
    writer.delete([rows[7]["_id"]])
    writer.add(["新しい文書です。"], doc_ids=["new"])
    writer.close()
    old_generation = stale.generation
    assert old_generation.is_dir(), "the generation a live object holds must not be removed"
    hits = stale.search(query, k=5, first_stage=first_stage)  # first use of this first stage
    assert [h.doc_id for h in hits] == expected and rows[7]["_id"] in expected
    assert stale.refresh()
    fresh_ids = [h.doc_id for h in stale.search(query, k=5, first_stage=first_stage)]
    assert rows[7]["_id"] not in fresh_ids
    stale.close()
    Index.load(path, model=_fixture_model).delete(["new"])  # nobody holds the old generation any more
    assert not old_generation.exists()
