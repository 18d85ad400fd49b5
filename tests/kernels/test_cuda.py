"""CUDA kernels: agreement with the references on a GPU (skipped without one),
and a compile check of csrc/cuda with nvcc that needs no GPU.

The compile check skips where no CUDA toolkit is found, unless
``COLJA_REQUIRE_CUDA_BUILD`` is set (CI sets it to ``wheels``: the toolkit must
then come from the ``colja[cuda-build]`` wheels and the sources must compile).
"""

from __future__ import annotations

import os

import pytest
import torch

import colja.kernels as K
from colja.kernels import _build
from colja.kernels._toolkit import find_toolkit, install_hint
from tests.kernels.kernel_samples import Case, big_lq_case, sample_inputs

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


REQUIRED = os.environ.get("COLJA_REQUIRE_CUDA_BUILD", "").strip().lower()


def _nvcc_available() -> bool:
    if REQUIRED == "wheels":
        os.environ["COLJA_CUDA_TOOLKIT"] = "wheels"
    return bool(REQUIRED) or find_toolkit() is not None


@pytest.mark.skipif(not _nvcc_available(), reason="no CUDA toolkit (pip install 'colja[cuda-build]' brings nvcc)")
def test_cuda_sources_compile_with_nvcc():
    """csrc/cuda compiles against torch's headers (object files only; no GPU needed).
    ~20-50 s the first time, then cached per source hash and toolkit."""
    toolkit = find_toolkit()
    assert toolkit is not None, f"COLJA_REQUIRE_CUDA_BUILD={REQUIRED} but no CUDA toolkit was found: {install_hint()}"
    if REQUIRED == "wheels":
        assert toolkit.source == "wheels", toolkit
    ok, log = _build.cuda_compile_check()
    print(log)
    assert ok, log
    assert str(toolkit.home) in log


@pytest.mark.skipif(not _nvcc_available(), reason="no CUDA toolkit (pip install 'colja[cuda-build]' brings nvcc)")
def test_cuda_compile_check_reports_errors(tmp_path, monkeypatch):
    (tmp_path / "cuda").mkdir()
    (tmp_path / "cuda" / "broken.cu").write_text("__global__ void k() { this is not CUDA; }\n")
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(tmp_path))
    monkeypatch.setenv("COLJA_CACHE_DIR", str(tmp_path / "cache"))
    ok, log = _build.cuda_compile_check()
    assert not ok and "error" in log.lower()


CASES = sample_inputs("cuda") + [big_lq_case("cuda")] if torch.cuda.is_available() else []
IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def cuda_module():
    return _build.require_module("cuda")


def _close(a, b, what):
    if a.numel():
        print(f"{what}: max abs diff {(a - b).abs().max().item():.3g}")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cuda_ops_match_references(cuda_module, case: Case):
    codec = (case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    _close(K.decompress_residuals(*codec, impl="cuda"), K.decompress_residuals_ref(*codec), "decompress")
    norms = K.vector_norms(*codec, impl="cuda")
    _close(norms, K.vector_norms_ref(*codec), "norms")
    for keep in (case.keep, None):
        args = (case.cst, case.codes, case.doc_offsets, case.pids, keep)
        _close(K.centroid_interaction(*args, impl="cuda"), K.centroid_interaction_ref(*args), "ci")
        p, s = K.filter_candidates(*args, 8, 4, impl="cuda")
        rp, rs = K.filter_candidates_ref(*args, 8, 4)
        assert torch.equal(p, rp)
        _close(s, rs, "filter")
    packed = (case.Q, case.cst, case.codes, case.residuals, norms, case.bucket_weights, case.nbits,
              case.doc_offsets, case.pids)
    _close(K.maxsim_packed(*packed, impl="cuda"), K.maxsim_packed_ref(*packed), "maxsim_packed")
    dec = (case.Q, *codec[:4], case.nbits, case.doc_offsets, case.pids)
    _close(K.maxsim_decompress(*dec, impl="cuda"), K.maxsim_decompress_ref(*dec), "maxsim_decompress")


@needs_gpu
@pytest.mark.gpu
def test_cuda_auto_dispatch_and_errors(cuda_module):
    case = CASES[8]
    assert K.backend("cuda") == "cuda"
    out = K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids, case.keep)
    assert out.is_cuda
    bad = case.pids.clone()
    bad[0] = 10**6
    with pytest.raises(IndexError):
        K.centroid_interaction(case.cst, case.codes, case.doc_offsets, bad, None, impl="cuda")
    # the context survives the bad call
    torch.testing.assert_close(K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids,
                                                      case.keep, impl="cuda"), out)
