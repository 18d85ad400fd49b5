"""Fuzzing a real index: random changes to its manifest, small arrays and document store (checksums
recomputed) give a specific error (:class:`~colja.errors.IndexFormatError`) or the very same results.

Every case is loaded and searched in a child process (:mod:`tests.security.fuzz_worker`), so a crash
or a hang (past ``CASE_TIMEOUT_S``) is a failed case, not a dead test run. Only changes after which
the index would *legitimately* answer differently are left out: residual bytes, a code moved to
another valid centroid, and finite centroid / weight / norm values (valid data that no invariant can
tell from the original — ``colja verify``'s recomputed norms catch those), and tombstoning a row.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from .forge import forge, generation  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CASE_TIMEOUT_S = 60.0
EXAMPLES = int(os.environ.get("COLJA_FUZZ_EXAMPLES", "60"))
pytestmark = pytest.mark.timeout(1800)


class Worker:
    """The child process; restarted after a crash so later cases still run."""

    def __init__(self, queries: Path):
        self.queries = queries
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), COLJA_DISABLE_PROGRESS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.security.fuzz_worker", str(self.queries)],
                                     cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)

    def ask(self, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], CASE_TIMEOUT_S)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            return {"crash": f"no answer within {CASE_TIMEOUT_S}s (a hang)"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"crash": f"the process ended with status {code}"}
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, queries):
    folder = tmp_path_factory.mktemp("fuzz-queries")
    np.save(folder / "q.npy", queries)
    w = Worker(folder / "q.npy")
    yield w
    w.stop()


@pytest.fixture(scope="module")
def baseline(worker, sound_index):
    reply = worker.ask(sound_index)
    assert "results" in reply, reply
    return reply["results"]


# ------------------------------------------------------------------ mutations

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every key path of a parsed manifest (not into the per-file checksums, which the forger rewrites)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            if prefix[:1] != ("files",) or len(prefix) < 1:
                yield from _paths(v, prefix + (k,))


def manifest_mutation(draw_path, value, delete):
    def change(gen):
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        paths = sorted(_paths(manifest), key=str)
        path = paths[draw_path % len(paths)]
        node = manifest
        for key in path[:-1]:
            node = node[key]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return manifest

    return change


INT_ARRAYS = {"ivf": np.int32, "ivf_lengths": np.int64, "doclens": np.int64}
FLOAT_ARRAYS = ("centroids", "bucket_weights", "bucket_cutoffs", "norms")


def int_array_mutation(name, where, value):
    def change(gen):
        a = np.load(gen / f"{name}.npy").copy()
        info = np.iinfo(a.dtype)
        a[where % a.size] = min(max(value, info.min), info.max)
        np.save(gen / f"{name}.npy", a)

    return change


def swap_mutation(i, j):
    def change(gen):
        a = np.load(gen / "ivf.npy").copy()
        i2, j2 = i % a.size, j % a.size
        a[i2], a[j2] = a[j2], a[i2]
        np.save(gen / "ivf.npy", a)

    return change


def float_array_mutation(name, where, value):
    def change(gen):
        a = np.load(gen / f"{name}.npy").copy()
        a.reshape(-1)[where % a.size] = value
        np.save(gen / f"{name}.npy", a)

    return change


def code_mutation(where, value):
    def change(gen):
        a = np.load(gen / "codes.npy").copy()
        ncent = np.load(gen / "centroids.npy").shape[0]
        a[where % a.size] = value if value < 0 else ncent + value  # always outside [0, C)
        np.save(gen / "codes.npy", a)

    return change


def docstore_mutation(kind, pid, value):
    number = value if isinstance(value, int) else len(value)
    statements = {
        "move-pid": [f"UPDATE docs SET pid = {number % 200 - 50} WHERE pid = {pid}"],
        "metadata": [("UPDATE docs SET metadata = ? WHERE pid = ?", (str(value), pid))],
        "deleted": [("UPDATE docs SET deleted = ? WHERE pid = ?", (value if value not in (0, 1) else 7, pid))],
        "drop-unique": ["DROP INDEX docs_live_doc_id"],
        "duplicate-id": ["DROP INDEX docs_live_doc_id",
                         f"UPDATE docs SET doc_id = (SELECT doc_id FROM docs WHERE pid = {(pid + 1) % 48}) WHERE pid = {pid}"],
        "blob-text": [(f"UPDATE docs SET text = ? WHERE pid = {pid}", (bytes(str(value), "utf-8") + b"\xff",))],
        "delete-row": [f"DELETE FROM docs WHERE pid = {pid}"],
        "extra-row": ["INSERT INTO docs (pid, doc_id, text) VALUES (48, 'extra', 'x')"],
        "view": ["ALTER TABLE docs RENAME TO d0", "CREATE VIEW docs AS SELECT * FROM d0"],
    }[kind]

    def change(gen):
        conn = sqlite3.connect(str(gen / "docs.sqlite"), isolation_level=None)
        try:
            for statement in statements:
                if isinstance(statement, tuple):
                    conn.execute(*statement)
                else:
                    conn.execute(statement)
        except sqlite3.IntegrityError:
            return "skip"
        finally:
            conn.close()

    return change


MUTATIONS = st.one_of(
    st.builds(manifest_mutation, st.integers(0, 10_000), JSON_VALUES, st.booleans()),
    st.builds(int_array_mutation, st.sampled_from(sorted(INT_ARRAYS)), st.integers(0, 10_000),
              st.integers(-(2**63), 2**63 - 1)),
    st.builds(swap_mutation, st.integers(0, 10_000), st.integers(0, 10_000)),
    st.builds(float_array_mutation, st.sampled_from(FLOAT_ARRAYS), st.integers(0, 10_000),
              st.sampled_from([np.nan, np.inf, -np.inf])),
    st.builds(code_mutation, st.integers(0, 10_000), st.integers(-(2**31), 2**30)),
    st.builds(docstore_mutation, st.sampled_from(["move-pid", "metadata", "deleted", "drop-unique", "duplicate-id",
                                                  "blob-text", "delete-row", "extra-row", "view"]),
              st.integers(0, 47), st.one_of(st.integers(-100, 100), st.text(max_size=10))),
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutation=MUTATIONS)
def test_mutations_give_a_specific_error_or_the_same_results(mutation, worker, baseline, sound_index):
    folder = Path(tempfile.mkdtemp(prefix="colja-fuzz-"))
    try:
        skipped = []

        def change(gen):
            out = mutation(gen)
            if out == "skip":
                skipped.append(True)
                return None
            return out

        forged = forge(sound_index, folder / "idx", change)
        assume(not skipped)
        reply = worker.ask(forged)
        assert "crash" not in reply, reply["crash"]
        if "error" in reply:
            assert reply["error"] == "IndexFormatError", reply
            assert "colja verify" in reply["message"]
        else:
            assert reply["results"] == baseline, "the index answered differently without an error"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
