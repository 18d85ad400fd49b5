"""A full disk during any write: a clear ``DiskFullError`` (an ``OSError``), the old index intact, no SIGBUS.

The test mounts a small tmpfs, which needs root (``.ci/run`` runs as root); elsewhere it
skips with that reason. All writes run in one subprocess, so a SIGBUS fails the test
instead of killing pytest.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from colja import DiskFullError
from colja.index.store import disk_full_error, is_disk_full
from tests.conftest import REPO

from .index_helpers import clustered_docs, save_docs_npz

DISK_MB = 6

SCRIPT = textwrap.dedent("""
    import json, os, shutil, sys, warnings
    import numpy as np
    from colja import DiskFullError, Index
    warnings.simplefilter("ignore")
    disk, data = sys.argv[1], sys.argv[2]
    z = np.load(data)
    docs = np.split(z["flat"], np.cumsum(z["doclens"])[:-1])
    path = os.path.join(disk, "idx")
    texts = [f"東京の文書 {i} ｶﾀｶﾅ 😀" for i in range(len(docs))]
    Index.from_embeddings(docs[:200], path, doc_ids=[f"d{i}" for i in range(200)], texts=texts[:200]).close()
    filler = os.path.join(disk, "filler")

    def fill(leave):
        if os.path.exists(filler):
            os.remove(filler)
        free = shutil.disk_usage(disk).free
        with open(filler, "wb") as f:
            block = b"\\0" * 65536
            left = max(0, free - leave)
            try:
                while left > 0:
                    left -= f.write(block[: min(len(block), left)])
            except OSError:
                pass

    writes = {
        "add": lambda ix: ix.add(texts[200:260], doc_ids=[f"n{i}" for i in range(60)], embeddings=docs[200:260]),
        "update": lambda ix: ix.update([f"d{i}" for i in range(40)], texts[200:240], embeddings=docs[200:240]),
        "delete": lambda ix: ix.delete([f"d{i}" for i in range(0, 200, 3)]),
        "rebuild": lambda ix: ix.rebuild(),
        "bm25": lambda ix: ix.add_first_stage("bm25"),
        "build": lambda ix: Index.from_embeddings(docs, os.path.join(disk, "other"), texts=texts),
    }
    report = []
    for leave in (0, 16_384, 262_144):
        for kind, write in writes.items():
            before = Index.load(path)
            n_before, gen_before = len(before), before.generation.name
            fill(leave)
            outcome = "ok"
            try:
                write(before)
            except DiskFullError as exc:
                outcome = "DiskFullError"
                assert isinstance(exc, OSError) and exc.errno is not None, repr(exc)
                assert "filled up" in str(exc) and "unchanged" in str(exc) or "nothing was written" in str(exc), str(exc)
            except Exception as exc:  # any other error is a failure of the test
                outcome = f"{type(exc).__name__}: {exc}"
            os.remove(filler)
            after = Index.load(path)
            if outcome == "DiskFullError":
                assert after.generation.name == gen_before and len(after) == n_before, (kind, leave)
            after.search_embeddings(docs[5][:4], 3)
            leftovers = [n for n in os.listdir(path) if n.startswith(".tmp-gen-")]
            report.append({"kind": kind, "leave": leave, "outcome": outcome, "leftovers": leftovers})
            shutil.rmtree(os.path.join(disk, "other"), ignore_errors=True)
            # restore the starting collection for the next write kind
            after.close()
            if outcome == "ok" and kind != "build":
                shutil.rmtree(path)
                Index.from_embeddings(docs[:200], path, doc_ids=[f"d{i}" for i in range(200)], texts=texts[:200]).close()
    # the next write on a disk with room cleans any leftovers
    Index.load(path).delete(["d1"])
    assert not [n for n in os.listdir(path) if n.startswith(".tmp-gen-")]
    print(json.dumps(report))
""")


def _mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    return done.returncode == 0


@pytest.fixture()
def small_disk(tmp_path):
    disk = Path("/tmp") / f"colja-disk-{uuid.uuid4().hex[:8]}"
    if not _mount_tmpfs(disk):
        pytest.skip("mounting a small tmpfs needs root (and mount); .ci/run runs as root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
        shutil.rmtree(disk, ignore_errors=True)


def test_every_write_on_a_full_disk_is_a_clear_error_and_keeps_the_index(small_disk, tmp_path):
    docs = clustered_docs(n_docs=320, seed=9)
    data = tmp_path / "docs.npz"
    save_docs_npz(data, docs)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLJA_DISABLE_PROGRESS="1", COLJA_GENERATION_GRACE_S="0")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(small_disk), str(data)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0, f"exit {done.returncode} (negative: killed by a signal)\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    bad = [r for r in report if r["outcome"] not in ("ok", "DiskFullError")]
    assert not bad, bad
    full = {r["kind"] for r in report if r["leave"] == 0 and r["outcome"] == "DiskFullError"}
    assert full == {"add", "update", "delete", "rebuild", "bm25", "build"}, report
    assert not [r for r in report if r["leftovers"] and r["outcome"] == "DiskFullError"], report


def test_disk_full_is_recognised_through_wrapping():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError("262144 requested and 186304 written"))
    import sqlite3
    try:
        raise ValueError("copying the store failed") from sqlite3.OperationalError("database or disk is full")
    except ValueError as exc:
        assert is_disk_full(exc)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("no"))


def test_disk_full_error_says_what_happened(tmp_path):
    err = disk_full_error(tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(err, DiskFullError) and isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(tmp_path) in str(err) and "nothing was written" in str(err) and "Free space" in str(err)
