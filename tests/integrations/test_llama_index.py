"""The LlamaIndex adapters against the real ``llama-index-core``: retriever, node postprocessor, vector store."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed (pip install 'colja[llamaindex]')")

from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter,  # noqa: E402
                                                  MetadataFilters, VectorStoreQuery)

from colja import InMemoryIndex, rerank  # noqa: E402
from colja.integrations.llama_index import ColjaRerank, ColjaRetriever, ColjaVectorStore, filters_to_where  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


def _same(nodes, hits):
    assert [n.node.node_id for n in nodes] == [h.doc_id for h in hits]
    assert [n.node.get_content() for n in nodes] == [h.text for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits], abs=0)
    for n, h in zip(nodes, hits):
        assert {k: n.node.metadata[k] for k in h.metadata} == h.metadata
        assert n.node.metadata["rank"] == h.rank


def test_retriever_returns_the_index_hits(index, queries):
    retriever = ColjaRetriever(index, k=5)
    for q in queries:
        _same(retriever.retrieve(q), index.search(q, k=5))
    where = {"source": "図書館"}
    filtered = ColjaRetriever(index, k=3, where=where)
    _same(filtered.retrieve(queries[0]), index.search(queries[0], k=3, where=where))
    _same(asyncio.run(filtered.aretrieve(queries[1])), index.search(queries[1], k=3, where=where))


def test_rerank_postprocessor_order_equals_colja_rerank(index, queries, _fixture_model):
    nodes = ColjaRetriever(index, k=10).retrieve(queries[3])
    post = ColjaRerank(model=_fixture_model, top_n=4)
    out = post.postprocess_nodes(nodes, query_str=queries[3])
    expected = rerank(queries[3], [n.node.get_content() for n in nodes], k=4, model=_fixture_model)
    assert [n.node.node_id for n in out] == [nodes[h.pid].node.node_id for h in expected]
    assert [n.score for n in out] == pytest.approx([h.score for h in expected])
    with pytest.raises(ValueError, match="needs the query"):
        post.postprocess_nodes(nodes)


def test_filters_map_to_where():
    filters = MetadataFilters(filters=[MetadataFilter(key="source", value="図書館"),
                                       MetadataFilter(key="n", value=10, operator=FilterOperator.GTE)],
                              condition=FilterCondition.AND)
    assert filters_to_where(filters) == {"$and": [{"source": {"$eq": "図書館"}}, {"n": {"$gte": 10}}]}
    with pytest.raises(ValueError, match="cannot express"):
        filters_to_where(MetadataFilters(filters=[MetadataFilter(key="t", value="x", operator=FilterOperator.TEXT_MATCH)]))


def test_vector_store_add_query_delete(_fixture_model):
    store = ColjaVectorStore(InMemoryIndex(_fixture_model))
    nodes = [TextNode(id_="fuji-0", text="富士山は日本一高い山です。", metadata={"分類": "山"}),
             TextNode(id_="fuji-1", text="富士山は静岡県と山梨県にあります。", metadata={"分類": "山"}),
             TextNode(id_="tera", text="京都には古い寺が多い。ｶﾀｶﾅ😀", metadata={"分類": "寺"})]
    for node in nodes[:2]:
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="富士山の記事")
    assert store.add(nodes) == ["fuji-0", "fuji-1", "tera"]
    result = store.query(VectorStoreQuery(query_str="日本一高い山", similarity_top_k=2,
                                          filters=MetadataFilters(filters=[MetadataFilter(key="分類", value="山")])))
    assert set(result.ids) == {"fuji-0", "fuji-1"} and len(result.similarities) == 2
    assert result.nodes[0].metadata["分類"] == "山"
    store.delete("富士山の記事")  # every node of that source document
    left = store.query(VectorStoreQuery(query_str="山", similarity_top_k=5))
    assert left.ids == ["tera"]
    with pytest.raises(ValueError, match="no node of the document"):
        store.delete("富士山の記事")
    store.delete_nodes(["tera"])
    assert store.query(VectorStoreQuery(query_str="山", similarity_top_k=5)).ids == []
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1, 0.2], similarity_top_k=1))
    assert asyncio.run(store.aquery(VectorStoreQuery(query_str="山", similarity_top_k=1))).ids == []


def test_nodes_are_llama_index_types(index):
    nodes = ColjaRetriever(index, k=2).retrieve(QueryBundle(query_str="東京"))
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
