"""bm25s is optional: without it, BM25 raises an ImportError that names the pip extra."""

from __future__ import annotations

import sys

import pytest

from colja.errors import MissingDependencyError
from colja.firststage import BM25Retriever

MESSAGE = 'BM25 needs the optional dependency bm25s: pip install "colja[bm25]"'


def test_missing_bm25s_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bm25s", None)  # makes `import bm25s` raise ImportError
    with pytest.raises(MissingDependencyError) as info:
        BM25Retriever.build(["東京"])
    assert str(info.value) == MESSAGE
    assert isinstance(info.value, ImportError)
    (tmp_path / "colja_bm25.json").write_text('{"format": "colja-bm25", "format_version": 1}')
    for name in ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
                 "params.index.json", "vocab.index.json"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(MissingDependencyError, match="colja\\[bm25\\]"):
        BM25Retriever.load(tmp_path)


def test_importing_colja_firststage_does_not_import_bm25s(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm25s", None)
    import importlib

    import colja.firststage.bm25 as mod

    importlib.reload(mod)  # module import alone must not need bm25s
    assert mod.passage_text("t", "x") == "t\nx"
