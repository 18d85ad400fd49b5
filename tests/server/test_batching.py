"""Micro-batching: concurrent single-query searches of one index and options share a search_batch."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from colja import InMemoryIndex
from colja.server.batching import SearchBatcher

QUERIES = [f"質問{i}：日本で一番高い山は？" if i % 2 else "ＡＢＣ ｶﾀｶﾅ 🍣" * (i % 5) for i in range(16)]
TEXTS = ["富士山は日本一高い山です。", "東京は日本の首都です。", "ｶﾀｶﾅと🍣", "京都は古い都です。"]


@pytest.fixture(scope="module")
def index(_fixture_model):
    return InMemoryIndex.build(TEXTS, model=_fixture_model)


def _run(batcher, pool, index, kwargs, queries):
    """Submit every query at once (as the event loop does) and collect the hits."""
    key = batcher.key("i", kwargs)
    futures = []
    for q in queries:
        done, schedule = batcher.submit(key, q)
        if schedule:
            def drain():
                batcher.drain(key, lambda qs: index.search_batch(qs, **kwargs), lambda: pool.submit(drain))
            pool.submit(drain)
        futures.append(done)
    return [f.result(60) for f in futures]


def test_concurrent_queries_share_batches_and_get_their_own_hits(index):
    batcher = SearchBatcher(window=0.05, max_batch=5, in_flight=lambda: len(QUERIES))
    with ThreadPoolExecutor(1) as pool:
        got = _run(batcher, pool, index, {"k": 3}, QUERIES)
    assert batcher.queries == len(QUERIES) and batcher.batches == 4  # 16 queries, at most 5 per batch
    for q, hits in zip(QUERIES, got):
        want = index.search(q, k=3)
        assert [h.doc_id for h in hits] == [h.doc_id for h in want]
        assert [h.score for h in hits] == pytest.approx([h.score for h in want], rel=1e-5)


def test_other_options_are_other_batches(index):
    batcher = SearchBatcher(max_batch=32)
    with ThreadPoolExecutor(1) as pool:
        a = _run(batcher, pool, index, {"k": 1}, QUERIES[:4])
        b = _run(batcher, pool, index, {"k": 2}, QUERIES[:4])
    assert [len(h) for h in a] == [1] * 4 and [len(h) for h in b] == [2] * 4
    assert batcher.key("i", {"k": 1}) != batcher.key("i", {"k": 2}) != batcher.key("j", {"k": 2})


def test_a_lone_query_does_not_wait_for_the_window(index):
    batcher = SearchBatcher(window=2.0, in_flight=lambda: 1)
    with ThreadPoolExecutor(1) as pool:
        t = time.perf_counter()
        _run(batcher, pool, index, {"k": 1}, ["富士山"])
        assert time.perf_counter() - t < 1.0


def test_errors_reach_every_caller_of_the_batch_and_bad_queries_fail_alone(index):
    batcher = SearchBatcher()
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="k must be a positive int"):
            _run(batcher, pool, index, {"k": 0}, QUERIES[:3])
    with pytest.raises(TypeError, match="query must be a str"):
        batcher.submit(batcher.key("i", {}), ["not", "a", "str"])
    with pytest.raises(ValueError):
        SearchBatcher(max_batch=0)
