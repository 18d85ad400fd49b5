"""Prometheus metrics of one app: requests, latency and errors per endpoint and index.

Each app has its own registry, so two apps in one process (tests, a user
mounting several) never share or clash over counters.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: latency buckets in seconds: from a cached query to a large batch
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _BatcherCounts:
    """Batched searches and the queries they answered, read when scraped."""

    def __init__(self, batchers: Callable[[], list[Any]]):
        self._batchers = batchers

    def collect(self) -> Iterator[CounterMetricFamily]:
        batchers = self._batchers()
        yield CounterMetricFamily("colja_search_batches", "search_batch calls answering single-query searches",
                                  value=sum(b.batches for b in batchers))
        yield CounterMetricFamily("colja_search_batch_queries", "Single-query searches answered by those calls",
                                  value=sum(b.queries for b in batchers))


class Metrics:
    def __init__(self, batchers: Callable[[], list[Any]] = list) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_BatcherCounts(batchers))
        labels = ("endpoint", "index")
        self.requests = Counter("colja_requests", "HTTP requests answered", (*labels, "status"),
                                registry=self.registry)
        self.latency = Histogram("colja_request_seconds", "Time to answer a request", labels, buckets=BUCKETS,
                                 registry=self.registry)
        self.errors = Counter("colja_errors", "Requests answered with an error (4xx or 5xx)", (*labels, "type"),
                              registry=self.registry)
        self.in_flight = Gauge("colja_requests_in_flight", "Requests being answered", registry=self.registry)
        self.passages = Gauge("colja_index_live_passages", "Live passages per index", ("index",),
                              registry=self.registry)

    def observe(self, endpoint: str, index: str, status: int, seconds: float, error_type: str | None) -> None:
        self.requests.labels(endpoint, index, str(status)).inc()
        self.latency.labels(endpoint, index).observe(seconds)
        if error_type is not None:
            self.errors.labels(endpoint, index, error_type).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["Metrics"]
