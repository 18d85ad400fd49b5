"""Living collections: add / delete / update / rebuild without re-encoding the collection."""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colja.errors import CollectionError, StaleIndexWarning, UnknownDocumentError
from colja.index.docstore import DocStore
from colja import Index
from colja.index.ivf import build_ivf
from colja.index.writes import merge_ivf

from .index_helpers import clustered_docs, snapshot
from tests.conftest import DATA

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


def _query(doc: np.ndarray, n: int = 8) -> torch.Tensor:
    return torch.from_numpy(np.asarray(doc[:n], dtype=np.float32))


@pytest.fixture()
def small(tmp_path):
    docs = clustered_docs(n_docs=50, seed=3)
    index = Index.from_embeddings(docs, tmp_path / "idx", texts=[f"text {i}" for i in range(50)],
                                  doc_ids=[f"d{i}" for i in range(50)],
                                  metadata=[{"i": i, "even": i % 2 == 0} for i in range(50)])
    yield index, docs
    index.close()


# --------------------------------------------------------------------------- IVF merge


@given(st.integers(1, 30), st.integers(1, 20), st.integers(2, 16), st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_merge_ivf_equals_a_fresh_ivf(n_old, n_new, n_centroids, seed):
    rng = np.random.default_rng(seed)
    doclens = rng.integers(0, 6, n_old + n_new)
    codes = rng.integers(0, n_centroids, int(doclens.sum())).astype(np.int32)
    split = int(doclens[:n_old].sum())
    ivf, lengths = build_ivf(codes[:split], doclens[:n_old], n_centroids)
    merged, merged_lengths = merge_ivf(ivf, lengths, codes[split:], doclens[n_old:], n_old)
    full, full_lengths = build_ivf(codes, doclens, n_centroids)
    np.testing.assert_array_equal(merged, full)
    np.testing.assert_array_equal(merged_lengths, full_lengths)
    assert merged.dtype == np.int32 and merged_lengths.dtype == np.int64


# --------------------------------------------------------------------------- add / delete / update


def test_add_appends_with_the_same_codec(small):
    index, docs = small
    before = {n: getattr(index._snapshot, n).clone() for n in ("centroids", "bucket_cutoffs", "bucket_weights", "codes")}
    old_gen = index.generation
    new = clustered_docs(n_docs=6, seed=11)
    ids = index.add([f"new {i}" for i in range(6)], embeddings=new, metadata=[{"i": 100 + i} for i in range(6)])
    assert ids == [str(p) for p in range(50, 56)]
    assert index.num_passages == 56 and index.generation != old_gen
    for name in ("centroids", "bucket_cutoffs", "bucket_weights"):
        assert torch.equal(getattr(index._snapshot, name), before[name])
    assert torch.equal(index._snapshot.codes[: before["codes"].shape[0]], before["codes"])
    # the new passages compress exactly as the codec compresses them
    codes, residuals = index._snapshot.codec.compress(torch.from_numpy(new[2]).half().float())
    start, end = int(index._snapshot.doc_offsets[52]), int(index._snapshot.doc_offsets[53])
    assert torch.equal(index._snapshot.codes[start:end], codes) and torch.equal(index._snapshot.residuals[start:end], residuals)
    # unchanged files are hard links of the previous generation's
    assert (index.generation / "centroids.npy").stat().st_nlink >= 1
    hits = index.hits(index.search_embeddings(_query(new[2]), 3))
    assert hits[0].doc_id == "52" and hits[0].text == "new 2" and hits[0].metadata == {"i": 102}
    assert index.manifest["counts"] == {"passages": 56, "live_passages": 56, "embeddings": int(index._snapshot.doclens.sum())}
    assert index.manifest["trained_passages"] == 50


def test_delete_and_update(small):
    index, docs = small
    assert index.delete(["d3", "d4"]) == 2
    assert index.num_passages == 50 and index._snapshot.docs.count_live() == 48
    for i in (3, 4):
        hits = index.hits(index.search_embeddings(_query(docs[i]), 50))
        assert len(hits) == 48 and f"d{i}" not in {h.doc_id for h in hits}
    replacement = clustered_docs(n_docs=1, seed=21)
    index.update(["d7"], ["seven, rewritten"], embeddings=replacement)
    assert index.num_passages == 51 and index._snapshot.docs.count_live() == 48
    hits = index.hits(index.search_embeddings(_query(replacement[0]), 2))
    assert hits[0].doc_id == "d7" and hits[0].text == "seven, rewritten" and hits[0].pid == 50
    assert hits[0].metadata == {"i": 7, "even": False}  # metadata=None keeps it
    index.update(["d7"], ["again"], [{"new": True}], embeddings=replacement)
    assert index.hits(index.search_embeddings(_query(replacement[0]), 1))[0].metadata == {"new": True}
    assert index._snapshot.docs.pids_for(["d7"]) == [51]
    # a deleted id can be added again
    index.add(["three is back"], ["d3"], embeddings=[docs[3]])
    assert index.hits(index.search_embeddings(_query(docs[3]), 1))[0].text == "three is back"


def test_bad_input_raises_and_writes_nothing(small):
    index, docs = small
    before = snapshot(index.path)
    one = clustered_docs(n_docs=1, seed=5)
    cases = [
        (lambda: index.add(["x"], ["d1"], embeddings=one), CollectionError, "already in the index"),
        (lambda: index.add(["x", "y"], ["a", "a"], embeddings=one * 2), CollectionError, "unique"),
        (lambda: index.add(["x", "y"], embeddings=one), CollectionError, "texts for 1 embeddings"),
        (lambda: index.add(["x"], ["a", "b"], embeddings=one), CollectionError, "2 doc ids for 1 embeddings"),
        (lambda: index.add("x", embeddings=one), CollectionError, "single string"),
        (lambda: index.add(["x"], metadata=[{"bad": float("nan")}], embeddings=one), CollectionError, "JSON"),
        (lambda: index.add(["x"], embeddings=[np.zeros((3, 64), np.float32)]), CollectionError, "64-d"),
        (lambda: index.add(["x"]), Exception, "no model"),
        (lambda: index.delete(["d1", "nope", "nada"]), UnknownDocumentError, "2 document id"),
        (lambda: index.delete(["d1", "d1"]), CollectionError, "unique"),
        (lambda: index.delete("d1"), CollectionError, "single string"),
        (lambda: index.update(["zz"], ["x"], embeddings=one), KeyError, "zz"),
        (lambda: index.update(["d1", "d2"], ["x"], embeddings=one), CollectionError, "2 doc ids for 1"),
        (lambda: index.add(["x"], embeddings=one, max_tokens=10), ValueError, "split=True"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
        assert snapshot(index.path) == before
    assert index.add([]) == [] and index.add(embeddings=[]) == [] and index.delete([]) == 0
    assert snapshot(index.path) == before
    msg = None
    try:
        index.delete(["nope"])
    except KeyError as exc:
        msg = str(exc)
    assert msg is not None and msg.startswith("1 document id(s) not in the index") and "'nope'" in msg


def test_other_loaded_index_keeps_working_and_refreshes(small):
    index, docs = small
    other = Index.load(index.path)  # loaded before the writes
    mapped = Index.load(index.path, mmap=True)
    Q = _query(docs[10])
    expect = other.search_embeddings(Q, 5)
    index.delete(["d10"])
    index.add(["n"], embeddings=clustered_docs(n_docs=1, seed=2))
    # the old generation is kept while objects hold it, and they answer as before
    assert other.generation.exists() and mapped.generation == other.generation
    for stale in (other, mapped):
        got = stale.search_embeddings(Q, 5)
        np.testing.assert_array_equal(got.pids, expect.pids)
        assert stale.hits(got)[0].doc_id == "d10"
    assert other.refresh() and not other.refresh()
    assert "d10" not in {h.doc_id for h in other.hits(other.search_embeddings(Q, 5))}
    # writing through a stale object writes on top of the newest generation
    assert mapped.add(["m"], ["late"], embeddings=clustered_docs(n_docs=1, seed=3)) == ["late"]
    assert mapped.num_passages == 52 and mapped._snapshot.docs.count_live() == 51
    assert Index.load(index.path).num_passages == 52
    for x in (other, mapped):
        x.close()


def test_replaced_snapshots_close_when_their_searches_end(small):
    index, docs = small
    first = index._snapshot
    with index.snapshot() as pinned:
        assert pinned is first
        index.delete(["d1"])
        assert index._snapshot is not first and not first._closed
        assert pinned.docs.count_live() == 50 and len(index) == 50  # this thread still sees its pin
    assert first._closed and index._snapshot.docs.count_live() == 49
    second = index._snapshot
    index.delete(["d2"])
    assert second._closed and not index._snapshot._closed


def test_stale_warning_and_rebuild(small):
    index, docs = small
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleIndexWarning)
        index.add(embeddings=clustered_docs(n_docs=50, seed=7))  # 100 live = 2x: no warning yet
    with pytest.warns(StaleIndexWarning, match="rebuild"):
        index.add(embeddings=clustered_docs(n_docs=5, seed=8))
    index.delete([f"d{i}" for i in range(20)])
    index.update(["d30"], ["thirty"], embeddings=clustered_docs(n_docs=1, seed=9))
    live_before = index._snapshot.docs.count_live()
    Q = _query(docs[40])
    top_before = index.hits(index.search_embeddings(Q, 1))[0]
    index.rebuild()
    assert index.num_passages == live_before == index._snapshot.docs.count_live() == 85
    assert index.manifest["trained_passages"] == 85 and index.manifest["rebuilt"]["dropped_passages"] == 21
    assert index.manifest["codec"]["num_centroids"] == int(index._snapshot.centroids.shape[0])
    top = index.hits(index.search_embeddings(Q, 1))[0]
    assert (top.doc_id, top.text, top.metadata) == (top_before.doc_id, top_before.text, top_before.metadata)
    assert set(index._snapshot.docs.all_doc_ids()) == ({f"d{i}" for i in range(20, 50)} | {str(p) for p in range(50, 105)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleIndexWarning)
        index.add(embeddings=clustered_docs(n_docs=5, seed=10))
    reloaded = Index.load(index.path)
    assert reloaded.num_passages == 90
    reloaded.close()


def test_writes_carry_a_stored_bm25_first_stage(tmp_path):
    pytest.importorskip("bm25s")
    docs = clustered_docs(n_docs=20, seed=4)
    texts = ["東京は日本の首都です。", "富士山は日本一高い山です。"] + [f"文書 {i} の本文です。" for i in range(18)]
    index = Index.from_embeddings(docs, tmp_path / "idx", texts=texts)
    index.add_first_stage("bm25")
    index.add(["京都は古い都です。"], embeddings=clustered_docs(n_docs=1, seed=6))
    assert index.first_stages["bm25"]["passages"] == 21 and len(index.first_stage("bm25")) == 21
    pids = index.first_stage("bm25").search("京都", 3).pids
    assert pids[0] == 20
    index.delete(["0"])
    assert len(index.first_stage("bm25")) == 21
    index.rebuild()
    assert index.num_passages == 20 and len(index.first_stage("bm25")) == 20
    assert index._snapshot.docs.get([int(index.first_stage("bm25").search("京都", 1).pids[0])])[0][1] == "京都は古い都です。"
    assert Index.load(index.path).first_stages["bm25"]["passages"] == 20


def test_version_1_docstore_is_read_and_migrated(tmp_path):
    """Indexes written before schema 2 (doc_id UNIQUE, no parent columns) load, search and accept writes."""
    docs = clustered_docs(n_docs=12, seed=2)
    index = Index.from_embeddings(docs, tmp_path / "idx", texts=[f"t{i}" for i in range(12)])
    gen = index.generation
    index.close()
    old = gen / "docs.sqlite"
    conn = sqlite3.connect(old)
    conn.executescript("""
        CREATE TABLE v1 (pid INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
                         metadata TEXT, deleted INTEGER NOT NULL DEFAULT 0);
        INSERT INTO v1 SELECT pid, doc_id, text, metadata, deleted FROM docs;
        DROP TABLE docs; ALTER TABLE v1 RENAME TO docs;
        UPDATE info SET value = '1' WHERE key = 'schema_version';
    """)
    conn.commit()
    conn.close()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["files"]["docs.sqlite"]["bytes"] = old.stat().st_size
    (gen / "manifest.json").write_text(json.dumps(manifest))
    index = Index.load(tmp_path / "idx", check_hashes=False)
    assert index.hits(index.search_embeddings(_query(docs[5]), 1))[0].doc_id == "5"
    index.update(["5"], ["five"], embeddings=[docs[5]])
    hit = index.hits(index.search_embeddings(_query(docs[5]), 1))[0]
    assert (hit.doc_id, hit.text, hit.parent_id) == ("5", "five", None)
    store = DocStore.open(index.generation / "docs.sqlite")
    assert store._info("schema_version") == "2"
    store.close()
    index.close()


# --------------------------------------------------------------------------- property test on the fixture model


@pytest.fixture(scope="module")
def pool(_fixture_model):
    """Short distinct Japanese passages (they fit the fixture model's doc_maxlen) and their query vectors."""
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")]
    texts = [t for t in dict.fromkeys(r["text"] for r in rows) if len(_fixture_model.tokenizer.tokenize(t)) < 58][:70]
    Q = _fixture_model.encode_queries(texts)
    return texts, Q


@pytest.fixture(scope="module")
def base_index(_fixture_model, pool, tmp_path_factory):
    texts, _ = pool
    path = tmp_path_factory.mktemp("base") / "idx"
    Index.build(texts[:24], path, model=_fixture_model, doc_ids=[f"b{i}" for i in range(24)],
                metadata=[{"i": i} for i in range(24)]).close()
    return path


def _exact_top10(index: Index, q: torch.Tensor) -> list[set[int]]:
    """Exact MaxSim top-10 pids over the live passages' decompressed vectors (independent of the search code)."""
    live = np.flatnonzero(~index._snapshot.docs.deleted_mask())
    vectors, lens = index.passage_vectors(live)
    padded = torch.zeros(len(live), int(lens.max()), vectors.shape[1])
    mask = torch.arange(padded.shape[1])[None, :] < lens[:, None]
    padded[mask] = vectors
    sims = torch.einsum("qld,nmd->qnlm", q.float(), padded).masked_fill(~mask[None, :, None, :], -torch.inf)
    scores = sims.max(-1).values.sum(-1)  # [queries, live passages]
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :10]
    return [set(live[row].tolist()) for row in order.numpy()]


def _check(index: Index, live: dict[str, int], pool, model) -> None:
    """Deleted ids never appear; each live doc is found by its own text; recall@10 vs exact MaxSim; reload agrees."""
    texts, Q = pool
    assert index._snapshot.docs.count_live() == len(live)
    ids = list(live)
    q = Q[[live[i] for i in ids]]
    results = index.search_embeddings(q, 10)
    firsts = 0
    recall = []
    for row, (doc_id, best) in enumerate(zip(ids, _exact_top10(index, q))):
        hits = index.hits(results, row)
        got = [h.doc_id for h in hits]
        assert set(got) <= set(live), f"a deleted or unknown id was returned: {set(got) - set(live)}"
        assert len(got) == min(10, len(live))
        assert doc_id in got[:3], f"{doc_id} not found by its own text"
        firsts += got[0] == doc_id
        assert hits[0].text == texts[live[got[0]]]
        recall.append(len(best & {h.pid for h in hits}) / len(best))
    assert np.mean(recall) >= 0.99, recall
    assert firsts >= 0.9 * len(ids)
    reloaded = Index.load(index.path, model=model)
    try:
        again = reloaded.search_embeddings(q, 10)
        np.testing.assert_array_equal(again.pids, results.pids)
        np.testing.assert_allclose(again.scores, results.scores, rtol=1e-6)
    finally:
        reloaded.close()


operations = st.lists(
    st.tuples(st.sampled_from(["add", "delete", "update"]), st.integers(1, 4), st.randoms(use_true_random=False)),
    min_size=1, max_size=3)


@given(ops=operations)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_random_writes_keep_the_index_exact(ops, base_index, pool, _fixture_model, tmp_path_factory):
    texts, _ = pool
    path = tmp_path_factory.mktemp("prop") / "idx"
    shutil.copytree(base_index, path)
    index = Index.load(path, model=_fixture_model, mmap=True)
    live = {f"b{i}": i for i in range(24)}  # doc id -> text number in the pool
    unused = list(range(24, len(texts)))
    try:
        for op, n, rnd in ops:
            if op == "add" and len(unused) >= n:
                picked = [unused.pop(rnd.randrange(len(unused))) for _ in range(n)]
                ids = index.add([texts[t] for t in picked], metadata=[{"t": t} for t in picked])
                live.update(zip(ids, picked))
            elif op == "delete" and len(live) > n:
                gone = rnd.sample(sorted(live), n)
                assert index.delete(gone) == n
                for g in gone:
                    unused.append(live.pop(g))
            elif op == "update" and len(unused) >= n and len(live) >= n:
                targets = rnd.sample(sorted(live), n)
                picked = [unused.pop(rnd.randrange(len(unused))) for _ in range(n)]
                index.update(targets, [texts[t] for t in picked])
                for doc_id, t in zip(targets, picked):
                    unused.append(live[doc_id])
                    live[doc_id] = t
            else:
                continue
            _check(index, live, pool, _fixture_model)
    finally:
        index.close()
