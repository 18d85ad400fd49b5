"""Micro-batching: concurrent single-query encodes share model calls and get their own vectors."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from colja.server.batching import QueryBatcher

QUERIES = [f"質問{i}：日本で一番高い山は？" if i % 2 else "ＡＢＣ ｶﾀｶﾅ 🍣" * (i % 5) for i in range(16)]


def test_concurrent_queries_are_encoded_together(_fixture_model):
    batcher = QueryBatcher(_fixture_model, window=0.2, max_batch=32, in_flight=lambda: len(QUERIES))
    got: dict[int, torch.Tensor] = {}
    barrier = threading.Barrier(len(QUERIES))

    def one(i):
        barrier.wait()
        got[i] = batcher.encode_queries([QUERIES[i]])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(QUERIES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert batcher.queries == len(QUERIES) and batcher.batches < len(QUERIES) // 2
    for i, q in enumerate(QUERIES):
        torch.testing.assert_close(got[i], _fixture_model.encode_queries([q]), rtol=1e-4, atol=1e-5)


def test_a_lone_query_does_not_wait_for_the_window(_fixture_model):
    batcher = QueryBatcher(_fixture_model, window=2.0, in_flight=lambda: 1)
    batcher.encode_queries(["準備"])
    t = time.perf_counter()
    batcher.encode_queries(["富士山"])
    assert time.perf_counter() - t < 1.0
    batcher.close()


def test_errors_reach_the_caller_and_everything_else_passes_through(_fixture_model):
    class Failing:
        dim = 128

        def encode_queries(self, texts, **kw):
            raise RuntimeError("encoder down")

        def encode_documents(self, texts, **kw):
            return ["docs"]

    batcher = QueryBatcher(Failing(), window=0.01)
    with pytest.raises(RuntimeError, match="encoder down"):
        batcher.encode_queries(["a"])
    assert batcher.encode_documents(["x"]) == ["docs"] and batcher.dim == 128
    batcher.close()
    with pytest.raises(ValueError):
        QueryBatcher(_fixture_model, window=-1)
