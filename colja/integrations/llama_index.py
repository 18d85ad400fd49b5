"""LlamaIndex adapters: a retriever, a node postprocessor (reranker) and a vector store backed by colja.

>>> from colja import Index
>>> from colja.integrations.llama_index import ColjaRetriever, ColjaRerank, ColjaVectorStore
>>> index = Index.load("indexes/wiki")
>>> retriever = ColjaRetriever(index, k=10, where={"source": "wiki"})
>>> nodes = retriever.retrieve("日本一高い山は？")           # NodeWithScore, best first
>>> RetrieverQueryEngine.from_args(retriever, llm=llm, node_postprocessors=[ColjaRerank(model=index.model, top_n=3)])

Any colja searchable works (``Index``, ``InMemoryIndex``, a ``colja.Client``).
A node's id is the colja doc id, its text the passage, its metadata the
document's metadata plus ``doc_id``, ``score``, ``normalized_score``, ``rank``
(and ``parent_id`` / ``span`` for split documents); ``NodeWithScore.score`` is
the raw MaxSim score. colja errors surface as ``ValueError`` with colja's message.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Optional

from colja.integrations._common import (HIT_KEYS, Reranker, as_value_error, check_searchable, check_writable, hit_metadata,
                                        own_metadata, require, search_options)

require("llama_index.core", "llamaindex")

from llama_index.core.bridge.pydantic import ConfigDict, PrivateAttr  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition, FilterOperator,  # noqa: E402
                                                  MetadataFilters, VectorStoreQuery, VectorStoreQueryResult)

#: LlamaIndex filter operators and their colja ``where`` operators
OPERATORS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
             FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte", FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}


def hit_to_node(hit: Any) -> NodeWithScore:
    """A ``NodeWithScore`` for a colja ``Hit``: ``TextNode(id_=doc_id, text, metadata)`` with the raw MaxSim score."""
    meta = hit_metadata(hit)
    search_keys = [k for k in HIT_KEYS if k in meta]  # for the application, not for the LLM or an embedder
    node = TextNode(id_=hit.doc_id, text=hit.text or "", metadata=meta,
                    excluded_llm_metadata_keys=search_keys, excluded_embed_metadata_keys=search_keys)
    return NodeWithScore(node=node, score=float(hit.score))


def filters_to_where(filters: Optional[MetadataFilters]) -> Optional[dict[str, Any]]:
    """LlamaIndex ``MetadataFilters`` as a colja ``where`` filter; an operator colja lacks is a ``ValueError``."""
    if filters is None or not filters.filters:
        return None
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = filters_to_where(f)
            if sub is not None:
                parts.append(sub)
            continue
        op = OPERATORS.get(f.operator)
        if op is None:
            raise ValueError(f"colja filters cannot express the LlamaIndex operator {f.operator!r}; "
                             f"use one of {sorted(o.value for o in OPERATORS)}")
        parts.append({f.key: {op: f.value}})
    condition = getattr(filters, "condition", FilterCondition.AND) or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$or" if condition == FilterCondition.OR else "$and": parts}


class ColjaRetriever(BaseRetriever):
    """A LlamaIndex retriever over a colja searchable: the ``k`` best passages as ``NodeWithScore``, best first."""

    def __init__(self, index: Any, k: int = 10, where: Optional[Mapping[str, Any]] = None, first_stage: Any = None,
                 group_by_doc: bool = False, **kwargs: Any):
        self.index = check_searchable(index)
        self.k, self.where, self.first_stage, self.group_by_doc = k, where, first_stage, group_by_doc
        super().__init__(**kwargs)

    def _search(self, query: str) -> list[NodeWithScore]:
        with as_value_error():
            hits = self.index.search(query, **search_options(self.k, self.where, self.first_stage, self.group_by_doc))
        return [hit_to_node(h) for h in hits]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._search(query_bundle.query_str)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._search, query_bundle.query_str)


class ColjaRerank(BaseNodePostprocessor):
    """Reorders nodes by exact MaxSim against the query (``colja.rerank``) and keeps the best ``top_n``.

    ``model``: a loaded ColBERT (e.g. ``index.model``) or a folder / hub id,
    loaded once. The returned nodes carry the MaxSim score.
    """

    model: Any = None
    top_n: Optional[int] = 5

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _reranker: Reranker = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        self._reranker = Reranker(self.model)

    @classmethod
    def class_name(cls) -> str:
        return "ColjaRerank"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("ColjaRerank needs the query: pass query_bundle= or query_str=")
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        with as_value_error():
            hits = self._reranker.rerank(query_bundle.query_str, texts, self.top_n)
        return [NodeWithScore(node=nodes[h.pid].node, score=float(h.score)) for h in hits]


class ColjaVectorStore(BasePydanticVectorStore):
    """The LlamaIndex vector store interface over a living colja index (it encodes texts itself).

    ``add(nodes)`` adds each node's text under its ``node_id`` (its metadata
    kept, with ``ref_doc_id``), ``delete(ref_doc_id)`` removes every node of
    that source document, ``delete_nodes(node_ids)`` removes nodes,
    ``query`` searches ``query_str`` (no query embedding needed) with
    ``filters`` mapped to colja's ``where``.
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _index: Any = PrivateAttr()
    _first_stage: Any = PrivateAttr(default=None)

    def __init__(self, index: Any, first_stage: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._index = check_writable(index)
        self._first_stage = first_stage

    @classmethod
    def class_name(cls) -> str:
        return "ColjaVectorStore"

    @property
    def client(self) -> Any:
        """The colja searchable behind the store."""
        return self._index

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        texts, ids, metadata = [], [], []
        for node in nodes:
            texts.append(node.get_content(metadata_mode=MetadataMode.NONE))
            ids.append(node.node_id)
            meta = own_metadata(node.metadata)
            if node.ref_doc_id is not None:
                meta["ref_doc_id"] = node.ref_doc_id
            metadata.append(meta)
        if not texts:
            return []
        with as_value_error():
            return list(self._index.add(texts, doc_ids=ids, metadata=metadata))

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node added from the source document ``ref_doc_id`` (unknown: ``ValueError``)."""
        with as_value_error():
            total = len(self._index)
            hits = self._index.search("", k=max(total, 1), where={"ref_doc_id": ref_doc_id}) if total else []
            if not hits:
                raise ValueError(f"no node of the document {ref_doc_id!r} is in the index")
            self._index.delete([h.doc_id for h in hits])

    def delete_nodes(self, node_ids: Optional[list[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        """Delete nodes by id (``filters`` are not supported: pass the ids)."""
        if filters is not None:
            raise ValueError("ColjaVectorStore.delete_nodes deletes by node_ids; filters are not supported")
        if node_ids:
            with as_value_error():
                self._index.delete(list(node_ids))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.query_str is None:
            raise ValueError("ColjaVectorStore searches text: the query needs query_str (colja encodes it itself)")
        where = filters_to_where(query.filters)
        if query.node_ids or query.doc_ids:
            raise ValueError("ColjaVectorStore cannot restrict a query to node_ids / doc_ids; use metadata filters")
        with as_value_error():
            hits = self._index.search(query.query_str,
                                      **search_options(query.similarity_top_k, where, self._first_stage, False))
        nodes = [hit_to_node(h) for h in hits]
        return VectorStoreQueryResult(nodes=[n.node for n in nodes], similarities=[n.score for n in nodes],
                                      ids=[h.doc_id for h in hits])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


__all__ = ["ColjaRetriever", "ColjaRerank", "ColjaVectorStore", "filters_to_where", "hit_to_node"]
