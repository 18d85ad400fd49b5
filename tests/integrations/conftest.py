"""Shared fixtures of the framework adapter tests: a small Japanese index with metadata and split documents."""

from __future__ import annotations

import json

import pytest

from colja import Index
from tests.conftest import DATA


@pytest.fixture(scope="package")
def rows():
    return [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:60]


@pytest.fixture(scope="package")
def index(_fixture_model, rows, tmp_path_factory):
    """60 passages with Japanese metadata (every third one from 「図書館」), built with the fixture model."""
    metadata = [{"title": r.get("title") or "無題", "source": "図書館" if i % 3 == 0 else "ウェブ", "n": i}
                for i, r in enumerate(rows)]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Index.build([r["text"] for r in rows], tmp_path_factory.mktemp("integrations") / "index",
                           model=_fixture_model, doc_ids=[r["_id"] for r in rows], metadata=metadata)


@pytest.fixture(scope="package")
def queries(rows):
    return [rows[i]["text"][:24] for i in (0, 7, 33)] + ["日本の首都はどこですか？", "ｶﾀｶﾅと😀の質問"]
