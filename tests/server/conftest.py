"""Fixtures of the server tests: a Japanese index on disk and a server running it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA
from tests.server.harness import running

N = 60
READ_KEY = "read-key-0123456789abcdef"
WRITE_KEY = "write-key-0123456789abcdef"


def corpus_rows():
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:N]
    texts = [r["text"] for r in rows]
    ids = [f"文書-{i}" for i in range(N)]
    meta = [{"source": "ウィキ" if i % 3 else "ブログ", "n": i} for i in range(N)]
    return texts, ids, meta


def build_index(model, path):
    import warnings

    from colja import Index, TruncationWarning

    texts, ids, meta = corpus_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        return Index.build(texts, path, model=model, doc_ids=ids, metadata=meta, nbits=4)


@pytest.fixture(scope="package")
def served(_fixture_model, tmp_path_factory):
    """A server with a read-only index ``ja`` and a scratch index ``scratch``, API keys on;
    yields ``(server, {name: path})``."""
    root = tmp_path_factory.mktemp("served")
    paths = {"ja": root / "ja", "scratch": root / "scratch"}
    for p in paths.values():
        build_index(_fixture_model, p)
    keys = root / "keys.txt"
    keys.write_text(f"# test keys\n{READ_KEY} read\n{WRITE_KEY}  write\n", encoding="utf-8")
    with running(paths, root, "--api-keys", str(keys)) as server:
        yield server, paths
