"""Kill the process during ``add`` / ``delete``: the index is exactly before or exactly after the write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from colja import Index

from .index_helpers import REPO, clustered_docs, save_docs_npz

SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from colja import Index
    index = Index.load(sys.argv[1])
    if sys.argv[2] == "add":
        data = np.load(sys.argv[3])
        docs = np.split(data["flat"], np.cumsum(data["doclens"])[:-1])
        index.add([f"added {i}" for i in range(len(docs))], [f"a{i}" for i in range(len(docs))], embeddings=docs)
    else:
        index.delete(["d0", "d1"])
    print("finished")
    """
)

# one point per step of a write: arrays written, docs written, manifest not yet written, generation renamed
ADD_POINTS = ["update_after_arrays", "update_after_docs", "before_manifest", "before_current"]


def _run(path, op: str, data_file, point: str | None) -> int:
    env = dict(os.environ)
    env.pop("COLJA_FAULT_AT", None)
    if point:
        env["COLJA_FAULT_AT"] = point
    env["COLJA_KERNELS"] = "torch"  # no extension build in the child
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path), op, str(data_file)], env=env,
                          capture_output=True, text=True, timeout=300)
    if point is None:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.returncode


def _answers(path):
    """What the index at ``path`` holds and answers: counts, live ids and top-5 for a few queries."""
    index = Index.load(path)
    try:
        g = torch.Generator().manual_seed(0)
        Q = torch.nn.functional.normalize(torch.randn(3, 8, index.dim, generator=g), dim=-1)
        results = index.search_embeddings(Q, 5)
        hits = [[(h.doc_id, round(h.score, 5)) for h in index.hits(results, i)] for i in range(3)]
        live = sorted(set(index._snapshot.docs.all_doc_ids()) - {index._snapshot.docs.doc_ids([p])[0]
                                                        for p in np.flatnonzero(index._snapshot.docs.deleted_mask())})
        return index.num_passages, live, hits
    finally:
        index.close()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    docs = clustered_docs(n_docs=8, seed=13)
    file = tmp_path_factory.mktemp("crash-add") / "new.npz"
    save_docs_npz(file, docs)
    return file


def test_kill_during_add_leaves_before_or_after(tmp_path, data_file, monkeypatch):
    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")  # no reader is left to wait for
    path = tmp_path / "idx"
    Index.from_embeddings(clustered_docs(n_docs=30, seed=12), path, doc_ids=[f"d{i}" for i in range(30)]).close()
    before = _answers(path)
    for point in ADD_POINTS:
        assert _run(path, "add", data_file, point) == -signal.SIGKILL, f"not killed at {point}"
        assert _answers(path) == before, f"the index changed after a kill at {point}"
    assert _run(path, "add", data_file, "after_current") == -signal.SIGKILL
    after = _answers(path)
    assert after[0] == 38 and {f"a{i}" for i in range(8)} <= set(after[1])
    # the next write cleans the leftovers
    assert _run(path, "delete", data_file, None) == 0
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == ["CURRENT", "gen-000007"]
    final = _answers(path)
    assert final[0] == 38 and "d0" not in final[1] and len(final[1]) == 36


def test_kill_during_delete_leaves_before(tmp_path, data_file):
    path = tmp_path / "idx"
    Index.from_embeddings(clustered_docs(n_docs=20, seed=14), path, doc_ids=[f"d{i}" for i in range(20)]).close()
    before = _answers(path)
    for point in ("update_after_docs", "before_current"):
        assert _run(path, "delete", data_file, point) == -signal.SIGKILL
        assert _answers(path) == before
