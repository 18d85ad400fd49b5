"""A small real index (vectors, Japanese texts, metadata, a BM25 first stage) to forge copies of."""

from __future__ import annotations

import numpy as np
import pytest

from tests.index.index_helpers import clustered_docs

DOCS = 48
DIM = 32
TEXTS = [f"第{i}段落：東京都の人口は約{1400 + i}万人です。ＡＢＣ😀" for i in range(DOCS)]


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("COLJA_INDEX_ROOT", str(tmp_path / "default-root"))
    monkeypatch.setenv("COLJA_DISABLE_PROGRESS", "1")
    monkeypatch.delenv("COLJA_FAULT_AT", raising=False)


@pytest.fixture(scope="session")
def docs() -> list[np.ndarray]:
    return clustered_docs(n_docs=DOCS, dim=DIM, n_clusters=8, seed=3, min_len=3, max_len=9)


@pytest.fixture(scope="session")
def queries(docs) -> np.ndarray:
    return np.stack([d[:4] if len(d) >= 4 else np.pad(d, ((0, 4 - len(d)), (0, 0))) for d in docs[:6]])


@pytest.fixture(scope="session")
def sound_index(tmp_path_factory, docs):
    """The untouched index (read-only for tests), with a BM25 first stage when bm25s is installed."""
    from colja import Index

    path = tmp_path_factory.mktemp("sound") / "idx"
    index = Index.from_embeddings(docs, path, texts=TEXTS, doc_ids=[f"doc-{i}" for i in range(DOCS)],
                                  metadata=[{"n": i, "kind": "偶数" if i % 2 == 0 else "奇数"} for i in range(DOCS)])
    try:
        import bm25s  # noqa: F401

        index.add_first_stage("bm25")
    except ImportError:
        pass
    index.close()
    return path
