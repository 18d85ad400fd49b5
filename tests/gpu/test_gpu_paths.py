"""The GPU path end to end: build and search on CUDA equal the CPU path.

Needs a CUDA device (run by ``scripts/gpu_check.sh`` on a lent GPU machine); the
same comparisons run on the CPU in tests/searchable/test_device.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from colja import Index, kernels
from tests.device_checks import (
    QUERIES,
    assert_same_answers,
    assert_same_files,
    generated_collection,
    generated_queries,
)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    docs = generated_collection(2000)
    cpu = Index.from_embeddings(docs, root / "cpu", device="cpu")
    gpu = Index.from_embeddings(docs, root / "gpu", device="cuda")
    return cpu, gpu


def test_gpu_build_writes_the_cpu_files(pair):
    cpu, gpu = pair
    # argmax over centroids on a GPU may break a near-tie differently: allow a handful of vectors
    assert_same_files(cpu, gpu, min_code_agreement=0.999)


def test_gpu_search_equals_cpu_search(pair):
    cpu, _ = pair
    on_gpu = Index.load(cpu.path, device="cuda")
    assert on_gpu.device.type == "cuda"
    Q = generated_queries(32)
    assert_same_answers(cpu, on_gpu, Q)
    assert_same_answers(cpu, on_gpu, Q, k=100)
    assert_same_answers(cpu, on_gpu, Q, exhaustive=True)


def test_mixed_use_build_on_gpu_serve_on_cpu(pair):
    cpu, gpu = pair
    served = Index.load(gpu.path, device="cpu")
    Q = generated_queries(16)
    a, b = cpu.search_embeddings(Q, 10), served.search_embeddings(Q, 10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.pids, b.pids)])
    assert overlap >= 0.99


def test_cuda_kernels_are_built_and_used():
    assert kernels.backend("cuda") == "cuda", kernels.backend_info("cuda")


def test_text_build_and_search_on_gpu(tmp_path, _fixture_model, fixture_model):
    import json

    from tests.conftest import DATA

    pytest.importorskip("unidic_lite", reason="MeCab's dictionary (unidic-lite) is not installed on this GPU machine")
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:200]
    texts = [r["text"] for r in rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = Index.build(texts, tmp_path / "cpu", model=_fixture_model, device="cpu")
        gpu = Index.build(texts, tmp_path / "gpu", model=fixture_model, device="cuda")  # a private copy moves
    assert fixture_model.device.type == "cuda"
    for q in QUERIES:
        a = [h.doc_id for h in cpu.search(q, k=10)]
        b = [h.doc_id for h in Index.load(gpu.path, model=fixture_model, device="cuda").search(q, k=10)]
        assert len(set(a) & set(b)) >= 9, (q, a, b)
