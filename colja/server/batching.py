"""Micro-batching of query encoding across concurrent requests.

Several requests that each search one query arrive at once; encoding them in
one model call costs little more than encoding one. :class:`QueryBatcher`
stands in for the encoder: ``encode_queries`` hands the texts to one
collector thread, which waits up to ``window`` seconds for more (but only
while other searches are in flight, so a lone request never waits), encodes
everything it gathered in one call and gives each caller its rows.
Everything else (``encode_documents``, ``dim``, the tokenizer) goes straight
to the wrapped encoder.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

_STOP = object()


class QueryBatcher:
    """An encoder whose ``encode_queries`` calls from many threads are batched together."""

    def __init__(self, encoder: Any, *, window: float = 0.002, max_batch: int = 32,
                 in_flight: Callable[[], int] | None = None):
        if window < 0 or max_batch < 1:
            raise ValueError("window must be >= 0 seconds and max_batch >= 1")
        self.encoder = encoder
        self.window = window
        self.max_batch = max_batch
        self._in_flight = in_flight or (lambda: 1 << 30)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="colja-query-batcher", daemon=True)
        self._thread.start()
        self.batches = 0  # model calls made (for tests and metrics)
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def encode_documents(self, *args: Any, **kwargs: Any) -> Any:
        return self.encoder.encode_documents(*args, **kwargs)

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> Any:
        texts = list(texts)
        if kwargs or not texts or not self._thread.is_alive():
            return self.encoder.encode_queries(texts, **kwargs)
        done: Future = Future()
        self._queue.put((texts, done))
        return done.result()

    def close(self) -> None:
        """Stop the collector after the queries already handed in are encoded."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def _gather(self, first: tuple[list[str], Future]) -> tuple[list[tuple[list[str], Future]], bool]:
        items, n = [first], len(first[0])
        deadline = time.monotonic() + self.window
        while n < self.max_batch and len(items) < self._in_flight():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
            n += len(item[0])
        return items, False

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is _STOP:
                break
            items, stop = self._gather(item)
            texts = [t for batch, _ in items for t in batch]
            try:
                Q = self.encoder.encode_queries(texts)
            except BaseException as exc:  # each caller gets the error of the call its queries were in
                for _, done in items:
                    done.set_exception(exc)
                continue
            self.batches += 1
            self.queries += len(texts)
            start = 0
            for batch, done in items:
                done.set_result(Q[start : start + len(batch)])
                start += len(batch)
        while True:  # anything handed in after the stop is encoded alone
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                texts, done = item
                try:
                    done.set_result(self.encoder.encode_queries(texts))
                except BaseException as exc:
                    done.set_exception(exc)


__all__ = ["QueryBatcher"]
