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
    flags("avx2", "avx512f")
    expected = "int8" if {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines) else "fp32"
    assert prec.resolve_precision("auto", cpu) == expected
    flags("avx2", "avx512f", "avx512_vnni", "avx512_bf16")  # Zen 4: bf16 without AMX is slower than int8
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


@pytest.mark.parametrize("cap", [("ONEDNN_MAX_CPU_ISA", "AVX2"), ("DNNL_MAX_CPU_ISA", "avx512_core_vnni"),
                                 ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16"), ("ATEN_CPU_CAPABILITY", "avx2")])
def test_auto_respects_isa_caps(flags, monkeypatch, cap):
    """Capped below AMX (how a build is tried for other machines), bf16 would be slow: auto takes int8."""
    flags("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(name, raising=False)
    assert prec.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setenv(*cap)
    expected = "int8" if {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines) else "fp32"
    assert prec.resolve_precision("auto", torch.device("cpu")) == expected
    monkeypatch.setenv(cap[0], "AVX512_CORE_AMX")
    assert prec.resolve_precision("auto", torch.device("cpu")) == "bf16"


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


def test_int8_engine_follows_the_cpu(flags, monkeypatch):
    engines = torch.backends.quantized.supported_engines
    plain = next(e for e in ("x86", "fbgemm", "onednn", engines[0]) if e in engines)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    flags("avx2", "avx512f", "avx512_vnni")
    assert prec.int8_engine() == plain
    flags("avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_tile")
    assert prec.int8_engine() == ("onednn" if "onednn" in engines else plain)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert prec.int8_engine() == plain
    fast = ColBERT.from_pretrained(FIXTURE_MODEL, device="cpu", precision="int8")
    assert fast.precision == "int8" and torch.backends.quantized.engine == prec.int8_engine()


def test_inplace_gelu_gives_the_same_vectors():
    """The fast paths' in-place feed-forward GELU changes no value, and keeps gradients when they are recorded."""
    model = ColBERT.from_pretrained(SMALL_MODEL, device="cpu", precision="fp32")
    texts = ["ｶﾀｶﾅと全角ＡＢＣと😀", "東京駅から新大阪駅までの新幹線の所要時間を教えてください。" * 5, ""]
    before = model.encode_documents(texts)
    layers = len(model.bert.encoder.layer)
    assert prec.inplace_activations(model.bert) == layers
    assert prec.inplace_activations(model.bert) == 0  # already swapped
    after = model.encode_documents(texts)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    x = torch.randn(4, 8, requires_grad=True)
    y = prec.InplaceGELU()(x)
    y.sum().backward()
    assert torch.equal(y, torch.nn.functional.gelu(x)) and x.grad is not None
    with torch.inference_mode():
        z = torch.randn(4, 8)
        expected = torch.nn.functional.gelu(z)
        assert prec.InplaceGELU()(z) is z and torch.equal(z, expected)


def test_allocator_tuning(monkeypatch):
    import platform

    from colja import _allocator

    _allocator.tune_cpu_allocator.cache_clear()
    monkeypatch.setenv(_allocator.ENV, "0")
    assert _allocator.tune_cpu_allocator() is False
    _allocator.tune_cpu_allocator.cache_clear()
    monkeypatch.delenv(_allocator.ENV)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert _allocator.tune_cpu_allocator() is glibc
