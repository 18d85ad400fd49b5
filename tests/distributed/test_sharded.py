"""``ShardedIndex`` over a 3-shard Ray build: exact merge, PLAID agreement, writes across shards,
shard actors killed and restarted, partial answers only when asked for."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from colja import CollectionError, ShardError, UnknownDocumentError
from colja.distributed import ShardedIndex, build, shard_of
from tests.oracle import maxsim_matrix

pytestmark = [pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning"), pytest.mark.timeout(300)]

K = 10


@pytest.fixture(scope="module")
def three_shards(ray_cluster, corpus, model_path, tmp_path_factory):
    texts, ids, meta = corpus
    path = tmp_path_factory.mktemp("sharded") / "three"
    build(texts, path, model=model_path, shards=3, doc_ids=ids, metadata=meta, batch_passages=64,
          ray_address=ray_cluster.address).close()
    return path


@pytest.fixture(scope="module")
def queries(corpus):
    texts = corpus[0]
    return ["日本で一番高い山は？", "東京の人口", "ＡＢＣ abc ｶﾀｶﾅ 🍣", ""] + [t[:25] for t in texts[:40:2]]


def _union_oracle(index: ShardedIndex, Q: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    pids = index.all_pids().tolist()
    flat, lens = index.passage_vectors(pids)
    return pids, maxsim_matrix(Q, list(flat.split(lens.tolist())))


@pytest.mark.parametrize("on_ray", [False, True], ids=["threads", "ray-actors"])
def test_top_k_equals_exhaustive_maxsim_over_the_union(three_shards, ray_cluster, queries, _fixture_model, on_ray):
    index = ShardedIndex.load(three_shards, ray_address=ray_cluster.address if on_ray else None)
    try:
        Q = _fixture_model.encode_queries(queries)
        pids, want = _union_oracle(index, Q)
        exact = index.search_embeddings(Q, k=K, exhaustive=True)
        plaid = index.search_embeddings(Q, k=K)
        agree = 0
        for i in range(len(queries)):
            order = torch.argsort(want[i], descending=True, stable=True)[:K].tolist()
            assert exact.pids[i].tolist() == [pids[j] for j in order]
            np.testing.assert_allclose(exact.scores[i], want[i][order].numpy(), rtol=1e-4, atol=1e-4)
            agree += len(set(plaid.pids[i].tolist()) & set(exact.pids[i].tolist()))
        assert agree / (K * len(queries)) >= 0.99
        # text search: the same ranking as the vectors, hits carry global pids and their documents
        hits = index.search_batch(queries[:3], k=K, exhaustive=True)
        for i, h in enumerate(hits):
            assert [x.pid for x in h] == exact.pids[i].tolist()
            assert [x.rank for x in h] == list(range(1, K + 1)) and not h.partial
        assert [x.doc_id for x in index.hits(exact, 0)] == [x.doc_id for x in hits[0]]
    finally:
        index.close()


def test_where_group_by_doc_and_first_stage_options(three_shards, _fixture_model):
    with ShardedIndex.load(three_shards, model=_fixture_model) as index:
        blog = index.search("東京", k=200, where={"source": "ブログ"})
        assert len(blog) == 50 and all(h.metadata["source"] == "ブログ" for h in blog)
        assert [h.doc_id for h in index.search("東京", k=5, group_by_doc=True)] == \
               [h.doc_id for h in index.search("東京", k=5)]
        with pytest.raises(TypeError, match="unknown search settings"):
            index.search("東京", nope=1)


def test_writes_are_routed_across_shards(three_shards, ray_cluster, tmp_path, _fixture_model):
    import shutil

    path = tmp_path / "living"
    shutil.copytree(three_shards, path)
    index = ShardedIndex.load(path, ray_address=ray_cluster.address)
    try:
        before = len(index)
        new_ids = [f"追加-{i}" for i in range(6)]
        texts = [f"富士山は日本で最も高い山で、標高は3776メートル。その{i}" for i in range(6)]
        assert index.add(texts, doc_ids=new_ids, metadata=[{"source": "追加"}] * 6) == new_ids
        assert len(index) == before + 6
        owners = {shard_of(d, 3) for d in new_ids}
        assert len(owners) > 1  # the adds went to several shards
        lengths = index.shard_lengths()
        for i, d in enumerate(new_ids):
            own = _fixture_model.encode_documents([texts[i]])[0]
            assert index.hits(index.search_embeddings(own, k=1))[0].doc_id == d
        assert {h.doc_id for h in index.search("富士山", k=10, where={"source": "追加"})} == set(new_ids)
        index.update(["追加-0"], ["京都は古い都です。"], [{"source": "更新"}])
        assert index.search("京都", k=1, where={"source": "更新"})[0].text == "京都は古い都です。"
        assert index.shard_lengths() == lengths
        with pytest.raises(CollectionError, match="already in the index"):
            index.add(["重複"], doc_ids=["追加-1"])
        with pytest.raises(UnknownDocumentError):
            index.delete(["追加-1", "ない文書"])
        assert len(index) == before + 6  # nothing was deleted
        defaults = index.add(["番号なしの文書"])  # default ids: after every passage id in use on any shard
        assert defaults == [str(before + 7)]  # 150 built + 6 added + 1 appended by the update
        assert index.delete(new_ids + defaults) == 7
        assert len(index) == before
    finally:
        index.close()
    with ShardedIndex.load(path) as reopened:  # the writes are on disk, in each shard
        assert len(reopened) == before
        assert reopened.search("京都", k=5, where={"source": "更新"}) == []


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_a_killed_shard_actor_is_restarted_and_the_query_retried(three_shards, ray_cluster, queries, _fixture_model):
    Q = _fixture_model.encode_queries(queries[:4])
    with ShardedIndex.load(three_shards) as local:
        want = local.search_embeddings(Q, k=K, exhaustive=True)
    index = ShardedIndex.load(three_shards, ray_address=ray_cluster.address, max_restarts=2)
    try:
        pids = index.shards.pids()
        _kill(pids[1])
        got = index.search_embeddings(Q, k=K, exhaustive=True)  # shard 1's call fails, is retried on the new actor
        np.testing.assert_array_equal(got.pids, want.pids)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        assert not got.partial
        after = index.shards.pids()
        assert after[1] != pids[1] and after[0] == pids[0] and after[2] == pids[2]
    finally:
        index.close()


def test_a_dead_shard_is_an_error_naming_it_unless_partial_is_allowed(three_shards, ray_cluster, queries,
                                                                       _fixture_model):
    Q = _fixture_model.encode_queries(queries[:2])
    strict = ShardedIndex.load(three_shards, ray_address=ray_cluster.address, max_restarts=0)
    try:
        _kill(strict.shards.pids()[2])
        with pytest.raises(ShardError, match=r"shard 2 \(.*shard-002\)") as err:
            strict.search_embeddings(Q, k=K)
        assert err.value.shard == 2
    finally:
        strict.close()
    partial = ShardedIndex.load(three_shards, ray_address=ray_cluster.address, max_restarts=0, allow_partial=True)
    try:
        _kill(partial.shards.pids()[0])
        got = partial.search_embeddings(Q, k=K, exhaustive=True)
        assert got.partial and got.missing_shards == (0,)
        assert all(p >> 40 in (1, 2) for p in got.pids.ravel() if p >= 0)
        hits = partial.search("東京", k=K)
        assert hits.partial and hits.missing_shards == (0,) and all(shard_of(h.doc_id, 3) != 0 for h in hits)
    finally:
        partial.close()


def test_a_shard_actor_killed_mid_query_is_retried(three_shards, ray_cluster, queries, _fixture_model):
    """The actor dies while it answers (a batch long enough to kill it a third of the way in)."""
    import threading

    Q = _fixture_model.encode_queries(queries * 20)
    with ShardedIndex.load(three_shards) as local:
        want = local.search_embeddings(Q, k=K, exhaustive=True)
    index = ShardedIndex.load(three_shards, ray_address=ray_cluster.address, max_restarts=2)
    try:
        t = time.perf_counter()
        index.search_embeddings(Q, k=K, exhaustive=True)
        took = time.perf_counter() - t
        assert took > 0.2, f"the batch takes {took:.2f} s: too short to kill an actor in the middle of it"
        before = index.shards.pids()
        got = {}
        runner = threading.Thread(target=lambda: got.update(r=index.search_embeddings(Q, k=K, exhaustive=True)))
        runner.start()
        time.sleep(took / 3)
        _kill(before[0])
        runner.join(timeout=120)
        np.testing.assert_array_equal(got["r"].pids, want.pids)
        np.testing.assert_allclose(got["r"].scores, want.scores, rtol=1e-5)
        assert index.shards.pids()[0] != before[0]
    finally:
        index.close()
