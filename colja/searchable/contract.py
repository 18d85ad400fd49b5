"""The searchable contract: what every index a user holds does, the same way.

``Index`` (compressed, on disk), ``InMemoryIndex`` (exact, in memory) and the
ones to come (a sharded index, the HTTP client) all satisfy
:class:`Searchable`; code written against it (a server route, a LangChain
retriever, an evaluation loop) works with any of them.

| method | returns | errors (every searchable raises the same) |
| --- | --- | --- |
| ``search(query, k=10, *, where=None, group_by_doc=False, **options)`` | ``list[Hit]``, best first, ``min(k, allowed)`` long | ``TypeError``: query not a str; ``ValueError``: ``k`` not a positive int; :class:`~colja.errors.FilterError`: bad ``where``; ``TypeError``: unknown option |
| ``search_batch(queries, k=10, ...)`` | ``list[list[Hit]]``, one list per query | as ``search``; ``TypeError`` names a query that is not a str |
| ``search_embeddings(Q, k=10, *, where=None, group_by_doc=False, **options)`` | :class:`~colja.SearchResults` (``[n, k]`` scores / pids, padded ``-inf`` / ``-1``) | ``TypeError`` / ``ValueError``: bad ``Q`` (shape, dim, NaN) or ``k`` |
| ``hits(results, i=0)`` | ``list[Hit]`` of query ``i`` of a ``SearchResults`` it returned | |
| ``add(texts, doc_ids=None, metadata=None)`` | the new documents' ids | :class:`~colja.errors.CollectionError`: bad or duplicate ids, bad metadata (nothing added) |
| ``delete(doc_ids)`` | passages deleted | :class:`~colja.errors.UnknownDocumentError` (a ``KeyError``): unknown ids (nothing deleted) |
| ``len(index)`` | live passages | |

Scores are raw MaxSim (Σ over query vectors of the best dot product);
``Hit.normalized_score`` divides by the query's vectors. Ties are broken by
the smaller internal passage id, so equal inputs give equal rankings. A
search never sees a write half-way.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from colja.search.results import Hit, SearchResults


@runtime_checkable
class Searchable(Protocol):
    """An index a user can search, add to and delete from (see the module docstring for the rules)."""

    def search(self, query: str, k: int = 10, *, where: Mapping[str, Any] | None = None,
               group_by_doc: bool = False, **options: Any) -> list[Hit]: ...

    def search_batch(self, queries: Sequence[str], k: int = 10, *, where: Mapping[str, Any] | None = None,
                     group_by_doc: bool = False, **options: Any) -> list[list[Hit]]: ...

    def search_embeddings(self, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                          group_by_doc: bool = False, **options: Any) -> SearchResults: ...

    def hits(self, results: SearchResults, i: int = 0) -> list[Hit]: ...

    def add(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None) -> list[str]: ...

    def delete(self, doc_ids: Sequence[str]) -> int: ...

    def __len__(self) -> int: ...


__all__ = ["Searchable", "Hit", "SearchResults"]
