"""Reader processes keep working while another process writes hundreds of small generations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from colja import Index
from tests.conftest import REPO

from .index_helpers import clustered_docs, save_docs_npz

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from colja import Index
    path, data, writes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    z = np.load(data)
    docs = np.split(z["flat"], np.cumsum(z["doclens"])[:-1])
    index = Index.load(path)
    done = 0
    for i in range(writes):
        kind = i % 3
        if kind == 0:
            index.add(embeddings=[docs[i % len(docs)]], doc_ids=[f"w{i}"])
        elif kind == 1:
            index.update([f"w{i - 1}"], embeddings=[docs[(i + 7) % len(docs)]])
        else:
            index.delete([f"w{i - 2}"])
        done += 1
    print("WROTE", done)
""")

READER = textwrap.dedent("""
    import json, sys, time, traceback
    import numpy as np, torch
    from colja import Index
    path, stop_file, first_stage = sys.argv[1], sys.argv[2], sys.argv[3]
    import os
    Q = torch.from_numpy(np.load(sys.argv[4]))
    ok = failed = 0
    errors = []
    stale = Index.load(path)  # a stale object: it keeps answering from its generation
    while not os.path.exists(stop_file) or ok < 5:
        try:
            fresh = Index.load(path)
            r = fresh.search_embeddings(Q, 5)
            assert len(r.pids[0]) == 5
            fresh.hits(r)
            fresh.close()
            r = stale.search_embeddings(Q, 5)
            assert len(r.pids[0]) == 5
            stale.hits(r)
            if ok % 7 == 3:
                stale.refresh()
            ok += 1
        except Exception as exc:
            failed += 1
            errors.append(traceback.format_exc()[-600:])
    print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:3]}))
""")


def _env():
    # a short grace: readers that lose the race between CURRENT and the pin must retry, not fail
    return dict(os.environ, PYTHONPATH=str(REPO), COLJA_DISABLE_PROGRESS="1", COLJA_GENERATION_GRACE_S="0.05")


def test_readers_never_fail_while_a_process_writes(tmp_path, monkeypatch):
    docs = clustered_docs(n_docs=40, seed=3)
    path = tmp_path / "idx"
    Index.from_embeddings(docs, path, doc_ids=[f"d{i}" for i in range(40)]).close()
    data = tmp_path / "docs.npz"
    save_docs_npz(data, docs)
    query = tmp_path / "q.npy"
    np.save(query, docs[4][:6])
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop), "plaid", str(query)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
               for _ in range(2)]
    time.sleep(1.0)  # let the readers start loading
    writer = subprocess.run([sys.executable, "-c", WRITER, str(path), str(data), "240"],
                            capture_output=True, text=True, timeout=600, env=_env())
    stop.touch()
    outs = [r.communicate(timeout=300) for r in readers]
    assert writer.returncode == 0, writer.stderr[-3000:]
    assert "WROTE 240" in writer.stdout
    for (out, err), r in zip(outs, readers):
        assert r.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["failed"] == 0, report["errors"]
        assert report["ok"] >= 5
    index = Index.load(path)
    assert len(index) == 40  # 80 adds, each updated, then deleted
    # generations the readers still held are left; the next write, with no reader left, removes them
    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")
    index.delete(["d0"])
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("gen-")) == [index.generation.name]



def test_a_snapshot_dropped_at_interpreter_exit_releases_its_pin(tmp_path, monkeypatch):
    """At exit, module globals may be None before a snapshot's __del__ runs: it must still close its pin, quietly."""
    import colja.index.snapshot as snapshot_module
    import colja.index.store as store_module

    Index.from_embeddings(clustered_docs(40, seed=3), tmp_path / "index", show_progress=False)
    index = Index.load(tmp_path / "index")
    with index._pinned() as snapshot:
        fd = snapshot._reader_lock
    assert fd is not None
    os.fstat(fd)  # open
    monkeypatch.setattr(snapshot_module, "unpin_generation", None)  # as interpreter shutdown leaves globals
    monkeypatch.setattr(store_module, "unpin_generation", None)
    monkeypatch.setattr(snapshot_module, "os", None)
    snapshot.__del__()
    assert snapshot._reader_lock is None
    try:
        os.fstat(fd)
        closed = False
    except OSError:
        closed = True
    assert closed
