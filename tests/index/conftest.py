"""Fixtures for the index tests: default root in tmp, a small built index, a fake encoder."""

from __future__ import annotations

import numpy as np
import pytest
from .index_helpers import FakeModel, clustered_docs


@pytest.fixture(autouse=True)
def _index_env(monkeypatch, tmp_path):
    """Default index root inside the test's tmp folder; no progress bars."""
    monkeypatch.setenv("COLJA_INDEX_ROOT", str(tmp_path / "default-root"))
    monkeypatch.setenv("COLJA_DISABLE_PROGRESS", "1")
    monkeypatch.delenv("COLJA_FAULT_AT", raising=False)


@pytest.fixture(scope="session")
def docs_small() -> list[np.ndarray]:
    return clustered_docs(n_docs=120, seed=1)


@pytest.fixture(scope="session")
def built_small(tmp_path_factory, docs_small):
    """A small 2-bit index built once per session (read-only for tests)."""
    from colja import Index

    path = tmp_path_factory.mktemp("built") / "idx"
    texts = [f"passage {i}" for i in range(len(docs_small))]
    meta = [{"i": i, "even": i % 2 == 0} for i in range(len(docs_small))]
    index = Index.from_embeddings(docs_small, path, texts=texts, metadata=meta,
                                  doc_ids=[f"d{i}" for i in range(len(docs_small))])
    index.close()
    return path


@pytest.fixture()
def fake_model() -> FakeModel:
    return FakeModel()
