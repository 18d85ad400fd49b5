"""The shipped models/colja-small-ja: small, float16, Stanford layout, and it ranks the toy set."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tests.train.toy import recall_at_1

MODEL = REPO / "models" / "colja-small-ja"

pytestmark = pytest.mark.skipif(not (MODEL / "model.safetensors").is_file(), reason="models/colja-small-ja is not built")


def test_files_and_size():
    from safetensors import safe_open

    assert (MODEL / "model.safetensors").stat().st_size <= 30 * 1024 * 1024
    with safe_open(str(MODEL / "model.safetensors"), framework="pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"F16"}
    assert json.loads((MODEL / "config.json").read_text())["architectures"] == ["HF_ColBERT"]
    assert "answerdotai/JaColBERTv2.5" in (MODEL / "README.md").read_text(encoding="utf-8")


def test_loads_offline_and_ranks_the_toy_set():
    from colja import ColBERT

    model = ColBERT.from_pretrained(MODEL, device="cpu")
    assert model.dim == 128 and next(model.parameters()).dtype.is_floating_point
    assert recall_at_1(model) >= 0.9  # 12 hand-written question/passage pairs
