"""``Client``: a colja server's index, used like an ``Index``.

>>> from colja import Client
>>> index = Client("http://127.0.0.1:8000", index="wiki", api_key="...")
>>> index.search("日本一高い山は？", k=5)[0].doc_id          # same Hit objects as Index.search
>>> index.add(["京都は古い都です。"], metadata=[{"source": "メモ"}])

Its methods take the arguments of :class:`~colja.Index` and return the same
``Hit`` / ``SearchResults`` objects; bad input raises the same errors
(``ValueError``, ``FilterError``, ``UnknownDocumentError``…), raised by the
server and re-raised here. An unreachable or failing server raises
:class:`~colja.errors.ServerError`; a refused key :class:`~colja.errors.AuthenticationError`.
Needs ``httpx`` (``pip install "colja[client]"``); no torch needed unless
numpy/torch arrays are passed.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from colja.errors import MissingDependencyError, ServerError
from colja.search.results import Hit, SearchResults
from colja.server.wire import error_from_json, hit_from_json, results_from_json


def _httpx():
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError('colja.Client needs httpx: pip install "colja[client]"') from None
    return httpx


def _plain(value: Any) -> Any:
    """numpy / torch scalars and arrays as JSON-ready Python values."""
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class Client:
    """One index of a colja server (``index``: its configured name; default: the server's only index)."""

    def __init__(self, url: str, index: str | None = None, *, api_key: str | None = None, timeout: float = 120.0,
                 transport: Any = None):
        httpx = _httpx()
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self._index = index

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        httpx = _httpx()
        try:
            response = self._http.request(method, path, json=body) if body is not None else self._http.request(method, path)
        except httpx.HTTPError as e:
            raise ServerError(0, f"cannot reach the colja server at {self.url}: {type(e).__name__}: {e}") from None
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code >= 400:
            raise error_from_json(response.status_code, data)
        return data

    @property
    def index(self) -> str:
        """The name of the index this client talks to."""
        if self._index is None:
            names = [i["name"] for i in self._request("GET", "/v1/indexes")["indexes"]]
            if len(names) != 1:
                raise ValueError(f"the server serves {len(names)} indexes {names}; pass Client(url, index=name)")
            self._index = names[0]
        return self._index

    def _path(self, tail: str) -> str:
        from urllib.parse import quote

        return f"/v1/indexes/{quote(self.index, safe='')}/{tail}"

    # ------------------------------------------------------------------ search (the searchable contract)

    def search(self, query: str, k: int = 10, *, first_stage: str | Sequence[str] | None = None,
               candidates: int | None = None, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
               **options: Any) -> list[Hit]:
        """``Index.search`` on the server: the ``min(k, allowed)`` best passages, best first."""
        body = self._search_body(k, first_stage, candidates, where, group_by_doc, options)
        body["query"] = query
        return [hit_from_json(h) for h in self._request("POST", self._path("search"), body)["hits"]]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, first_stage: str | Sequence[str] | None = None,
                     candidates: int | None = None, where: Mapping[str, Any] | None = None,
                     group_by_doc: bool = False, **options: Any) -> list[list[Hit]]:
        """``search`` for several queries, in one request (encoded together)."""
        body = self._search_body(k, first_stage, candidates, where, group_by_doc, options)
        body["queries"] = list(queries) if isinstance(queries, (list, tuple)) else queries
        data = self._request("POST", self._path("search_batch"), body)
        return [[hit_from_json(h) for h in hits] for hits in data["hits"]]

    @staticmethod
    def _search_body(k, first_stage, candidates, where, group_by_doc, options) -> dict[str, Any]:
        body: dict[str, Any] = {"k": _plain(k), "where": where, "group_by_doc": group_by_doc}
        if first_stage is not None:
            body["first_stage"] = first_stage
        if candidates is not None:
            body["candidates"] = _plain(candidates)
        if options:
            body["options"] = {name: _plain(v) for name, v in options.items()}
        return body

    def search_embeddings(self, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                          group_by_doc: bool = False, **options: Any) -> SearchResults:
        """Search with precomputed query vectors (numpy or torch, ``[Lq, dim]`` or ``[n, Lq, dim]``)."""
        if not (hasattr(Q, "shape") and hasattr(Q, "tolist")):
            raise TypeError(f"Q must be a torch.Tensor or numpy array of query vectors, got {type(Q).__name__}")
        values = Q.detach().cpu().float().tolist() if hasattr(Q, "detach") else Q.astype("float32").tolist()
        body = {"Q": values, "k": _plain(k), "where": where, "group_by_doc": group_by_doc}
        if options:
            body["options"] = {name: _plain(v) for name, v in options.items()}
        data = self._request("POST", self._path("search_embeddings"), body)
        return results_from_json(data)

    def hits(self, results: SearchResults, i: int = 0, *, query_length: int | None = None) -> list[Hit]:
        """``Hit`` objects for query ``i`` of ``results`` (documents fetched from the server)."""
        scores = [None if not math.isfinite(s) else float(s) for s in results.scores[i].tolist()]
        body = {"scores": scores, "pids": results.pids[i].tolist(), "query_length": query_length}
        return [hit_from_json(h) for h in self._request("POST", self._path("hits"), body)["hits"]]

    def explain(self, query: str, doc_id: str) -> dict[str, Any]:
        """``Index.explain`` on the server, as its JSON: ``score``, ``matches`` (one per query token:
        ``query_token``, ``passage_token``, ``start``, ``end``, ``score``…) and ``passage_tokens``."""
        return self._request("POST", self._path("explain"), {"query": query, "doc_id": doc_id})

    def rerank(self, query: str, passages: Sequence[str], *, k: int | None = None,
               doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """:func:`colja.rerank` with the server's model: ``passages`` sorted by exact MaxSim, best first."""
        body = {"query": query, "passages": list(passages) if isinstance(passages, tuple) else passages,
                "k": _plain(k), "doc_ids": list(doc_ids) if isinstance(doc_ids, tuple) else doc_ids}
        return [hit_from_json(h) for h in self._request("POST", "/v1/rerank", body)["hits"]]

    # ------------------------------------------------------------------ write

    def add(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, *, split: bool | None = None,
            max_tokens: int | None = None, overlap: int | None = None) -> list[str]:
        """Add documents on the server (one crash-safe write); returns their ids."""
        body: dict[str, Any] = {"texts": _seq(texts), "doc_ids": _seq(doc_ids), "metadata": _seq(metadata)}
        body.update({n: v for n, v in (("split", split), ("max_tokens", max_tokens), ("overlap", overlap))
                     if v is not None})
        return self._request("POST", self._path("documents"), body)["doc_ids"]

    def update(self, doc_ids: Sequence[str], texts: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, *, split: bool | None = None,
               max_tokens: int | None = None, overlap: int | None = None) -> None:
        """Replace documents by new texts, keeping their ids (``metadata=None`` keeps theirs)."""
        body: dict[str, Any] = {"doc_ids": _seq(doc_ids), "texts": _seq(texts), "metadata": _seq(metadata)}
        body.update({n: v for n, v in (("split", split), ("max_tokens", max_tokens), ("overlap", overlap))
                     if v is not None})
        self._request("PUT", self._path("documents"), body)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents by id; returns the passages deleted (unknown ids: nothing is deleted)."""
        return self._request("POST", self._path("documents/delete"), {"doc_ids": _seq(doc_ids)})["deleted"]

    # ------------------------------------------------------------------ inspection

    def stats(self) -> dict[str, Any]:
        """The index's ``stats()`` (passages, vectors, bytes…), without server paths."""
        return self._request("GET", self._path("stats"))

    def __len__(self) -> int:
        """Live passages."""
        return int(self.stats()["live_passages"])

    def healthy(self) -> bool:
        """True once the server has loaded its indexes (``/readyz``)."""
        try:
            self._request("GET", "/readyz")
        except ServerError:
            return False
        return True

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, index={self._index!r})"


def _seq(value: Any) -> Any:
    """Tuples as lists (JSON arrays); anything else as it is, for the server to check."""
    return list(value) if isinstance(value, tuple) else value


__all__ = ["Client"]
