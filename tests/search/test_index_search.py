"""Search through ``Index``: parity with the reference engine's scores, hits, guarantees."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from colja import Hit, Index
from colja.search.plaid import SearchArrays, centroid_scores, exact_scores
from tests.conftest import DATA, FIXTURE

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")
REFERENCE_INDEX = FIXTURE / "reference-index"


@pytest.fixture(scope="module")
def reference_search():
    return json.loads((REFERENCE_INDEX / "index.json").read_text(encoding="utf-8"))["search_k10"]


@pytest.fixture(scope="module")
def imported(_fixture_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("imported") / "index"
    return Index.import_stanford(REFERENCE_INDEX / "stanford-index", path, model=_fixture_model)


def test_exact_scores_match_the_reference_engine(imported, _fixture_model, reference_search):
    """Our MaxSim over the compressed vectors reproduces colbert-ai's scores for its own top-10."""
    Q = _fixture_model.encode_queries([r["query"] for r in reference_search])
    with imported.snapshot() as snapshot:
        arrays = SearchArrays.of(snapshot)
    worst = 0.0
    for q, ref in zip(Q, reference_search):
        pids = torch.tensor(ref["pids"])
        ours = exact_scores(q, centroid_scores(q, arrays.centroids), arrays, pids)
        worst = max(worst, float((ours - torch.tensor(ref["scores"])).abs().max()))
    print("max |colja - reference| score on the reference's hits:", worst)
    assert worst < 1e-4


def test_search_is_at_least_as_good_as_the_reference(imported, _fixture_model, reference_search):
    Q = _fixture_model.encode_queries([r["query"] for r in reference_search])
    exhaustive = imported.search_embeddings(Q, 10, exhaustive=True)
    plaid = imported.search_embeddings(Q, 10)
    agreement = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(plaid.pids, exhaustive.pids)])
    print("PLAID vs exhaustive top-10 agreement:", agreement)
    assert agreement >= 0.95
    for i, ref in enumerate(reference_search):
        # exhaustive search is exact: its k-th score can only be above the reference's approximate k-th
        assert exhaustive.scores[i, 9] >= ref["scores"][9] - 1e-4
        assert plaid.scores[i, 0] >= ref["scores"][0] - 1e-4


@pytest.fixture(scope="module")
def small_index(_fixture_model, tmp_path_factory):
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:120]
    path = tmp_path_factory.mktemp("small") / "index"
    index = Index.build([r["text"] for r in rows], path, model=_fixture_model, doc_ids=[r["_id"] for r in rows],
                        metadata=[{"title": r["title"], "n": i} for i, r in enumerate(rows)])
    return index, rows


def test_text_search_returns_hits(small_index):
    index, rows = small_index
    hits = index.search("日本の首都はどこですか？", k=5)
    assert len(hits) == 5 and all(isinstance(h, Hit) for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    by_id = {r["_id"]: (i, r) for i, r in enumerate(rows)}
    for h in hits:
        i, row = by_id[h.doc_id]
        assert h.text == row["text"] and h.metadata == {"title": row["title"], "n": i}
        assert h.normalized_score == pytest.approx(h.score / 32)


def test_batch_search_equals_single_searches(small_index):
    index, _ = small_index
    queries = ["富士山の高さは？", "😀", "", "ＡＢＣ１２３"]
    batch = index.search_batch(queries, k=3)
    for q, hits in zip(queries, batch):
        assert [h.doc_id for h in hits] == [h.doc_id for h in index.search(q, k=3)]


def test_k_larger_than_collection_returns_every_passage_once(small_index):
    index, rows = small_index
    for overrides in ({}, {"ncells": 1, "centroid_score_threshold": 0.9, "ndocs": 4}):
        hits = index.search("野球", k=500, **overrides)
        assert len(hits) == len(rows)
        assert len({h.doc_id for h in hits}) == len(rows)


def test_bad_search_arguments(small_index):
    index, _ = small_index
    with pytest.raises(ValueError, match="k must be"):
        index.search("質問", k=0)
    with pytest.raises(TypeError, match="search_batch"):
        index.search(["質問"])
    with pytest.raises(TypeError, match="unknown search settings"):
        index.search("質問", ncell=3)
    with pytest.raises(ValueError, match="shape"):
        index.search_embeddings(np.zeros((4, 7), np.float32))


def test_memory_mapped_index_answers_identically(small_index):
    index, _ = small_index
    Q = index.model.encode_queries(["日本の歴史", "東京"])
    mapped = Index.load(index.path, mmap=True, model=index.model)
    a, b = index.search_embeddings(Q, 10), mapped.search_embeddings(Q, 10)
    np.testing.assert_array_equal(a.pids, b.pids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_threads_share_one_index(small_index):
    index, _ = small_index
    Q = index.model.encode_queries(["日本", "歴史", "科学", "音楽", "スポーツ", "料理"])
    expected = index.search_embeddings(Q, 10).pids
    results = [None] * len(Q)

    def work(i):
        for _ in range(5):
            results[i] = index.search_embeddings(Q[i], 10).pids[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(Q))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(np.stack(results), expected)
