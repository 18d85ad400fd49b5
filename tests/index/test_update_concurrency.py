"""A search running in one thread while another thread writes sees the old or the new collection, never a mix."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from colja import Index
from colja.index.snapshot import IndexSnapshot

from .index_helpers import clustered_docs

N = 30


def _slowed(method):
    def slow(self, *args, **kwargs):
        time.sleep(0.002)  # widen the window between the steps of a search
        return method(self, *args, **kwargs)
    return slow


def test_searches_during_writes_see_one_version(tmp_path, monkeypatch):
    """Every write replaces all documents by a new version (text, metadata, vectors); each search's hits
    must all come from one version, and there must be exactly N of them."""
    for name in ("cached", "allowed"):
        monkeypatch.setattr(IndexSnapshot, name, _slowed(getattr(IndexSnapshot, name)))
    docs = clustered_docs(n_docs=N, seed=5)
    ids = [f"d{i}" for i in range(N)]
    index = Index.from_embeddings(docs, tmp_path / "idx", doc_ids=ids, texts=[f"v0 {i}" for i in range(N)],
                                  metadata=[{"v": 0, "i": i} for i in range(N)])
    Q = torch.from_numpy(np.concatenate([docs[0][:4], docs[1][:4]]))
    errors: list[str] = []
    seen: set[int] = set()
    done = threading.Event()

    def search() -> None:
        rounds = 0
        while not done.is_set() or rounds < 3:
            rounds += 1
            try:
                for where in (None, {"i": {"$gte": 0}}):
                    hits = index.hits(index.search_embeddings(Q, N + 5, where=where))
                    versions = {h.metadata["v"] for h in hits} | {int(h.text.split()[0][1:]) for h in hits}
                    if len(hits) != N or len(versions) != 1 or {h.doc_id for h in hits} != set(ids):
                        errors.append(f"mixed result: {len(hits)} hits, versions {versions}")
                    seen.update(versions)
                with index._pinned() as state:  # what a search pins is one consistent snapshot
                    if state.docs.count() != state.num_passages:
                        errors.append("docstore and arrays of different generations")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

    readers = [threading.Thread(target=search) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for v in range(1, 7):
            index.update(ids, [f"v{v} {i}" for i in range(N)], [{"v": v, "i": i} for i in range(N)], embeddings=docs)
    finally:
        done.set()
        for t in readers:
            t.join(timeout=120)
    assert not errors, errors[:5]
    assert index.num_passages == 7 * N and index._snapshot.docs.count_live() == N
    assert len(seen) >= 2  # the readers really ran across writes
    index.close()
