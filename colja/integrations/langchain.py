"""LangChain adapters: a retriever, a reranker (document compressor) and a vector store backed by colja.

>>> from colja import Index
>>> from colja.integrations.langchain import ColjaRetriever, ColjaReranker, ColjaVectorStore
>>> index = Index.load("indexes/wiki")
>>> retriever = ColjaRetriever(index=index, k=10, where={"source": "wiki"})
>>> docs = retriever.invoke("日本一高い山は？")              # Documents, best first
>>> reranker = ColjaReranker(model=index.model, top_n=3)    # for ContextualCompressionRetriever
>>> store = ColjaVectorStore(index)                          # add_texts / delete / similarity_search
>>> store.as_retriever(search_kwargs={"k": 4, "filter": {"source": "wiki"}})

Any colja searchable works (``Index``, ``InMemoryIndex``, a ``colja.Client``):
the adapters call only ``search`` / ``add`` / ``delete``. A document's
metadata is its colja metadata plus ``doc_id``, ``score`` (raw MaxSim),
``normalized_score``, ``rank`` and, for split documents, ``parent_id`` and
``span``. colja errors reach LangChain as ``ValueError`` with colja's message.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Optional, Sequence

from colja.integrations._common import (Reranker, as_value_error, check_searchable, check_writable, hit_metadata,
                                        merge_where, own_metadata, require, search_options)

require("langchain_core", "langchain")

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import BaseDocumentCompressor, Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from pydantic import ConfigDict, Field, PrivateAttr, field_validator  # noqa: E402


def hit_to_document(hit: Any) -> Document:
    """A LangChain ``Document`` for a colja ``Hit``: the passage text, metadata plus the hit's fields, ``id`` = doc id."""
    return Document(page_content=hit.text or "", metadata=hit_metadata(hit), id=hit.doc_id)


class ColjaRetriever(BaseRetriever):
    """A LangChain retriever over a colja searchable: ``k`` best passages as ``Document``s, best first.

    ``where``: a colja metadata filter; ``first_stage``: passed to ``search``
    when set (``Index`` knows ``"plaid"``, ``"bm25"``, ``"hybrid"``, …);
    ``group_by_doc``: the best passage per split document.
    """

    index: Any
    k: int = 10
    where: Optional[dict] = None
    first_stage: Any = None
    group_by_doc: bool = False

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @field_validator("index")
    @classmethod
    def _searchable(cls, index: Any) -> Any:
        return check_searchable(index)

    def _search(self, query: str) -> list[Document]:
        with as_value_error():
            hits = self.index.search(query, **search_options(self.k, self.where, self.first_stage, self.group_by_doc))
        return [hit_to_document(h) for h in hits]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._search(query)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return await asyncio.to_thread(self._search, query)  # searches release the GIL in the kernels


class ColjaReranker(BaseDocumentCompressor):
    """Reorders any retriever's documents by exact MaxSim (``colja.rerank``) and keeps the best ``top_n``.

    For ``ContextualCompressionRetriever(base_compressor=ColjaReranker(...), base_retriever=...)``.
    ``model``: a loaded ColBERT (e.g. ``index.model``) or a folder / hub id,
    loaded once on first use. Each returned document is a copy with
    ``relevance_score`` (raw MaxSim) and ``rerank`` (1 = best) in its metadata.
    """

    model: Any = None
    top_n: Optional[int] = 5

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _reranker: Reranker = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        self._reranker = Reranker(self.model)

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Any = None) -> Sequence[Document]:
        docs = list(documents)
        with as_value_error():
            hits = self._reranker.rerank(query, [d.page_content for d in docs], self.top_n)
        out = []
        for hit in hits:
            doc = docs[hit.pid]
            meta = dict(doc.metadata, relevance_score=float(hit.score), rerank=int(hit.rank))
            out.append(Document(page_content=doc.page_content, metadata=meta, id=doc.id))
        return out

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Any = None) -> Sequence[Document]:
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


