"""The document store is read-only with a bounded amount of work per query; kernels raise on bad arrays."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from colja import IndexFormatError
from colja.index.docstore import DocStore
from colja.index.readonly_sqlite import connect_readonly

from .forge import forge, generation
from .test_forged_index import _recursive_view

pytestmark = pytest.mark.timeout(120)
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_a_recursive_view_is_stopped_by_the_work_bound(sound_index, tmp_path):
    """Even past the load checks (DocStore opened directly), a crafted query cannot hang."""
    forged = forge(sound_index, tmp_path / "f", _recursive_view)
    store = DocStore.open(generation(forged) / "docs.sqlite")
    started = time.perf_counter()
    with pytest.raises(IndexFormatError, match=r"docs\.sqlite.*ran more than .* steps and was stopped"):
        store.count()
    with pytest.raises(IndexFormatError, match="was stopped"):
        store.records([0, 1])  # stopped while fetching rows, too
    assert time.perf_counter() - started < 20
    store.close()


def test_the_store_is_opened_read_only(sound_index):
    conn = connect_readonly(generation(sound_index) / "docs.sqlite")
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only|attempt to write"):
            conn.execute("DELETE FROM docs")
        assert conn.execute("PRAGMA query_only").fetchone()[0] == 1
        assert conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0
    finally:
        conn.close()


def test_the_bound_leaves_ordinary_queries_alone(sound_index):
    conn = connect_readonly(generation(sound_index) / "docs.sqlite", budget=2_000_000)
    try:
        for _ in range(3):  # the step count restarts with every statement
            assert conn.execute("SELECT COUNT(*) FROM docs WHERE json_extract(metadata, '$.n') >= 0").fetchone()[0] == 48
    finally:
        conn.close()


@pytest.mark.parametrize("impl", ["torch", "cpp"])
def test_kernels_raise_on_bad_arrays_never_crash(impl):
    """Codes, pids and offsets out of range: an exception from every kernel, in a child process
    (a segmentation fault would show as its exit status)."""
    if impl == "cpp":
        from colja.kernels import _build

        try:
            _build.require_module("cpu")
        except Exception as exc:  # noqa: BLE001 - no compiler here: the torch case still runs
            pytest.skip(f"the C++ kernels cannot be built here: {exc}")
    done = subprocess.run([sys.executable, "-m", "tests.security.kernel_probe", impl], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(outcome) >= 30
    assert all(outcome.values()), {k: v for k, v in outcome.items() if not v}
