"""Micro-batching of concurrent single-query searches.

Many clients each searching one query at once: encoding them in one model
call and scoring them in one ``search_batch`` costs little more than one
query. :class:`SearchBatcher` keeps the pending queries of each
``(index, options)`` pair; a drain job on the server's worker pool takes
them all (up to ``max_batch``) and runs one ``search_batch``. Queries that
arrive while a batch runs wait for the next one, so batches form by
themselves under load; a short ``window`` lets a drain wait for queries of
requests already in flight (never when a request is alone).

Running every batch on the worker pool, rather than on a thread of its own,
also keeps the model and the kernels on few threads: each thread that calls
into torch / OpenMP gets its own team of worker threads, and on a small
machine several teams slow each other down.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Hashable

from colja.search.engine import check_query


class SearchBatcher:
    """Pending single-query searches, grouped by index and options, run together by ``drain``."""

    def __init__(self, *, window: float = 0.0, max_batch: int = 32, in_flight: Callable[[], int] = lambda: 0):
        if window < 0 or max_batch < 1:
            raise ValueError("window must be >= 0 seconds and max_batch >= 1")
        self.window = window
        self.max_batch = max_batch
        self._in_flight = in_flight
        self._cond = threading.Condition()
        self._pending: dict[Hashable, list[tuple[str, Future]]] = {}
        self._scheduled: set[Hashable] = set()
        self.batches = 0  # search_batch calls made
        self.queries = 0  # queries they answered

    @staticmethod
    def key(name: str, kwargs: dict[str, Any]) -> Hashable:
        """Requests with equal keys may share a batch: same index, same options."""
        return name, json.dumps(kwargs, sort_keys=True, ensure_ascii=False, default=repr)

    def submit(self, key: Hashable, query: Any) -> tuple[Future, bool]:
        """Queue ``query``; returns its future and whether the caller must schedule ``drain(key, ...)``."""
        check_query(query)  # a bad query fails alone, never its batch
        done: Future = Future()
        with self._cond:
            self._pending.setdefault(key, []).append((query, done))
            schedule = key not in self._scheduled
            self._scheduled.add(key)
            self._cond.notify_all()
        return done, schedule

    def drain(self, key: Hashable, search_batch: Callable[[list[str]], list[Any]],
              reschedule: Callable[[], None]) -> None:
        """Run the pending queries of ``key`` as one ``search_batch`` (on a worker thread)."""
        with self._cond:
            if self.window > 0:
                deadline = time.monotonic() + self.window
                while True:
                    waiting = len(self._pending.get(key, ()))
                    left = deadline - time.monotonic()
                    if waiting >= self.max_batch or self._in_flight() <= waiting or left <= 0:
                        break
                    self._cond.wait(left)
            items = self._pending.get(key, [])
            batch, rest = items[: self.max_batch], items[self.max_batch :]
            if rest:
                self._pending[key] = rest
            else:
                self._pending.pop(key, None)
                self._scheduled.discard(key)
        if rest:
            reschedule()
        batch = [(q, f) for q, f in batch if f.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            results = search_batch([q for q, _ in batch])
        except BaseException as exc:  # same options for all: the same error for all
            for _, done in batch:
                done.set_exception(exc)
            return
        self.batches += 1
        self.queries += len(batch)
        for (_, done), hits in zip(batch, results):
            done.set_result(hits)


__all__ = ["SearchBatcher"]
