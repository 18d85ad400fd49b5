"""Encoder precision on the CPU: auto picks bf16 / int8 / fp32 by the CPU's features; each keeps the vectors."""

from __future__ import annotations

import json

import pytest
import torch

from colja import ColBERT, Index
from colja.model import precision as prec
from tests.conftest import DATA, FIXTURE_MODEL, REPO

SMALL_MODEL = REPO / "models" / "colja-small-ja"
pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture()
def flags(monkeypatch):
    def use(*names):
        monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset(names))
    monkeypatch.delenv(prec.PRECISION_ENV, raising=False)
    return use


def test_auto_follows_the_cpu(flags, monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    flags("avx2", "avx512f", "amx_bf16")
    assert prec.resolve_precision("auto", cpu) == "bf16"
    flags("avx2", "avx512_bf16")
    assert prec.resolve_precision("auto", cpu) == "bf16"
    flags("avx2", "avx512f")
    expected = "int8" if {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines) else "fp32"
    assert prec.resolve_precision("auto", cpu) == expected
    flags("sse4_2")
    assert prec.resolve_precision("auto", cpu) == "fp32"
    assert prec.resolve_precision("auto", gpu) == "fp32"
    assert prec.resolve_precision("bf16", cpu) == "bf16"  # forced, whatever the CPU
    monkeypatch.setenv(prec.PRECISION_ENV, "fp32")
    flags("amx_bf16")
    monkeypatch.setenv(prec.PRECISION_ENV, "FP32")
    assert prec.resolve_precision("auto", cpu) == "fp32"
    assert prec.resolve_precision("int8", cpu) == "int8"  # an explicit argument beats the environment


def test_bad_precisions_are_refused(flags, monkeypatch):
    with pytest.raises(ValueError, match="precision must be one of"):
        prec.resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="CPU only"):
        prec.resolve_precision("int8", torch.device("cuda"))
    monkeypatch.setenv(prec.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=r"from \$COLJA_PRECISION"):
        prec.resolve_precision("auto", torch.device("cpu"))
    with pytest.raises(ValueError, match="either dtype= .* or precision="):
        ColBERT.from_pretrained(FIXTURE_MODEL, device="cpu", dtype="bfloat16", precision="int8")


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_fast_precisions_keep_the_vectors(precision):
    texts = [json.loads(line)["text"] for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:24]
    texts += ["ｶﾀｶﾅと全角ＡＢＣと😀", "", "東京" * 200]
    ref = ColBERT.from_pretrained(SMALL_MODEL, device="cpu", precision="fp32")
    fast = ColBERT.from_pretrained(SMALL_MODEL, device="cpu", precision=precision)
    assert fast.precision == precision and ref.precision == "fp32"
    a, b = ref.encode_documents(texts), fast.encode_documents(texts)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype == torch.float32
        if len(x):
            assert torch.allclose(y.norm(dim=1), torch.ones(len(y)), atol=1e-5)  # normalised in fp32
            assert torch.nn.functional.cosine_similarity(x, y, dim=1).mean() > 0.995
    q = ["日本で一番高い山は？"]
    assert torch.nn.functional.cosine_similarity(ref.encode_queries(q)[0], fast.encode_queries(q)[0], dim=1).mean() > 0.995
    with pytest.raises(ValueError, match="precision='fp32' to save or train"):
        fast.save_pretrained("/nonexistent/never-written")


def _exact_top10(Q, docs):
    return [set(torch.stack([(q @ d.T).max(dim=1).values.sum() for d in docs]).topk(10).indices.tolist()) for q in Q]


def test_fast_encoders_rank_like_fp32(tmp_path):
    """Top-10 agreement of exact MaxSim with the fast encoder's vectors (queries and passages) vs fp32's."""
    rows = [json.loads(line) for line in (REPO / "examples" / "data" / "jaquad-sample" / "corpus.jsonl").open(encoding="utf-8")]
    queries = [json.loads(line)["text"] for line in
               (REPO / "examples" / "data" / "jaquad-sample" / "queries.jsonl").open(encoding="utf-8")][:100]
    texts = [r["title"] + "\n" + r["text"] for r in rows]
    ref = ColBERT.from_pretrained(SMALL_MODEL, device="cpu", precision="fp32")
    base = _exact_top10(ref.encode_queries(queries), ref.encode_documents(texts))
    for precision in ("bf16", "int8"):
        model = ColBERT.from_pretrained(SMALL_MODEL, device="cpu", precision=precision)
        got = _exact_top10(model.encode_queries(queries), model.encode_documents(texts))
        agreement = sum(len(a & b) for a, b in zip(got, base)) / (10 * len(base))
        assert agreement >= 0.99, (precision, agreement)
        index = Index.build(texts[:40], tmp_path / precision, model=model)
        assert index.manifest["model"]["precision"] == precision
