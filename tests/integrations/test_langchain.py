"""The LangChain adapters against the real ``langchain-core``: retriever, reranker, vector store."""

from __future__ import annotations

import asyncio
import warnings

import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed (pip install 'colja[langchain]')")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402

from colja import InMemoryIndex, Index, rerank  # noqa: E402
from colja.integrations.langchain import ColjaReranker, ColjaRetriever, ColjaVectorStore  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


def _same(docs, hits):
    assert [d.metadata["doc_id"] for d in docs] == [h.doc_id for h in hits]
    assert [d.id for d in docs] == [h.doc_id for h in hits]
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert [d.metadata["score"] for d in docs] == pytest.approx([h.score for h in hits], abs=0)
    assert [d.metadata["rank"] for d in docs] == list(range(1, len(hits) + 1))
    for d, h in zip(docs, hits):
        assert {k: d.metadata[k] for k in h.metadata} == h.metadata  # the document's own metadata, unchanged


def test_retriever_returns_the_index_hits(index, queries):
    retriever = ColjaRetriever(index=index, k=5)
    for q in queries:
        _same(retriever.invoke(q), index.search(q, k=5))


def test_retriever_filter_first_stage_and_async(index, queries):
    where = {"source": "図書館"}
    retriever = ColjaRetriever(index=index, k=4, where=where)
    docs = retriever.invoke(queries[0])
    assert docs and all(d.metadata["source"] == "図書館" for d in docs)
    _same(docs, index.search(queries[0], k=4, where=where))
    got = asyncio.run(retriever.ainvoke(queries[1]))
    _same(got, index.search(queries[1], k=4, where=where))
    batch = asyncio.run(retriever.abatch(queries[:3]))
    for q, docs in zip(queries[:3], batch):
        _same(docs, index.search(q, k=4, where=where))
    exhaustive = ColjaRetriever(index=index, k=3, first_stage="plaid")
    _same(exhaustive.invoke(queries[2]), index.search(queries[2], k=3, first_stage="plaid"))


def test_retriever_errors_are_value_errors_with_colja_message(index):
    with pytest.raises(ValueError, match=r"\$regex"):
        ColjaRetriever(index=index, where={"n": {"$regex": "x"}}).invoke("東京")
    with pytest.raises(ValueError, match="no first stage named 'bm25'"):
        ColjaRetriever(index=index, first_stage="bm25").invoke("東京")
    with pytest.raises(Exception, match="searchable"):
        ColjaRetriever(index="indexes/wiki")


def test_reranker_order_equals_colja_rerank(index, queries, _fixture_model):
    docs = ColjaRetriever(index=index, k=12).invoke(queries[3])
    reranker = ColjaReranker(model=_fixture_model, top_n=5)
    out = reranker.compress_documents(docs, queries[3])
    expected = rerank(queries[3], [d.page_content for d in docs], k=5, model=_fixture_model)
    assert [d.id for d in out] == [docs[h.pid].id for h in expected]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([h.score for h in expected])
    assert [d.metadata["rerank"] for d in out] == [1, 2, 3, 4, 5]
    assert asyncio.run(reranker.acompress_documents(docs, queries[3])) == out
    assert reranker.compress_documents([], "東京") == []
    # a chain: retriever, then the reranker, as LCEL
    chain = ColjaRetriever(index=index, k=12) | RunnableLambda(lambda d: reranker.compress_documents(d, queries[3]))
    assert [d.id for d in chain.invoke(queries[3])] == [d.id for d in out]
    with pytest.raises(ValueError, match="top_n must be a positive int"):
        ColjaReranker(model=_fixture_model, top_n=0).compress_documents(docs, "東京")


def test_vector_store_over_a_living_index(_fixture_model, rows, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = ColjaVectorStore.from_texts([r["text"] for r in rows[:30]], path=tmp_path / "vs", model=_fixture_model,
                                            ids=[r["_id"] for r in rows[:30]],
                                            metadatas=[{"分類": "百科", "i": i} for i in range(30)])
        assert isinstance(store.index, Index) and len(store.index) == 30
        new_text = "富士山は静岡県と山梨県にまたがる日本一高い山です。ﾌｼﾞｻﾝ😀"
        ids = store.add_texts([new_text], metadatas=[{"分類": "山", "名前": "富士山"}], ids=["fuji"])
        assert ids == ["fuji"]
        found = store.similarity_search_with_score("日本一高い山", k=3, filter={"分類": "山"})
    assert [d.id for d, _ in found] == ["fuji"]
    doc, score = found[0]
    assert doc.page_content == new_text and doc.metadata["名前"] == "富士山" and score == doc.metadata["score"]
    retriever = store.as_retriever(search_kwargs={"k": 4, "filter": {"分類": "百科"}})
    assert len(retriever.invoke("日本一高い山")) == 4
    assert all(d.metadata["分類"] == "百科" for d in retriever.invoke("日本一高い山"))
    assert store.delete(["fuji"]) is True
    assert "fuji" not in [d.id for d in store.similarity_search("日本一高い山", k=31)]
    with pytest.raises(ValueError, match="not in the index"):
        store.delete(["fuji"])
    with pytest.raises(ValueError, match="already in the index"):
        store.add_texts(["重複"], ids=[rows[0]["_id"]])
    # add_documents, the LangChain way, keeps ids and metadata
    store.add_documents([Document(page_content="京都の寺", metadata={"分類": "寺"}, id="tera")])
    assert [d.id for d in store.similarity_search("寺", k=1, filter={"分類": "寺"})] == ["tera"]
    assert asyncio.run(store.asimilarity_search("寺", k=1, filter={"分類": "寺"}))[0].id == "tera"


def test_vector_store_in_memory(_fixture_model):
    store = ColjaVectorStore.from_texts(["東京タワー", "大阪城", "名古屋城"], model=_fixture_model, ids=["a", "b", "c"])
    assert isinstance(store.index, InMemoryIndex)
    assert {d.id for d in store.similarity_search("城", k=3)} == {"a", "b", "c"}
    store.delete(["b"])
    assert {d.id for d in store.similarity_search("城", k=3)} == {"a", "c"}
