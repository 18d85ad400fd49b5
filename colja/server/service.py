"""What an app serves: named indexes, the search batcher, the worker pools.

Searches run on a bounded pool of threads (the kernels release the GIL);
writes run on their own threads, one at a time per index, so a search never
waits for a write: it answers from the generation that is current when it
starts. A request names an index only by its configured name; no path from
a request reaches the filesystem.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from colja.errors import IndexNotFoundError
from colja.server.batching import SearchBatcher

logger = logging.getLogger("colja.server")
T = TypeVar("T")


class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message", "status"}}`` with HTTP ``status``."""

    def __init__(self, status: int, type_name: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type_name, self.message, self.headers = status, type_name, message, headers


@dataclass
class ServerSettings:
    """Limits and pools of one app (every field is a ``create_app`` / ``colja serve`` option)."""

    #: threads answering searches, reranks and explanations (bounded: requests beyond queue). Each
    #: thread that calls torch gets its own OpenMP team; on a few cores one thread is fastest
    workers: int = 1
    #: seconds a request may take before a 504 (the work itself finishes in the background)
    request_timeout: float = 60.0
    #: bytes of request body accepted (413 beyond)
    max_request_bytes: int = 8 * 2**20
    #: queries per batch request and texts per write request
    max_items: int = 1024
    #: largest k
    max_k: int = 1000
    #: requests waiting for a worker before new ones get a 503
    max_queued: int = 256
    #: concurrent single-query searches (same index and options) run as one batch of up to
    #: ``max_batch`` (1: no micro-batching); a batch waits up to ``batch_window`` seconds for
    #: queries of requests already in flight
    batch_window: float = 0.002
    max_batch: int = 32
    #: memory-map index arrays instead of reading them
    mmap: bool = False

    def __post_init__(self) -> None:
        for name in ("workers", "max_request_bytes", "max_items", "max_k", "max_queued", "max_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {self.request_timeout!r}")
        if not self.batch_window >= 0:
            raise ValueError(f"batch_window must be >= 0 seconds, got {self.batch_window!r}")


@dataclass
class Slot:
    """One served index and the lock that serialises its writes."""

    name: str
    source: Any  # a path, or the index object given
    index: Any = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return "memory" if not hasattr(self.index, "stats") else "index"


class Service:
    """The state behind one app: loading, pools, batching, shutdown."""

    def __init__(self, indexes: Mapping[str, Any], *, model: Any = None, settings: ServerSettings | None = None):
        if not isinstance(indexes, Mapping) or not indexes:
            raise ValueError("create_app needs at least one index: {'name': 'path/to/index'}")
        for name in indexes:
            if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"index name {name!r}: use letters, digits, '-', '_' or '.'")
        self.settings = settings or ServerSettings()
        self.slots = {name: Slot(name, source) for name, source in indexes.items()}
        self._model_arg = model
        self.model: Any = None  # the shared encoder (given, or the first index's), for reranking
        self.batcher = SearchBatcher(window=self.settings.batch_window, max_batch=self.settings.max_batch,
                                     in_flight=lambda: self.searching)
        self.ready = False
        self.load_error: str | None = None
        self.searching = 0
        self.queued = 0
        self._count_lock = threading.Lock()
        self.read_pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="colja-read")
        self.write_pool = ShortLivedThreads(max(1, min(4, len(self.slots))), name="colja-write")
        self._owned: list[Any] = []  # indexes this service loaded (and closes)

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Load every index, wrap its encoder in a query batcher, run one search each (kernels built)."""
        try:
            self.model = self._shared_model()
            for slot in self.slots.values():
                slot.index = self._open(slot)
            for slot in self.slots.values():
                if len(slot.index):
                    slot.index.search("準備", k=1)
            if self.model is None:
                first = next(iter(self.slots.values())).index
                self.model = getattr(first, "model", None)
            self.ready = True
            logger.info("serving %s", ", ".join(f"{s.name} ({len(s.index)} passages)" for s in self.slots.values()))
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("could not load the indexes: %s", self.load_error)
            raise

    def _shared_model(self) -> Any:
        model = self._model_arg
        if model is None or not isinstance(model, (str, os.PathLike)):
            return model
        from colja.model.colbert import ColBERT

        return ColBERT.from_pretrained(os.fspath(model))

    def _open(self, slot: Slot) -> Any:
        source = slot.source
        if not isinstance(source, (str, os.PathLike)):
            if not callable(getattr(source, "search", None)):
                raise TypeError(f"index {slot.name!r}: give a path or an Index / InMemoryIndex, got {type(source).__name__}")
            return source
        from colja.searchable.index import Index

        index = Index.load(source, model=self.model, mmap=self.settings.mmap)
        self._owned.append(index)
        return index

    # ------------------------------------------------------------------ requests

    def slot(self, name: str) -> Slot:
        slot = self.slots.get(name)
        if slot is None:
            raise ApiError(404, IndexNotFoundError.__name__,
                           f"this server has no index named {name!r}; it serves {sorted(self.slots)}")
        if not self.ready:
            raise self.not_ready()
        return slot

    def not_ready(self) -> ApiError:
        if self.load_error:
            return ApiError(503, "ServerError", f"the indexes could not be loaded: {self.load_error}")
        return ApiError(503, "ServerError", "the indexes are still loading; retry when /readyz answers 200",
                        {"Retry-After": "1"})

    def _check_load(self) -> None:
        if self.queued + self.searching >= self.settings.max_queued + self.settings.workers:
            raise ApiError(503, "ServerError", "the server is overloaded; retry shortly", {"Retry-After": "1"})

    async def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the read pool."""
        self._check_load()
        return await self._run(self.read_pool, fn)

    async def search_one(self, slot: Slot, query: Any, kwargs: dict[str, Any]) -> Any:
        """``slot.index.search(query, **kwargs)``, micro-batched with concurrent searches of the same options
        (without batching: one ``search_batch`` of one query, the same code path)."""
        self._check_load()
        key = self.batcher.key(slot.name, kwargs)
        self.searching += 1  # on the event loop only
        try:
            done, schedule = self.batcher.submit(key, query)
            if schedule:
                self._schedule_drain(key, slot, kwargs)
            return await asyncio.wait_for(asyncio.wrap_future(done), self.settings.request_timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, "TimeoutError",
                           f"the request took longer than {self.settings.request_timeout:g} s") from None
        finally:
            self.searching -= 1

    def _schedule_drain(self, key: Any, slot: Slot, kwargs: dict[str, Any]) -> None:
        self.read_pool.submit(self.batcher.drain, key, lambda queries: slot.index.search_batch(queries, **kwargs),
                              lambda: self._schedule_drain(key, slot, kwargs))

    async def write(self, slot: Slot, fn: Callable[[Any], T]) -> T:
        """Run ``fn(index)`` on a write thread, one write at a time per index."""

        def job() -> T:
            with slot.write_lock:
                return fn(slot.index)

        return await self._run(self.write_pool, job)

    async def _run(self, pool: "ThreadPoolExecutor | ShortLivedThreads", job: Callable[[], T]) -> T:
        with self._count_lock:
            self.queued += 1
        try:
            return await asyncio.wait_for(asyncio.wrap_future(pool.submit(job)), self.settings.request_timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, "TimeoutError", f"the request took longer than {self.settings.request_timeout:g} s; "
                                                "a write still completes (check the index before retrying)") from None
        finally:
            with self._count_lock:
                self.queued -= 1

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Finish the work in flight, stop the batchers, close the indexes this service opened."""
        self.read_pool.shutdown(wait=True)
        self.write_pool.shutdown(wait=True)
        for index in self._owned:
            index.close()


class ShortLivedThreads:
    """An executor whose every job runs on a new thread that ends with it, at most ``limit`` at once.

    Writes run here, not on a pool: a live, idle thread that once ran torch keeps an
    OpenMP team, and that alone slows the search thread's parallel regions by ~1.5x on
    two cores (measured: 4.8 → 7.1 ms per search). The search threads are the
    long-lived ones (:attr:`Service.read_pool`), which also load and warm up the indexes.
    """

    def __init__(self, limit: int, name: str):
        self._slots = threading.BoundedSemaphore(limit)
        self._name = name
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], T]) -> "Future[T]":
        future: Future[T] = Future()

        def run() -> None:
            with self._slots:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as exc:  # handed to the waiting request
                        future.set_exception(exc)
            with self._lock:
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=self._name)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return future

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join()


__all__ = ["ApiError", "ShortLivedThreads", "ServerSettings", "Service", "Slot"]
