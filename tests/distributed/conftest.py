"""The distributed tests: a small Japanese collection (the Ray cluster, ``ray_cluster``, is in
tests/conftest.py, shared with the searchable contract suite)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, FIXTURE_MODEL

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "colja[ray]"')

N = 150


@pytest.fixture(scope="session")
def corpus():
    """Japanese passages (JSQuAD contexts) plus the awkward ones: empty, emoji, full/half width, long unspaced."""
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")]
    texts = [r["text"] for r in rows[: N - 4]]
    texts += ["", "🍣🍺 寿司とビール 😀", "ＡＢＣ ａｂｃ ｶﾀｶﾅ ABC abc カタカナ", "東京" * 200]
    ids = [f"文書-{i}" for i in range(N)]
    meta = [{"source": "ウィキ" if i % 3 else "ブログ", "n": i} for i in range(N)]
    return texts, ids, meta


@pytest.fixture(scope="session")
def model_path():
    return str(FIXTURE_MODEL)
