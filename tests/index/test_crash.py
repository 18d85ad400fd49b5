"""Kill a build at named points (and at random moments): the old index, or no index, survives.

The build runs in a subprocess that SIGKILLs itself at ``$COLJA_FAULT_AT`` (see
``colja.index.store.fault_point``); afterwards the folder must load exactly as
before (arrays and exhaustive MaxSim over decompressed vectors), or, for a
first build, report that no finished index exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from .index_helpers import REPO, clustered_docs, exact_maxsim, save_docs_npz

from colja.errors import IndexNotFoundError
from colja import Index

SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from colja import Index
    data = np.load(sys.argv[1])
    docs = np.split(data["flat"], np.cumsum(data["doclens"])[:-1])
    Index.from_embeddings(docs, sys.argv[2], overwrite=True, chunk_passages=20, texts=[f"new {i}" for i in range(len(docs))])
    print("finished")
    """
)

OVERWRITE_POINTS = ["after_sample", "after_kmeans", "after_first_chunk", "before_commit",
                    "before_manifest", "before_rename", "before_current"]
FIRST_BUILD_POINTS = ["after_kmeans", "before_rename", "before_current"]


def _env(point: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLJA_FAULT_AT", None)
    if point:
        env["COLJA_FAULT_AT"] = point
    env["COLJA_KERNELS"] = "torch"  # no extension build in the child
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_build(data_file, path, point: str | None, *, kill_after: float | None = None) -> int:
    cmd = [sys.executable, "-c", SCRIPT, str(data_file), str(path)]
    if kill_after is None:
        done = subprocess.run(cmd, env=_env(point), capture_output=True, text=True, timeout=300)
        if point is None:
            assert done.returncode == 0, done.stderr[-3000:]
        return done.returncode
    proc = subprocess.Popen(cmd, env=_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60)


def fingerprint(path):
    """Arrays, docs and a few exhaustive decompressed MaxSim scores of the index at ``path``."""
    index = Index.load(path)
    try:
        arrays = {n: getattr(index._snapshot, n).clone() for n in ("centroids", "codes", "residuals", "norms", "doclens", "ivf")}
        docs = [index.passage_vectors([p])[0] for p in range(index.num_passages)]
        g = torch.Generator().manual_seed(0)
        Q = torch.nn.functional.normalize(torch.randn(3, 8, index.dim, generator=g), dim=-1)
        scores = exact_maxsim(Q.reshape(-1, index.dim)[None], docs)
        return arrays, index._snapshot.docs.get([0, index.num_passages - 1]), scores
    finally:
        index.close()


def same(a, b) -> bool:
    arrays_a, docs_a, scores_a = a
    arrays_b, docs_b, scores_b = b
    return all(torch.equal(arrays_a[k], arrays_b[k]) for k in arrays_a) and docs_a == docs_b and torch.equal(scores_a, scores_b)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    docs = clustered_docs(n_docs=70, seed=9)
    file = tmp_path_factory.mktemp("crash") / "new.npz"
    save_docs_npz(file, docs)
    return file


def test_killed_overwrite_keeps_the_old_index(tmp_path, data_file, monkeypatch):
    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")  # no reader is left to wait for
    path = tmp_path / "idx"
    old = Index.from_embeddings(clustered_docs(n_docs=40, seed=8), path, texts=[f"old {i}" for i in range(40)])
    old.close()
    before = fingerprint(path)
    for point in OVERWRITE_POINTS:
        code = run_build(data_file, path, point)
        assert code == -signal.SIGKILL, f"the build was not killed at {point} (exit {code})"
        assert same(fingerprint(path), before), f"index changed after a kill at {point}"
    # leftovers are cleaned by the next successful write, which replaces the index
    run_build(data_file, path, None)
    after = fingerprint(path)
    assert after[1][0] == ("0", "new 0", None) and not same(after, before)
    assert sorted(p.name for p in path.iterdir()) == [".lock", "CURRENT", "gen-000009"]


def test_killed_after_switch_is_the_new_index(tmp_path, data_file):
    path = tmp_path / "idx"
    Index.from_embeddings(clustered_docs(n_docs=40, seed=8), path).close()
    assert run_build(data_file, path, "after_current") == -signal.SIGKILL
    index = Index.load(path)  # complete and current; the old generation may linger
    assert index.num_passages == 70 and index._snapshot.docs.get([1]) == [("1", "new 1", None)]
    index.close()


def test_killed_first_build_is_no_index(tmp_path, data_file):
    for point in FIRST_BUILD_POINTS:
        path = tmp_path / point
        assert run_build(data_file, path, point) == -signal.SIGKILL
        with pytest.raises(IndexNotFoundError, match="did not finish"):
            Index.load(path)
    # building again there needs no overwrite=True
    index = Index.from_embeddings(clustered_docs(n_docs=10, seed=1), tmp_path / FIRST_BUILD_POINTS[-1])
    assert index.num_passages == 10
    index.close()


@pytest.mark.parametrize("delay", [0.8, 2.0, 3.5])
def test_kill_at_random_moments(tmp_path, data_file, delay):
    path = tmp_path / "idx"
    Index.from_embeddings(clustered_docs(n_docs=40, seed=8), path).close()
    before = fingerprint(path)
    run_build(data_file, path, None, kill_after=delay)
    now = fingerprint(path)  # loads without error: either the old index or the complete new one
    assert same(now, before) or now[0]["doclens"].shape[0] == 70