class ColjaVectorStore(VectorStore):
    """The LangChain ``VectorStore`` interface over a living colja index (it encodes texts itself).

    ``add_texts`` / ``add_documents`` add documents (ids and metadata kept),
    ``delete(ids)`` removes them, ``similarity_search(query, k, filter=...)``
    searches with ``filter`` as colja's ``where``; ``as_retriever`` works as
    for any vector store (``search_kwargs={"k": 4, "filter": {...}}``).
    Scores are raw MaxSim (higher is better).
    """

    def __init__(self, index: Any, *, first_stage: Any = None, group_by_doc: bool = False):
        self.index = check_writable(index)
        self.first_stage = first_stage
        self.group_by_doc = group_by_doc

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return None  # colja encodes with its own late-interaction model

    # ------------------------------------------------------------------ write
    def add_texts(self, texts: Iterable[str], metadatas: Optional[list[dict]] = None, *,
                  ids: Optional[list[str]] = None, **kwargs: Any) -> list[str]:
        """Encode and add ``texts``; returns their ids (colja numbers them when ``ids`` is None)."""
        texts = list(texts)
        if ids is not None and any(i is None for i in ids):
            ids = None if all(i is None for i in ids) else ids
        metadata = None if metadatas is None else [own_metadata(m) for m in metadatas]
        with as_value_error():
            return list(self.index.add(texts, doc_ids=None if ids is None else list(ids), metadata=metadata))

    def delete(self, ids: Optional[list[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Delete documents by id; unknown ids raise ``ValueError`` and nothing is deleted."""
        if ids is None:
            raise ValueError("ColjaVectorStore.delete needs the ids to delete")
        with as_value_error():
            self.index.delete(list(ids))
        return True

    # ------------------------------------------------------------------ search
    def similarity_search_with_score(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """``(Document, raw MaxSim score)`` pairs, best first; ``filter`` (or ``where``) is a colja filter."""
        where = merge_where(kwargs.pop("where", None), filter)
        first_stage = kwargs.pop("first_stage", self.first_stage)
        group_by_doc = kwargs.pop("group_by_doc", self.group_by_doc)
        if kwargs:
            raise TypeError(f"unknown search options {sorted(kwargs)}; use k, filter, where, first_stage, group_by_doc")
        with as_value_error():
            hits = self.index.search(query, **search_options(k, where, first_stage, group_by_doc))
        return [(hit_to_document(h), float(h.score)) for h in hits]

    def similarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    async def asimilarity_search_with_score(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(self.similarity_search_with_score, query, k, filter, **kwargs)

    async def asimilarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                 **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search, query, k, filter, **kwargs)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Optional[Embeddings] = None,
                   metadatas: Optional[list[dict]] = None, *, ids: Optional[list[str]] = None,
                   index: Any = None, model: Any = None, path: Any = None, **kwargs: Any) -> "ColjaVectorStore":
        """A store holding ``texts``: added to ``index`` if given, else a new ``Index`` at ``path``
        (``Index.build`` keywords in ``kwargs``), else a new ``InMemoryIndex``; ``model``: the encoder.
        ``embedding`` is ignored (colja encodes with its own model)."""
        store_options = {k: kwargs.pop(k) for k in ("first_stage", "group_by_doc") if k in kwargs}
        metadata = None if metadatas is None else [own_metadata(m) for m in metadatas]
        with as_value_error():
            if index is not None:
                store = cls(index, **store_options)
                store.add_texts(texts, metadatas, ids=ids)
                return store
            if path is not None:
                from colja.searchable.index import Index

                built = Index.build(list(texts), path, model=model if model is not None else _default_model(),
                                    doc_ids=ids, metadata=metadata, **kwargs)
            else:
                from colja.searchable.memory import InMemoryIndex

                if kwargs:
                    raise TypeError(f"unknown options {sorted(kwargs)} for an in-memory store; pass path= to build an Index")
                built = InMemoryIndex.build(list(texts), model=model, doc_ids=ids, metadata=metadata)
        return cls(built, **store_options)


def _default_model() -> str:
    from colja.model.encoder import DEFAULT_MODEL

    return DEFAULT_MODEL


__all__ = ["ColjaRetriever", "ColjaReranker", "ColjaVectorStore", "hit_to_document"]
