"""``create_app``: the FastAPI app of ``colja serve`` (search, rerank, writes, explain, health, metrics, page).

>>> from colja.server import create_app
>>> app = create_app({"wiki": "indexes/wiki"}, api_keys="keys.txt")   # then: uvicorn.run(app)

Every route under ``/v1`` answers JSON; errors are
``{"error": {"type", "message", "status"}}`` with a 4xx status for bad input
(the class the Python call would raise: ``ValueError``, ``FilterError``, …),
401/403 for keys, 404 for unknown indexes or documents, 413 for a body over
the limit, 503 while loading or overloaded, 504 past the time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from colja._version import __version__
from colja.server import schemas as s
from colja.server.auth import READ, WRITE, ApiKeys, as_api_keys
from colja.server.metrics import Metrics
from colja.server.service import ApiError, ServerSettings, Service
from colja.server.wire import error_body, error_status, hit_to_json, results_from_json, results_to_json

logger = logging.getLogger("colja.server")
STATIC = Path(__file__).with_name("static")


def create_app(indexes: Mapping[str, Any], *, model: Any = None,
               api_keys: ApiKeys | Mapping[str, str] | str | os.PathLike | None = None,
               settings: ServerSettings | None = None, **setting_overrides: Any) -> FastAPI:
    """An ASGI app serving ``indexes`` (name -> index folder, or an ``Index`` / ``InMemoryIndex``).

    ``model``: a ColBERT or a model folder / hub id, used for every index and for
    ``/v1/rerank`` (default: each index's recorded model; reranking uses the first
    index's). ``api_keys``: a keys file (see :mod:`colja.server.auth`) or
    ``{key: "read" | "write"}``; without it every request is allowed (the server
    binds 127.0.0.1 unless told otherwise). ``setting_overrides``: fields of
    :class:`ServerSettings` (``workers``, ``request_timeout``, ``max_request_bytes``,
    ``batch_window``, ``max_batch``, ``max_k``, ``max_items``, ``mmap``…).
    Indexes load in the background once the app starts; ``/readyz`` says when.
    """
    if settings is None:
        settings = ServerSettings(**setting_overrides)
    elif setting_overrides:
        raise TypeError("pass either settings= or its fields as keywords, not both")
    keys = as_api_keys(api_keys)
    service = Service(indexes, model=model, settings=settings)
    metrics = Metrics(batchers=lambda: [service.batcher])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # on the search pool: torch work stays on the threads that search (see ShortLivedThreads)
        loader = asyncio.get_running_loop().run_in_executor(service.read_pool, service.load)
        loader.add_done_callback(lambda f: f.exception())  # the error is kept in service.load_error
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(loader), 300)
            await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(title="colja", version=__version__, lifespan=lifespan,
                  description="Japanese late-interaction (ColBERT) search: search, rerank, explain, write.")
    app.state.service, app.state.metrics = service, metrics

    # ------------------------------------------------------------------ errors

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.type_name, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                 for e in exc.errors()[:5]]
        return _error(request, 422, "ValueError", "invalid request body: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = "NotFound" if exc.status_code == 404 else "MethodNotAllowed" if exc.status_code == 405 else "HTTPError"
        return _error(request, exc.status_code, name, f"{exc.detail}: {request.method} {request.url.path}",
                      getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s", request.url.path)
        return _error(request, 500, "InternalError", f"internal error ({type(exc).__name__}); see the server log")

    # ------------------------------------------------------------------ auth

    def need(access: str):
        async def check(request: Request) -> None:
            if keys is None:
                return
            header = request.headers.get("authorization") or ""
            scheme, _, token = header.partition(" ")
            granted = keys.access(token.strip()) if scheme.lower() == "bearer" else None
            if granted is None:
                raise ApiError(401, "AuthenticationError",
                               "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                               {"WWW-Authenticate": "Bearer"})
            if access == WRITE and granted != WRITE:
                raise ApiError(403, "AuthenticationError", "this API key is read-only; writes need a read-write key")

        return Depends(check)

    reader, writer = need(READ), need(WRITE)

    async def call(fn):
        try:
            return await service.read(fn)
        except ApiError:
            raise
        except Exception as exc:
            raise _as_api_error(exc) from exc

    async def search_one(slot, body: s.SearchRequest):
        try:
            kwargs = body.search_kwargs()
            check_k(kwargs["k"])
            return await service.search_one(slot, body.query, kwargs)
        except ApiError:
            raise
        except Exception as exc:
            raise _as_api_error(exc) from exc

    async def write(slot, fn):
        try:
            return await service.write(slot, fn)
        except ApiError:
            raise
        except Exception as exc:
            raise _as_api_error(exc) from exc

    def check_k(k: Any) -> None:
        if isinstance(k, int) and not isinstance(k, bool) and k > settings.max_k:
            raise ApiError(400, "ValueError", f"k must be at most {settings.max_k} on this server, got {k}")

    def check_items(values: Any, what: str) -> None:
        if isinstance(values, list) and len(values) > settings.max_items:
            raise ApiError(413, "ValueError", f"at most {settings.max_items} {what} per request, got {len(values)}; "
                                              "send them in several requests")

    # ------------------------------------------------------------------ health

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """The process is alive."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """200 once every index is loaded and searched once (kernels built); 503 before or on failure."""
        if not service.ready:
            err = service.not_ready()
            return JSONResponse({"status": "failed" if service.load_error else "loading", "detail": err.message},
                                status_code=503)
        return JSONResponse({"status": "ready", "indexes": sorted(service.slots)})

    @app.get("/metrics", tags=["health"], dependencies=[reader])
    async def prometheus() -> Response:
        """Prometheus text format: requests, latency and errors per endpoint and index."""
        for slot in service.slots.values():
            if slot.index is not None:
                metrics.passages.labels(slot.name).set(len(slot.index))
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # ------------------------------------------------------------------ indexes

    @app.get("/v1/indexes", tags=["indexes"], dependencies=[reader])
    async def list_indexes() -> JSONResponse:
        """The served indexes: name, kind and live passages."""
        if not service.ready:
            raise service.not_ready()
        return JSONResponse({"indexes": [{"name": n, "kind": sl.kind, "live_passages": len(sl.index)}
                                         for n, sl in service.slots.items()]})

    @app.get("/v1/indexes/{name}/stats", tags=["indexes"], dependencies=[reader])
    async def stats(name: str) -> JSONResponse:
        """Passages, vectors, centroids, bytes… of one index."""
        slot = service.slot(name)

        def run() -> dict:
            index = slot.index
            if hasattr(index, "stats"):
                out = index.stats()
                out.pop("path", None)  # never show server paths
            else:
                out = {"passages": len(index), "live_passages": len(index)}
            return {"name": name, "kind": slot.kind, **out}

        return JSONResponse(await call(run))

    @app.post("/v1/indexes/{name}/search", tags=["search"], dependencies=[reader])
    async def search(name: str, body: s.SearchRequest) -> JSONResponse:
        """Hits for one query: every option of ``Index.search``."""
        hits = await search_one(service.slot(name), body)
        return JSONResponse({"hits": [hit_to_json(h) for h in hits]})

    @app.post("/v1/indexes/{name}/search_batch", tags=["search"], dependencies=[reader])
    async def search_batch(name: str, body: s.SearchBatchRequest) -> JSONResponse:
        """Hits for several queries (encoded together)."""
        slot = service.slot(name)
        check_items(body.queries, "queries")

        def run():
            kwargs = body.search_kwargs()
            check_k(kwargs["k"])
            return slot.index.search_batch(body.queries, **kwargs)

        lists = await call(run)
        return JSONResponse({"hits": [[hit_to_json(h) for h in hits] for hits in lists]})

    @app.post("/v1/indexes/{name}/search_embeddings", tags=["search"], dependencies=[reader])
    async def search_embeddings(name: str, body: s.SearchEmbeddingsRequest) -> JSONResponse:
        """Top-k of precomputed query vectors: ``scores`` (null = padding) and ``pids`` (-1)."""
        slot = service.slot(name)
        check_k(body.k)

        def run():
            import numpy as np

            try:
                Q = np.asarray(body.Q, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise ValueError(f"Q must be a nested list of numbers [Lq, dim] or [n, Lq, dim]: {e}") from None
            options = body.options or {}
            if not isinstance(options, dict):
                raise TypeError(f"options must be an object of search settings, got {type(options).__name__}")
            return slot.index.search_embeddings(Q, k=body.k, where=body.where, group_by_doc=body.group_by_doc,
                                                **options)

        return JSONResponse(results_to_json(await call(run)))

    @app.post("/v1/indexes/{name}/hits", tags=["search"], dependencies=[reader])
    async def hits(name: str, body: s.HitsRequest) -> JSONResponse:
        """``Hit`` rows of one query's ``scores`` / ``pids`` from ``search_embeddings``."""
        slot = service.slot(name)

        def run():
            if not isinstance(body.scores, list) or not isinstance(body.pids, list) or len(body.scores) != len(body.pids):
                raise ValueError("scores and pids must be lists of one length")
            results = results_from_json({"scores": [body.scores], "pids": [body.pids]})
            return slot.index.hits(results, 0, query_length=body.query_length)

        found = await call(run)
        return JSONResponse({"hits": [hit_to_json(h) for h in found]})

    @app.post("/v1/indexes/{name}/explain", tags=["search"], dependencies=[reader])
    async def explain(name: str, body: s.ExplainRequest) -> JSONResponse:
        """Why a passage matched: for each query token, the passage token it matched best, with the
        token's characters in the passage text and the score (the MaxSim alignment)."""
        slot = service.slot(name)
        return JSONResponse((await call(lambda: slot.index.explain(body.query, body.doc_id))).to_dict())

    @app.post("/v1/rerank", tags=["search"], dependencies=[reader])
    async def rerank(body: s.RerankRequest) -> JSONResponse:
        """Sort candidate passages by exact MaxSim against the query (no index needed)."""
        if not service.ready:
            raise service.not_ready()
        check_items(body.passages, "passages")
        from colja.search.rerank import rerank as rerank_passages

        hits = await call(lambda: rerank_passages(body.query, body.passages, k=body.k, doc_ids=body.doc_ids,
                                                  model=service.model))
        return JSONResponse({"hits": [hit_to_json(h) for h in hits]})

    # ------------------------------------------------------------------ writes

    @app.post("/v1/indexes/{name}/documents", tags=["documents"], dependencies=[writer])
    async def add(name: str, body: s.AddRequest) -> JSONResponse:
        """Add documents (crash-safe, a new generation); returns their ids."""
        slot = service.slot(name)
        check_items(body.texts, "texts")
        extra = s.given(body, "split", "max_tokens", "overlap")
        ids = await write(slot, lambda index: index.add(body.texts, doc_ids=body.doc_ids, metadata=body.metadata,
                                                         **extra))
        return JSONResponse({"doc_ids": ids})

    @app.put("/v1/indexes/{name}/documents", tags=["documents"], dependencies=[writer])
    async def update(name: str, body: s.UpdateRequest) -> JSONResponse:
        """Replace documents by new texts, keeping their ids (``metadata`` null keeps theirs)."""
        slot = service.slot(name)
        check_items(body.texts, "texts")
        extra = s.given(body, "split", "max_tokens", "overlap")
        if not hasattr(slot.index, "update"):
            raise ApiError(400, "TypeError", f"index {name!r} (in memory) cannot update documents; delete and add them")
        await write(slot, lambda index: index.update(body.doc_ids, body.texts, body.metadata, **extra))
        return JSONResponse({"updated": len(body.doc_ids) if isinstance(body.doc_ids, list) else 0})

    @app.post("/v1/indexes/{name}/documents/delete", tags=["documents"], dependencies=[writer])
    async def delete(name: str, body: s.DeleteRequest) -> JSONResponse:
        """Delete documents by id; returns the passages deleted (unknown ids: 404, nothing deleted)."""
        slot = service.slot(name)
        check_items(body.doc_ids, "doc_ids")
        return JSONResponse({"deleted": await write(slot, lambda index: index.delete(body.doc_ids))})

    # ------------------------------------------------------------------ page

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return _Guard(app, service, metrics, settings)


def _as_api_error(exc: Exception) -> ApiError:
    status = error_status(exc)
    if status >= 500:
        raise exc
    body = error_body(exc, status)["error"]
    return ApiError(status, body["type"], body["message"])


def _error(request: Request, status: int, type_name: str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    request.scope["colja.error"] = type_name
    return JSONResponse({"error": {"type": type_name, "message": message, "status": status}}, status_code=status,
                        headers=headers)


class _Guard:
    """ASGI wrapper: request-size limit (413), in-flight count, metrics per endpoint and index.

    Kept outside FastAPI's middleware stack so it costs one function call.
    ``app.state`` and the FastAPI app stay reachable (``.app``, ``.state``).
    """

    def __init__(self, app: FastAPI, service: Service, metrics: Metrics, settings: ServerSettings):
        self.app, self.service, self.metrics, self.limit = app, service, metrics, settings.max_request_bytes
        self.state = app.state

    def __getattr__(self, name: str) -> Any:  # routes, openapi(), dependency_overrides… of the FastAPI app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        response_started = [False]
        received = [0]

        length = _content_length(scope)
        if length is not None and length > self.limit:
            await self._too_large(scope, send)
            self._observe(scope, 413, started, "RequestTooLarge")
            return

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.limit:
                    scope["colja.too_large"] = True
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            if scope.get("colja.too_large"):  # the app answered the interrupted read its own way: answer 413
                if message["type"] == "http.response.start" and not response_started[0]:
                    response_started[0] = True
                    status[0] = 413
                    scope["colja.error"] = "RequestTooLarge"
                    await self._too_large(scope, send)
                return
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                response_started[0] = True
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not response_started[0]:
                await self._too_large(scope, send)
            status[0] = 413
            scope["colja.error"] = "RequestTooLarge"
        except Exception:
            if not response_started[0]:  # answered (and logged) by the app's handler otherwise
                raise
        finally:
            self.metrics.in_flight.dec()
            error = scope.get("colja.error") if status[0] >= 400 else None
            self._observe(scope, status[0], started, error or (f"HTTP{status[0]}" if status[0] >= 400 else None))

    def _observe(self, scope, status: int, started: float, error: str | None) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "other")
        name = (scope.get("path_params") or {}).get("name", "")
        index = name if name in self.service.slots else ""
        self.metrics.observe(endpoint, index, status, time.perf_counter() - started, error)

    async def _too_large(self, scope, send) -> None:
        response = JSONResponse({"error": {"type": "ValueError", "status": 413,
                                           "message": f"the request body is over {self.limit} bytes; send less per request"}},
                                status_code=413)
        await response(scope, _no_body, send)


class _TooLarge(Exception):
    pass


async def _no_body():
    return {"type": "http.request", "body": b"", "more_body": False}


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


__all__ = ["create_app", "ServerSettings"]
