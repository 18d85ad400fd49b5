"""colja.rerank and the in-memory index, against exact MaxSim on the fixture model."""

from __future__ import annotations

import json

import pytest
import torch

import colja
from colja import InMemoryIndex, rerank, rerank_batch
from tests.oracle import maxsim_matrix
from tests.conftest import FIXTURE_REFERENCE

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def texts():
    return json.loads((FIXTURE_REFERENCE / "texts.json").read_text(encoding="utf-8"))


def test_rerank_order_equals_exhaustive_maxsim(fixture_model, texts):
    query, passages = texts["queries"][0], texts["documents"][:20]
    hits = rerank(query, passages, model=fixture_model)
    exact = maxsim_matrix(fixture_model.encode_queries([query]), fixture_model.encode_documents(passages))[0]
    assert [h.pid for h in hits] == torch.argsort(exact, descending=True, stable=True).tolist()
    torch.testing.assert_close(torch.tensor([h.score for h in hits]), exact.sort(descending=True).values, rtol=1e-5, atol=1e-5)
    assert [h.rank for h in hits] == list(range(1, 21))
    assert all(abs(h.normalized_score - h.score / 32) < 1e-6 for h in hits)
    assert hits[0].text == passages[hits[0].pid]


def test_rerank_k_and_doc_ids(fixture_model, texts):
    passages = texts["documents"][:10]
    everything = rerank(texts["queries"][1], passages, model=fixture_model)
    top3 = rerank(texts["queries"][1], passages, k=3, model=fixture_model, doc_ids=[f"文書{i}" for i in range(10)])
    assert len(top3) == 3
    assert [h.pid for h in top3] == [h.pid for h in everything[:3]]
    assert [h.doc_id for h in top3] == [f"文書{h.pid}" for h in everything[:3]]
    assert [h.doc_id for h in everything] == [str(h.pid) for h in everything]
    with pytest.raises(ValueError, match="one id per passage"):
        rerank("質問", ["a", "b"], model=fixture_model, doc_ids=["only one"])


def test_rerank_batch_matches_single_queries(fixture_model, texts):
    qs = texts["queries"][:3]
    lists = [texts["documents"][:5], texts["documents"][3:9], []]
    batched = rerank_batch(qs, lists, model=fixture_model)
    assert batched[2] == []
    for q, lst, got in zip(qs[:2], lists[:2], batched[:2]):
        assert [h.pid for h in got] == [h.pid for h in rerank(q, lst, model=fixture_model)]


def test_rerank_bad_input(fixture_model):
    with pytest.raises(TypeError, match=r"\[1\]"):
        rerank("質問", ["ok", None], model=fixture_model)
    with pytest.raises(ValueError, match="one candidate list per query"):
        rerank_batch(["a", "b"], [["x"]], model=fixture_model)
    with pytest.raises(ValueError, match="k must be"):
        rerank("質問", ["x"], k=0, model=fixture_model)


def test_in_memory_index_search_add_delete(fixture_model, texts):
    docs = texts["documents"][:15]
    index = InMemoryIndex.build(docs, model=fixture_model, metadata=[{"n": i} for i in range(15)])
    assert len(index) == 15
    hits = index.search(texts["queries"][0], k=5)
    expected = rerank(texts["queries"][0], docs, model=fixture_model, k=5)
    assert [h.doc_id for h in hits] == [str(h.pid) for h in expected]
    assert hits[0].metadata == {"n": int(hits[0].doc_id)}
    new_ids = index.add(["追加された文書です。"], doc_ids=["extra"])
    assert new_ids == ["extra"] and len(index) == 16
    # a passage's own vectors as the query: every vector finds itself (dot 1), the maximum possible
    own = fixture_model.encode_documents(["追加された文書です。"])[0]
    assert index.hits(index.search_embeddings(own, k=1))[0].doc_id == "extra"
    index.delete(["extra", hits[0].doc_id])
    assert len(index) == 14
    assert all(h.doc_id not in ("extra", hits[0].doc_id) for h in index.search(texts["queries"][0], k=14))
    with pytest.raises(colja.CollectionError, match="already in the index"):
        index.add(["x"], doc_ids=["1"])
    with pytest.raises(colja.UnknownDocumentError):
        index.delete(["nope"])
    assert len(index.search("何か", k=100)) == 14


def test_in_memory_empty(fixture_model):
    index = InMemoryIndex(fixture_model)
    assert index.search("質問", k=3) == []


def test_index_in_memory_is_the_same_exact_search(fixture_model, texts):
    from colja import Index

    docs = texts["documents"][:10]
    memory = Index.in_memory(docs, model=fixture_model, doc_ids=[f"d{i}" for i in range(10)])
    assert isinstance(memory, InMemoryIndex) and len(memory) == 10
    expected = rerank(texts["queries"][1], docs, model=fixture_model, k=3)
    assert [h.doc_id for h in memory.search(texts["queries"][1], k=3)] == [f"d{h.pid}" for h in expected]
