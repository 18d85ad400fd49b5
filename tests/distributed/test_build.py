"""``colja.distributed.build`` on a real two-node Ray cluster: same index as a local build,
shards routed by id, resumable after a worker is killed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import colja
from colja import BuildWorkerError, Index
from colja.distributed import ShardedIndex, build, shard_of
from colja.distributed.build import WORKER_FAULT
from colja.distributed.work import work_folder
from colja.index.store import FAULT_ENV

pytestmark = [pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning"), pytest.mark.timeout(300)]

ARRAYS = ("codes", "residuals", "norms", "ivf", "ivf_lengths", "doclens", "centroids", "bucket_cutoffs",
          "bucket_weights")
QUERIES = ["日本で一番高い山は？", "東京の人口", "寿司", "ｶﾀｶﾅ ABC", ""]


def _same_index(a: Index, b: Index) -> None:
    with a.snapshot() as x, b.snapshot() as y:
        for name in ARRAYS:
            np.testing.assert_array_equal(np.asarray(x.arrays[name]), np.asarray(y.arrays[name]), err_msg=name)
        n = x.num_passages
        assert y.num_passages == n
        assert [(r.doc_id, r.text, r.metadata) for r in x.docs.records(list(range(n)))] == \
               [(r.doc_id, r.text, r.metadata) for r in y.docs.records(list(range(n)))]


@pytest.fixture(scope="module")
def local_and_distributed(ray_cluster, corpus, model_path, tmp_path_factory, _fixture_model):
    texts, ids, meta = corpus
    root = tmp_path_factory.mktemp("one-shard")
    local = Index.build(texts, root / "local", model=_fixture_model, doc_ids=ids, metadata=meta)
    dist = build(texts, root / "dist", model=model_path, doc_ids=ids, metadata=meta, batch_passages=32,
                 ray_address=ray_cluster.address)
    return local, dist


def test_one_shard_build_equals_the_local_build(local_and_distributed):
    local, dist = local_and_distributed
    assert isinstance(dist, Index) and not (dist.path / "sharded.json").exists()
    assert dist.manifest["source"]["kind"] == "distributed" and dist.manifest["source"]["batches"] == 5
    _same_index(local, dist)  # same centroids, same codes, residuals, norms, IVF, documents
    for q in QUERIES:
        for options in ({}, {"exhaustive": True}):
            want = [(h.doc_id, h.score) for h in local.search(q, k=10, **options)]
            assert [(h.doc_id, h.score) for h in dist.search(q, k=10, **options)] == want
    reopened = Index.load(dist.path)  # an ordinary index
    assert len(reopened) == len(local)
    assert not work_folder(dist.path).exists()  # the work folder is gone after success


def test_a_killed_worker_then_a_rerun_equals_an_uninterrupted_build(ray_cluster, corpus, model_path, tmp_path,
                                                                    monkeypatch, local_and_distributed):
    texts, ids, meta = corpus
    target = tmp_path / "resumed"
    monkeypatch.setenv(FAULT_ENV, WORKER_FAULT)  # each worker SIGKILLs itself after writing its second batch
    with pytest.raises(BuildWorkerError, match="run the same build again to resume"):
        build(texts, target, model=model_path, doc_ids=ids, metadata=meta, batch_passages=16,
              ray_address=ray_cluster.address)
    ledger = json.loads((work_folder(target) / "ledger.json").read_text(encoding="utf-8"))
    assert 1 <= len(ledger["done"]) < ledger["num_batches"] == 10
    assert not (target / "CURRENT").exists()  # nothing that looks like an index
    monkeypatch.delenv(FAULT_ENV)
    resumed = build(texts, target, model=model_path, doc_ids=ids, metadata=meta, batch_passages=16,
                    ray_address=ray_cluster.address)
    assert resumed.manifest["source"]["resumed_batches"] == len(ledger["done"])
    _same_index(local_and_distributed[0], resumed)
    assert not work_folder(target).exists()


def test_shards_hold_the_documents_their_ids_route_to(ray_cluster, corpus, model_path, tmp_path, _fixture_model):
    texts, ids, meta = corpus
    source = tmp_path / "passages.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for t, i, m in zip(texts, ids, meta):
            f.write(json.dumps({"id": i, "text": t, **m}, ensure_ascii=False) + "\n")
    index = build(source, tmp_path / "three", model=model_path, shards=3, batch_passages=64,
                  ray_address=ray_cluster.address)
    try:
        assert isinstance(index, ShardedIndex) and index.num_shards == 3
        manifest = json.loads((tmp_path / "three" / "sharded.json").read_text(encoding="utf-8"))
        assert manifest["num_shards"] == 3 and manifest["passages"] == len(texts)
        seen = []
        with Index.load(tmp_path / "three" / "shard-000") as first, first.snapshot() as snap:
            centroids = np.asarray(snap.arrays["centroids"])
        for s in range(3):
            with Index.load(tmp_path / "three" / f"shard-{s:03d}") as shard, shard.snapshot() as snap:
                records = snap.docs.records(list(range(snap.num_passages)))
                np.testing.assert_array_equal(np.asarray(snap.arrays["centroids"]), centroids)  # one k-means
            assert records and all(shard_of(r.doc_id, 3) == s for r in records)  # each shard: an ordinary index
            assert all(r.metadata["n"] == int(r.doc_id.split("-")[1]) for r in records)
            seen += [r.doc_id for r in records]
        assert sorted(seen) == sorted(ids)
        for i in (0, 147, 149):  # a passage's own vectors find it, whichever shard holds it
            own = _fixture_model.encode_documents([texts[i]])[0]
            assert index.hits(index.search_embeddings(own, k=1))[0].doc_id == ids[i]
    finally:
        index.close()


def test_parquet_input_routes_like_jsonl(tmp_path, corpus):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colja.distributed.build import read_collection

    texts, ids, meta = corpus
    pq.write_table(pa.Table.from_pylist([{"doc_id": i, "text": t, **m} for t, i, m in zip(texts, ids, meta)]),
                   tmp_path / "passages.parquet")
    got_texts, got_ids, got_meta = read_collection(tmp_path / "passages.parquet", None, None, "text")
    assert got_texts.texts(0, len(texts)) == texts and got_ids == ids
    assert [json.loads(m) for m in got_meta] == meta
    with pytest.raises(colja.CollectionError, match="no 'body' field"):
        read_collection(tmp_path / "passages.parquet", None, None, "body")


def test_bad_input_fails_before_any_work(ray_cluster, model_path, tmp_path):
    with pytest.raises(colja.CollectionError, match="empty"):
        build([], tmp_path / "x", model=model_path, ray_address=ray_cluster.address)
    with pytest.raises(ValueError, match="shards must be a positive int"):
        build(["a"], tmp_path / "x", model=model_path, shards=0)
    with pytest.raises(colja.CollectionError, match="does not exist"):
        build(tmp_path / "missing.jsonl", tmp_path / "x", model=model_path)
    assert not (tmp_path / "x").exists()


def test_routing_is_blake2b_of_the_utf8_id():
    import hashlib

    for doc_id in ("文書-1", "", "🍣", "abc"):
        want = int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big") % 7
        assert shard_of(doc_id, 7) == want
    assert shard_of("anything", 1) == 0
