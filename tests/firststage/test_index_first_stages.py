"""First stages stored in an index: build / add / remove, search through them, hybrid, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colja import Index
from colja.firststage import BM25Retriever
from colja.index.store import read_manifest
from tests.conftest import DATA

pytest.importorskip("bm25s")
pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:80]


@pytest.fixture(scope="module")
def bm25_index(_fixture_model, rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("fs") / "index"
    return Index.build([r["text"] for r in rows], path, model=_fixture_model, doc_ids=[r["_id"] for r in rows],
                       first_stages="bm25")


def _exhaustive_scores(index, query):
    results = index.search_embeddings(index.model.encode_queries([query]), len(index), exhaustive=True)
    return {int(p): float(s) for p, s in zip(results.pids[0], results.scores[0])}


def test_build_stores_the_first_stage_in_the_generation(bm25_index, rows):
    assert set(bm25_index.first_stages) == {"bm25"}
    info = bm25_index.first_stages["bm25"]
    assert info["kind"] == "bm25" and info["passages"] == len(rows)
    manifest = read_manifest(bm25_index.generation)
    listed = [name for name in manifest["files"] if name.startswith("firststage/bm25/")]
    assert listed and all((bm25_index.generation / name).is_file() for name in listed)
    reloaded = Index.load(bm25_index.path, model=bm25_index.model)  # checksums of the subfolder verified
    assert isinstance(reloaded.first_stage("bm25"), BM25Retriever)
    assert reloaded.stats()["bytes_on_disk"] > sum(manifest["files"][n]["bytes"] for n in listed)


def test_bm25_first_stage_is_reranked_by_exact_maxsim(bm25_index, rows):
    query = rows[3]["text"][:30]
    candidates = bm25_index.first_stage("bm25").search(query, 20).pids
    assert len(candidates) >= 5
    hits = bm25_index.search(query, k=5, first_stage="bm25", candidates=20)
    exact = _exhaustive_scores(bm25_index, query)
    expected = sorted(candidates.tolist(), key=lambda p: (-exact[p], p))[:5]
    assert [h.pid for h in hits] == expected
    for h in hits:
        assert h.score == pytest.approx(exact[h.pid], rel=1e-5, abs=1e-5)
    assert hits[0].doc_id == rows[3]["_id"]


def test_too_few_bm25_candidates_are_filled_by_plaid(bm25_index):
    # no word of this query is in the collection: BM25 has nothing, PLAID fills all k
    hits = bm25_index.search("😀😀", k=7, first_stage="bm25")
    assert len(hits) == 7 and len({h.pid for h in hits}) == 7
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_hybrid_fuses_plaid_and_stored_stages_deterministically(bm25_index, rows):
    queries = [rows[i]["text"][:25] for i in (0, 10, 20)] + ["日本の首都はどこですか？"]
    a = bm25_index.search_batch(queries, k=5, first_stage="hybrid")
    b = bm25_index.search_batch(queries, k=5, first_stage=["plaid", "bm25"])
    assert [[h.pid for h in hs] for hs in a] == [[h.pid for h in hs] for hs in b]
    assert all(len(hs) == 5 for hs in a)
    for q, hits in zip(queries, a):
        exact = _exhaustive_scores(bm25_index, q)
        assert all(h.score == pytest.approx(exact[h.pid], rel=1e-5, abs=1e-5) for h in hits)
    assert a[0][0].doc_id == rows[0]["_id"]


def test_add_and_remove_a_static_first_stage(_fixture_model, rows, static_model_path, tmp_path):
    index = Index.build([r["text"] for r in rows[:30]], tmp_path / "index", model=_fixture_model)
    first_generation = index.generation.name
    static = index.add_first_stage("static", str(static_model_path), name="fast", truncate_dim=32)
    assert index.generation.name != first_generation and len(static) == 30
    assert index.first_stages["fast"]["kind"] == "static"
    assert index.first_stages["fast"]["settings"]["truncate_dim"] == 32
    query = rows[4]["text"][:20]
    hits = index.search(query, k=3, first_stage="fast")
    reloaded = Index.load(tmp_path / "index", model=_fixture_model)
    assert [h.pid for h in reloaded.search(query, k=3, first_stage="fast")] == [h.pid for h in hits]
    assert len(hits) == 3
    with pytest.raises(ValueError, match="already has a first stage named 'fast'"):
        index.add_first_stage("static", str(static_model_path), name="fast")
    index.remove_first_stage("fast")
    assert index.first_stages == {}
    assert not any(n.startswith("firststage/") for n in read_manifest(index.generation)["files"])
    with pytest.raises(ValueError, match="no first stage named 'fast'"):
        index.search(query, first_stage="fast")


def test_first_stage_errors(bm25_index, _fixture_model, rows, tmp_path):
    with pytest.raises(ValueError, match="no first stage named 'dense'"):
        bm25_index.search("東京", first_stage="dense")
    with pytest.raises(TypeError, match="first_stage must be"):
        bm25_index.search("東京", first_stage=3)
    with pytest.raises(ValueError, match="candidates= applies"):
        bm25_index.search("東京", candidates=50)
    with pytest.raises(ValueError, match="candidates must be a positive int"):
        bm25_index.search("東京", first_stage="bm25", candidates=0)
    with pytest.raises(ValueError, match="first stage name"):
        bm25_index.add_first_stage("bm25", name="hybrid")
    with pytest.raises(ValueError, match="unknown first stage 'sparse'"):
        bm25_index.add_first_stage("sparse")
    with pytest.raises(ValueError, match="takes no model"):
        bm25_index.add_first_stage("bm25", "some/model", name="other")
    plain = Index.build([r["text"] for r in rows[:10]], tmp_path / "plain", model=_fixture_model)
    with pytest.raises(ValueError, match="hybrid.*has none"):
        plain.search("東京", first_stage="hybrid")
    with pytest.raises(ValueError, match="unknown first stage"):
        Index.build(["a"], tmp_path / "never", model=_fixture_model, first_stages=["bm25", "sparse"])
    assert not (tmp_path / "never").exists()


def test_deleted_passages_never_come_from_a_first_stage(bm25_index, rows, monkeypatch):
    query = rows[3]["text"][:30]
    top = bm25_index.search(query, k=3, first_stage="bm25")
    mask = np.zeros(len(bm25_index), dtype=bool)
    mask[top[0].pid] = True
    import torch

    from colja.index.snapshot import IndexSnapshot

    monkeypatch.setattr(IndexSnapshot, "allowed", lambda self, where=None: torch.from_numpy(~mask))
    after = bm25_index.search(query, k=3, first_stage="bm25")
    assert top[0].pid not in [h.pid for h in after] and len(after) == 3
    assert [h.pid for h in after][:2] == [h.pid for h in top][1:3]
