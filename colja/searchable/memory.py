"""``InMemoryIndex``: exact MaxSim over uncompressed vectors in RAM, no files.

For notebooks and small collections (up to some tens of thousands of
passages): nothing is written, every search scores every allowed passage
exactly, ``add`` / ``delete`` are instant. Vectors are kept in float16 (256
bytes per 128-d token vector) and scored in float32. Documents, metadata
filters (``where=``) and errors are those of :class:`~colja.Index`: it
satisfies the same :class:`~colja.searchable.contract.Searchable` contract.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping, Sequence

import torch

from colja.index.docstore import DocStore
from colja.index.documents import check_id_list, prepare_documents
from colja.index.writes import live_pids
from colja.errors import CollectionError
from colja.model.encoder import Encoder, resolve_model
from colja.search import engine
from colja.search.exact import VectorSnapshot
from colja.search.explain import Explanation, check_doc_id, explain_best
from colja.search.results import Hit, SearchResults


class InMemoryIndex:
    """Exact MaxSim search over passages held in memory.

    Build with :meth:`colja.Index.in_memory` (or ``InMemoryIndex(model)`` then
    :meth:`add`). Thread-safe: writes take a lock, each search sees one
    consistent snapshot.
    """

    def __init__(self, model: Encoder | str | None = None, *, batch_size: int = 32):
        self.model = resolve_model(model)
        self.batch_size = batch_size
        self.dim = int(self.model.dim)
        self._docs = DocStore.memory()
        self._vectors: list[torch.Tensor] = []
        self._lock = threading.Lock()
        self._snapshot = VectorSnapshot([], self._docs, self.dim)

    @classmethod
    def build(cls, collection: Iterable[str], *, model: Encoder | str | None = None, doc_ids: Sequence[str] | None = None,
              metadata: Sequence[dict | None] | None = None, batch_size: int = 32) -> "InMemoryIndex":
        index = cls(model, batch_size=batch_size)
        index.add(list(collection), doc_ids=doc_ids, metadata=metadata)
        return index

    def __len__(self) -> int:
        """Live passages."""
        return self._docs.count_live()

    @property
    def doc_ids(self) -> list[str]:
        """The live documents' ids, in the order they were added."""
        live = self._snapshot.allowed()
        ids = self._docs.all_doc_ids()[: self._snapshot.num_passages]
        return ids if live is None else [d for d, keep in zip(ids, live.tolist()) if keep]

    # ------------------------------------------------------------------ write
    def add(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None) -> list[str]:
        """Encode and add passages; returns their doc ids (default: numbers after every number id used).

        Bad or duplicate ids and bad metadata raise :class:`~colja.errors.CollectionError`; nothing is added then.
        """
        docs = prepare_documents(lambda: self.model, self.dim, texts, doc_ids, metadata, batch_size=self.batch_size)
        if docs.num_documents == 0:
            return []
        with self._lock:
            n = len(self._vectors)
            ids = docs.assign_ids(max(n, self._docs.max_numeric_id() + 1))
            taken = self._docs.live_pids_by_id(ids)
            if taken:
                raise CollectionError(f"{len(taken)} document id(s) are already in the index, e.g. {sorted(taken)[:5]}; "
                                      "delete them first to replace them (nothing was added)")
            self._docs.add(range(n, n + len(ids)), ids, docs.texts(), docs.passage_metadata())
            offsets = [0, *docs.doclens.cumsum().tolist()]
            self._vectors.extend(docs.vectors[a:b].half() for a, b in zip(offsets[:-1], offsets[1:]))
            self._snapshot = VectorSnapshot(self._vectors, self._docs, self.dim)
        return ids

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove documents by id; returns the passages removed. Unknown ids raise
        :class:`~colja.errors.UnknownDocumentError` and nothing is removed."""
        ids = check_id_list(doc_ids)
        if not ids:
            return 0
        with self._lock:
            pids = live_pids(self._snapshot, ids, "deleted")
            self._docs.tombstone(pids)
            for p in pids:  # free the vectors; the pid keeps its place
                self._vectors[p] = self._vectors[p][:0]
            self._snapshot = VectorSnapshot(self._vectors, self._docs, self.dim)
        return len(pids)

    # ------------------------------------------------------------------ search (the searchable contract)
    def search(self, query: str, k: int = 10, *, where: Mapping[str, Any] | None = None,
               group_by_doc: bool = False) -> list[Hit]:
        """The ``min(k, allowed passages)`` best passages for one query, scored exactly, best first."""
        return self.search_batch([engine.check_query(query)], k, where=where, group_by_doc=group_by_doc)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, where: Mapping[str, Any] | None = None,
                     group_by_doc: bool = False) -> list[list[Hit]]:
        """``search`` for several queries (encoded together)."""
        return engine.search_texts(self._snapshot, self.model, queries, k, where=where, group_by_doc=group_by_doc)

    def search_embeddings(self, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                          group_by_doc: bool = False) -> SearchResults:
        """Search with query vectors ``[Lq, dim]`` or ``[n, Lq, dim]``: :class:`SearchResults` ``[n, k]``."""
        return engine.search_vectors(self._snapshot, Q, k, where=where, group_by_doc=group_by_doc)

    def hits(self, results: SearchResults, i: int = 0, *, query_length: int | None = None) -> list[Hit]:
        """``Hit`` objects for query ``i`` of ``results``."""
        return engine.to_hits(self._snapshot, results, i, query_length=query_length)

    def explain(self, query: str, doc_id: str) -> Explanation:
        """Why ``doc_id`` matched ``query``: the MaxSim alignment token by token (see :meth:`colja.Index.explain`)."""
        engine.check_query(query)
        check_doc_id(doc_id)
        snapshot = self._snapshot
        pids = live_pids(snapshot, [doc_id], "explained")
        records = self._docs.records(pids)
        return explain_best(self.model, query, [(r.doc_id, r.text, snapshot.D[snapshot.doc_offsets[p]:snapshot.doc_offsets[p + 1]])
                                                for r, p in zip(records, pids)])

    def __repr__(self) -> str:
        return f"InMemoryIndex(passages={len(self)}, model={getattr(self.model, 'name_or_path', None)!r})"


__all__ = ["InMemoryIndex"]
