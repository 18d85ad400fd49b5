"""The C++ kernels agree with their PyTorch references (the specification).

One template per op: every case of ``sample_inputs`` is run through
``op(..., impl="cpp")`` and ``op_ref(...)``; scores agree within 1e-5 relative
(plus a tiny absolute slack), integer outputs (pids) exactly.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

import colja.kernels as K
from tests.kernels.kernel_samples import Case, big_lq_case, make_case, sample_inputs

CASES = sample_inputs("cpu")
IDS = [c.name for c in CASES]
RTOL, ATOL = 1e-5, 1e-5


def assert_scores(actual: torch.Tensor, expected: torch.Tensor, what: str, atol: float = ATOL) -> None:
    assert actual.dtype == expected.dtype == torch.float32, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    if actual.numel():
        diff = (actual.double() - expected.double()).abs()
        print(f"{what}: max abs diff {diff.max().item():.3g}, mean {diff.mean().item():.3g}")
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=atol)


# --------------------------------------------------------------------------- bits
@pytest.mark.parametrize("nbits,dim", [(1, 8), (1, 24), (2, 64), (2, 128), (4, 2), (4, 128)])
def test_pack_unpack_roundtrip_matches_numpy_packbits(nbits, dim):
    g = torch.Generator().manual_seed(dim + nbits)
    buckets = torch.randint(0, 1 << nbits, (17, dim), generator=g, dtype=torch.uint8)
    packed = K.pack_residual_buckets(buckets, nbits)
    assert packed.dtype == torch.uint8 and packed.shape == (17, dim * nbits // 8)
    bits = ((buckets.numpy()[..., None] >> np.arange(nbits)) & 1).reshape(17, -1).astype(np.uint8)
    np.testing.assert_array_equal(packed.numpy(), np.packbits(bits, axis=1))
    assert torch.equal(K.unpack_residual_buckets(packed, nbits, dim), buckets)
    assert K.pack_residual_buckets(buckets[:0], nbits).shape == (0, dim * nbits // 8)


def test_pack_layout_example_nbits2():
    # byte0 = b0.bit0<<7 | b0.bit1<<6 | b1.bit0<<5 | b1.bit1<<4 | b2.bit0<<3 | b2.bit1<<2 | b3.bit0<<1 | b3.bit1
    b = torch.tensor([[1, 2, 3, 0]], dtype=torch.uint8)
    assert K.pack_residual_buckets(b, 2).tolist() == [[0b10011100]]
    assert K.pack_residual_buckets(torch.tensor([[1, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.uint8), 1).tolist() == [[0x81]]
    assert K.pack_residual_buckets(torch.tensor([[1, 8]], dtype=torch.uint8), 4).tolist() == [[0b10000001]]


def test_pack_rejects_bad_inputs():
    with pytest.raises(ValueError, match="buckets must be < 2\\*\\*nbits"):
        K.pack_residual_buckets(torch.full((1, 8), 2, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="multiple of 8"):
        K.pack_residual_buckets(torch.zeros(1, 6, dtype=torch.uint8), 1)
    with pytest.raises(TypeError, match="buckets must have dtype torch.uint8"):
        K.pack_residual_buckets(torch.zeros(1, 8, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="nbits must be 1, 2 or 4"):
        K.unpack_residual_buckets(torch.zeros(1, 8, dtype=torch.uint8), 3, 8)


# --------------------------------------------------------------------------- decompress / norms
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decompress_residuals(cpp_module, case: Case):
    args = (case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    out = K.decompress_residuals(*args, impl="cpp")
    ref = K.decompress_residuals_ref(*args)
    assert out.shape == (case.codes.shape[0], case.centroids.shape[1])
    assert_scores(out, ref, "decompress", atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_norms(cpp_module, case: Case):
    args = (case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    assert_scores(K.vector_norms(*args, impl="cpp"), K.vector_norms_ref(*args), "norms", atol=1e-6)


# --------------------------------------------------------------------------- centroid interaction
@pytest.mark.parametrize("use_keep", [True, False], ids=["keep", "nokeep"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_centroid_interaction(cpp_module, case: Case, use_keep: bool):
    keep = case.keep if use_keep else None
    args = (case.cst, case.codes, case.doc_offsets, case.pids, keep)
    out = K.centroid_interaction(*args, impl="cpp")
    ref = K.centroid_interaction_ref(*args)
    assert out.shape == (case.pids.shape[0],)
    assert_scores(out, ref, "centroid_interaction")


def test_centroid_interaction_missing_score():
    case = make_case("all-pruned", dim=64, nbits=2, Lq=7, doclens=[0, 3, 2])
    keep = torch.zeros_like(case.keep)
    for impl in ("torch", "cpp"):
        out = K.centroid_interaction(case.cst, case.codes, case.doc_offsets, torch.arange(3), keep, impl=impl)
        assert out.tolist() == [7 * -9999.0] * 3


# --------------------------------------------------------------------------- filter_candidates
@pytest.mark.parametrize("quantized", [True, False], ids=["exact-ties", "float"])
@pytest.mark.parametrize("ndocs,nfinal", [(0, 5), (5, 0), (4, 2), (10, 10), (1000, 3), (7, 100)])
def test_filter_candidates(cpp_module, quantized, ndocs, nfinal):
    doclens = [0, 1, 3, 0, 7, 1, 13, 2, 0, 31, 5, 1, 65, 9] * 3
    for Lq in (1, 7, 32, 33):
        case = make_case(f"fc-{Lq}", dim=64, nbits=2, Lq=Lq, doclens=doclens, C=23, quantized=quantized, seed=Lq)
        for keep in (case.keep, None, torch.zeros_like(case.keep)):
            args = (case.cst, case.codes, case.doc_offsets, case.pids, keep, ndocs, nfinal)
            pids, scores = K.filter_candidates(*args, impl="cpp")
            rpids, rscores = K.filter_candidates_ref(*args)
            assert pids.dtype == torch.int64 and scores.dtype == torch.float32
            assert len(pids) == min(nfinal, ndocs, len(case.pids))
            assert torch.equal(pids, rpids), (Lq, pids.tolist(), rpids.tolist())
            assert_scores(scores, rscores, "filter_candidates")


def test_filter_candidates_ties_smaller_pid_first(cpp_module):
    # passages 0..5 hold the same codes -> identical scores; order must be by pid
    offsets = torch.arange(0, 13, 2, dtype=torch.int64)
    codes = torch.tensor([1, 2] * 6, dtype=torch.int32)
    cst = torch.tensor([[0.0], [0.5], [0.25]])
    pids = torch.tensor([5, 3, 1, 0, 4, 2])
    for impl in ("torch", "cpp"):
        p, s = K.filter_candidates(cst, codes, offsets, pids, None, 4, 3, impl=impl)
        assert p.tolist() == [0, 1, 2] and s.tolist() == [0.5, 0.5, 0.5]


def test_filter_candidates_empty(cpp_module):
    case = make_case("fc-empty", dim=64, nbits=2, Lq=7, doclens=[2, 3], m=0)
    p, s = K.filter_candidates(case.cst, case.codes, case.doc_offsets, case.pids, case.keep, 10, 5, impl="cpp")
    assert p.shape == (0,) and s.shape == (0,) and p.dtype == torch.int64


# --------------------------------------------------------------------------- maxsim_packed
def _packed_args(case: Case):
    norms = K.vector_norms_ref(case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    return (case.Q, case.cst, case.codes, case.residuals, norms, case.bucket_weights, case.nbits,
            case.doc_offsets, case.pids)


@pytest.mark.parametrize("path", ["lut", "decompress"])
@pytest.mark.parametrize("case", CASES + [big_lq_case()], ids=IDS + ["d128-nb2-Lq512"])
def test_maxsim_packed(cpp_module, case: Case, path: str):
    args = _packed_args(case)
    lut = K.LUT_MAX_BYTES if path == "lut" else 0
    out = K.maxsim_packed(*args, impl="cpp", lut_max_bytes=lut)
    ref = K.maxsim_packed_ref(*args)
    assert_scores(out, ref, f"maxsim_packed[{path}]")
    lens = case.doc_offsets[case.pids + 1] - case.doc_offsets[case.pids]
    assert (out[lens == 0] == 0).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_maxsim_packed_equals_dense_on_decompressed(cpp_module, case: Case):
    """Scoring from the packed codes == MaxSim against the decompressed vectors."""
    codec = (case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    norms = K.vector_norms(*codec, impl="cpp")
    D = K.decompress_residuals(*codec, impl="cpp")
    cst = (case.Q @ case.centroids.float().T).T
    packed = K.maxsim_packed(case.Q, cst, case.codes, case.residuals, norms, case.bucket_weights, case.nbits,
                             case.doc_offsets, case.pids, impl="cpp")
    dense = K.maxsim_dense(case.Q, D, case.doc_offsets, case.pids, impl="cpp")
    assert_scores(packed, dense, "packed vs dense(decompressed)")
    fused = K.maxsim_decompress(case.Q, *codec[:4], case.nbits, case.doc_offsets, case.pids, impl="cpp")
    assert_scores(fused, dense, "decompress+dot vs dense(decompressed)")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_maxsim_decompress(cpp_module, case: Case):
    args = (case.Q, case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits,
            case.doc_offsets, case.pids)
    assert_scores(K.maxsim_decompress(*args, impl="cpp"), K.maxsim_decompress_ref(*args), "maxsim_decompress")


# --------------------------------------------------------------------------- maxsim_dense
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_maxsim_dense(cpp_module, case: Case, half: bool):
    D = K.decompress_residuals_ref(case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    if half:
        D = D.half()
    out = K.maxsim_dense(case.Q, D, case.doc_offsets, case.pids, impl="cpp")
    assert_scores(out, K.maxsim_dense_ref(case.Q, D, case.doc_offsets, case.pids), "maxsim_dense")
    everything = K.maxsim_dense(case.Q, D, case.doc_offsets, None, impl="cpp")
    assert everything.shape == (case.doc_offsets.shape[0] - 1,)
    assert_scores(everything, K.maxsim_dense_ref(case.Q, D, case.doc_offsets), "maxsim_dense all")


# --------------------------------------------------------------------------- auto / torch dispatch
def test_auto_uses_cpp_and_torch_impl_agrees(cpp_module):
    case = CASES[8]
    assert K.backend() == "cpp"
    a = K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids, case.keep)
    b = K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids, case.keep, impl="torch")
    assert_scores(a, b, "auto vs torch")


def test_threads_give_same_results(cpp_module):
    case = CASES[8]
    args = _packed_args(case)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = K.maxsim_packed(*args, impl="cpp")
        torch.set_num_threads(2)
        two = K.maxsim_packed(*args, impl="cpp")
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(one, two)


def test_concurrent_calls_from_python_threads(cpp_module):
    """The kernels release the GIL; concurrent searches must give the same numbers."""
    case = CASES[8]
    args = _packed_args(case)
    expected = K.maxsim_packed(*args, impl="cpp")
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(K.maxsim_packed(*args, impl="cpp"))
                K.filter_candidates(case.cst, case.codes, case.doc_offsets, case.pids, case.keep, 8, 4, impl="cpp")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 60 and all(torch.equal(r, expected) for r in results)


# --------------------------------------------------------------------------- validation
def test_validation_messages_name_the_argument(cpp_module):
    case = CASES[8]
    with pytest.raises(TypeError, match=r"codes must have dtype int32 .*found int64"):
        K.decompress_residuals(case.codes.long(), case.residuals, case.centroids, case.bucket_weights, 2)
    with pytest.raises(ValueError, match=r"residuals must have P = dim\*nbits/8"):
        K.decompress_residuals(case.codes, case.residuals, case.centroids, case.bucket_weights, 4)
    with pytest.raises(ValueError, match=r"keep must have C"):
        K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids, case.keep[:-1])
    with pytest.raises(ValueError, match=r"centroid_scores_t must have Lq"):
        K.maxsim_packed(case.Q[:3], *_packed_args(case)[1:])
    with pytest.raises(TypeError, match=r"pids must be a torch.Tensor"):
        K.maxsim_dense(case.Q, case.Q, case.doc_offsets, [0, 1])
    with pytest.raises(ValueError, match=r"impl must be"):
        K.maxsim_dense(case.Q, case.Q, case.doc_offsets, impl="fast")
    with pytest.raises(ValueError, match=r"impl='cuda' needs CUDA tensors"):
        K.maxsim_dense(case.Q, case.Q, case.doc_offsets, impl="cuda")
    with pytest.raises(ValueError, match=r"ndocs must be >= 0"):
        K.filter_candidates(case.cst, case.codes, case.doc_offsets, case.pids, None, -1, 3)


@pytest.mark.parametrize("impl", ["torch", "cpp"])
def test_out_of_range_indices_raise_instead_of_crashing(cpp_module, impl):
    case = CASES[8]
    bad_pids = case.pids.clone()
    bad_pids[0] = len(case.doc_offsets) + 5
    with pytest.raises(IndexError):
        K.centroid_interaction(case.cst, case.codes, case.doc_offsets, bad_pids, None, impl=impl)
    bad_codes = case.codes.clone()
    bad_codes[-1] = case.cst.shape[0] + 100
    with pytest.raises(IndexError):
        K.decompress_residuals(bad_codes, case.residuals, case.centroids, case.bucket_weights, 2, impl=impl)
    args = list(_packed_args(case))
    args[2] = bad_codes
    args[-1] = torch.arange(len(case.doc_offsets) - 1)
    with pytest.raises(IndexError):
        K.maxsim_packed(*args, impl=impl)
    if impl == "cpp":
        bad_offsets = case.doc_offsets.clone()
        bad_offsets[-1] = case.codes.shape[0] + 1000
        with pytest.raises(ValueError, match="doc_offsets"):
            K.maxsim_dense(case.Q, K.decompress_residuals_ref(case.codes, case.residuals, case.centroids,
                                                             case.bucket_weights, 2), bad_offsets, impl=impl)


# --------------------------------------------------------------------------- candidate_pids
def _ivf(C: int, n_docs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random IVF: each cell lists a sorted unique sample of pids (some cells empty)."""
    g = torch.Generator().manual_seed(seed)
    lists = [torch.randperm(n_docs, generator=g)[: int(torch.randint(0, 6, (1,), generator=g))].sort().values
             for _ in range(C)]
    lengths = torch.tensor([len(x) for x in lists], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    return torch.cat(lists).to(torch.int32), offsets


@pytest.mark.parametrize("quantized", [True, False], ids=["ties", "float"])
@pytest.mark.parametrize("C,Lq,ncells,n_docs", [(1, 1, 1, 3), (23, 7, 1, 40), (23, 32, 2, 40), (64, 33, 4, 1000),
                                                  (300, 32, 8, 50), (5, 3, 9, 20), (16, 4, 0, 10), (40, 17, 12, 30)])
def test_candidate_pids(cpp_module, quantized, C, Lq, ncells, n_docs):
    g = torch.Generator().manual_seed(C * 131 + Lq)
    cst = torch.randn(C, Lq, generator=g)
    if quantized:  # many exact ties: the smaller cell must win in both implementations
        cst = (cst * 2).round() / 2
    ivf, offsets = _ivf(C, n_docs, seed=C + Lq)
    got = K.candidate_pids(cst, ncells, ivf, offsets, n_docs, impl="cpp")
    want = K.candidate_pids_ref(cst, ncells, ivf, offsets, n_docs)
    assert got.dtype == torch.int64 and torch.equal(got, want), (got.tolist(), want.tolist())
    assert got.tolist() == sorted(set(got.tolist()))
    # the specification itself: the union of the lists of each column's best cells
    cells = set()
    for k in range(Lq):
        order = sorted(range(C), key=lambda c: (-float(cst[c, k]), c))
        cells |= set(order[:ncells])
    expected = sorted({int(p) for c in cells for p in ivf[offsets[c]:offsets[c + 1]]})
    assert got.tolist() == expected


def test_candidate_pids_rejects_bad_ivf(cpp_module):
    cst = torch.randn(4, 2)
    ivf, offsets = torch.tensor([0, 1, 2, 9], dtype=torch.int32), torch.tensor([0, 1, 2, 3, 4])
    for impl in ("cpp", "torch"):
        with pytest.raises(IndexError, match=r"\] = 9 is out of range"):
            K.candidate_pids(cst, 4, ivf, offsets, 5, impl=impl)
    with pytest.raises(ValueError, match="ivf_offsets"):
        K.candidate_pids(cst, 1, ivf, offsets[:-1], 5, impl="cpp")


# --------------------------------------------------------------------------- maxsim_packed_topk / bounds
def _topk_cases() -> list[Case]:
    """Enough passages that the approximate pass runs (m > max(2k, 64)); every nbits, Lq 1..64, doclen 0."""
    out = []
    for i, (dim, nbits, Lq) in enumerate([(128, 2, 32), (128, 2, 7), (128, 2, 33), (64, 2, 64), (128, 1, 32),
                                          (128, 4, 32), (24, 1, 5), (128, 2, 1)]):
        doclens = _doclens_mixed(300, seed=40 + i)
        out.append(make_case(f"topk-d{dim}-nb{nbits}-Lq{Lq}", dim=dim, nbits=nbits, Lq=Lq, doclens=doclens, C=211,
                             seed=40 + i))
    return out


def _doclens_mixed(n: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, 160, (n,), generator=g)
    lens[::37] = 0
    return lens.tolist()


TOPK_CASES = _topk_cases()


@pytest.mark.parametrize("case", TOPK_CASES + CASES, ids=[c.name for c in TOPK_CASES] + IDS)
@pytest.mark.parametrize("k", [1, 10, 57, 1000])
def test_maxsim_packed_topk_is_the_top_k_of_exact_scores(cpp_module, case: Case, k: int):
    args = _packed_args(case)
    want_scores, want_pids = K.top_k(K.maxsim_packed(*args, impl="cpp"), case.pids, k)
    scores, pids, n_exact = K.maxsim_packed_topk(*args, k, impl="cpp", return_exact_count=True)
    assert torch.equal(pids, want_pids), (pids.tolist()[:10], want_pids.tolist()[:10])
    assert torch.equal(scores, want_scores)
    ref_scores, ref_pids = K.maxsim_packed_topk_ref(*args, k)
    assert torch.equal(pids, ref_pids) or torch.allclose(scores, ref_scores, rtol=RTOL, atol=ATOL)
    assert_scores(scores, ref_scores, "maxsim_packed_topk")
    assert len(pids) == min(k, len(case.pids)) and 0 <= n_exact <= len(case.pids)


@pytest.mark.parametrize("case", TOPK_CASES, ids=[c.name for c in TOPK_CASES])
def test_approximate_scores_stay_within_their_bound(cpp_module, case: Case):
    args = _packed_args(case)
    got = K.maxsim_packed_bounds(*args)
    assert got is not None
    approx, bound = got
    exact = K.maxsim_packed_ref(*args).double()
    err = (approx.double() - exact).abs()
    assert bool((err <= bound.double()).all()), float((err - bound.double()).max())


@pytest.mark.parametrize("nbits,most", [(1, 100), (2, 40), (4, 200)])
def test_the_bound_spares_most_passages_from_exact_scoring(cpp_module, nbits, most):
    """With a few relevant passages (tokens on the centroids the query vectors prefer), the bound
    separates them from the rest: only a share is scored exactly, and the top k is still exact."""
    case = make_case(f"planted-nb{nbits}", dim=128, nbits=nbits, Lq=32, doclens=[60] * 400, C=256, seed=nbits)
    best = case.cst.argmax(dim=0).to(torch.int32)  # each query vector's favourite centroid
    codes = case.codes.clone().view(400, 60)
    relevant = torch.randperm(400, generator=torch.Generator().manual_seed(1))[:15]
    codes[relevant, :32] = best
    case = replace(case, codes=codes.reshape(-1).contiguous())
    args = _packed_args(case)
    scores, pids, n_exact = K.maxsim_packed_topk(*args, 10, impl="cpp", return_exact_count=True)
    want = K.top_k(K.maxsim_packed_ref(*args), case.pids, 10)
    assert torch.equal(pids, want[1])
    assert n_exact <= most, n_exact  # of 400 (4 bits: one dim per nibble, 128 rounded entries per token)


def test_maxsim_packed_topk_ties_go_to_the_smaller_pid(cpp_module):
    # 200 identical passages: every score ties, the k smallest pids win
    case = make_case("ties", dim=128, nbits=2, Lq=32, doclens=[20] * 200, C=5, seed=3)
    codes = case.codes.view(200, 20)[:1].repeat(200, 1).reshape(-1).contiguous()
    residuals = case.residuals.view(200, 20, -1)[:1].repeat(200, 1, 1).reshape(-1, case.residuals.shape[1]).contiguous()
    norms = K.vector_norms_ref(codes, residuals, case.centroids, case.bucket_weights, 2)
    pids = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    args = (case.Q, case.cst, codes, residuals, norms, case.bucket_weights, 2, case.doc_offsets, pids)
    for impl in ("cpp", "torch"):
        scores, top = K.maxsim_packed_topk(*args, 7, impl=impl)
        assert top.tolist() == list(range(7)) and len(set(scores.tolist())) == 1


def test_maxsim_packed_topk_rejects_bad_input(cpp_module):
    case = TOPK_CASES[0]
    args = list(_packed_args(case))
    with pytest.raises(ValueError, match="k"):
        K.maxsim_packed_topk(*args, -1, impl="cpp")
    bad = args.copy()
    bad[2] = case.codes.clone()
    bad[2][5] = 10_000
    with pytest.raises(IndexError, match=r"codes\[5\] = 10000"):
        K.maxsim_packed_topk(*bad, 10, impl="cpp")


def test_approx_path_is_reported(cpp_module):
    assert cpp_module.approx_path(2) in ("vnni", "int8-nibble")
    assert cpp_module.approx_path(4) == "int8-nibble"


# --------------------------------------------------------------------------- prune_candidates
def _index_ivf(codes: torch.Tensor, doc_offsets: torch.Tensor, C: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The IVF an index stores: per centroid, the sorted unique passages with a token coded to it."""
    n_docs = len(doc_offsets) - 1
    pid_of = torch.repeat_interleave(torch.arange(n_docs), doc_offsets[1:] - doc_offsets[:-1])
    pairs = torch.unique(codes.long() * max(n_docs, 1) + pid_of)
    cells, pids = pairs // max(n_docs, 1), pairs % max(n_docs, 1)
    offsets = torch.zeros(C + 1, dtype=torch.int64)
    offsets[1:] = torch.bincount(cells, minlength=C).cumsum(0)
    return pids.to(torch.int32), offsets


@pytest.mark.parametrize("quantized", [True, False], ids=["exact-ties", "float"])
@pytest.mark.parametrize("threshold", [-2.0, 0.0, 0.3, 5.0])
@pytest.mark.parametrize("ndocs", [1, 10, 1000])
def test_prune_candidates(cpp_module, quantized, threshold, ndocs):
    doclens = [0, 1, 3, 0, 7, 1, 13, 2, 0, 31, 5, 1, 65, 9] * 3
    for Lq in (1, 7, 32, 33):
        case = make_case(f"pc-{Lq}", dim=64, nbits=2, Lq=Lq, doclens=doclens, C=23, quantized=quantized, seed=Lq)
        ivf, ivf_offsets = _index_ivf(case.codes, case.doc_offsets, 23)
        cands = torch.sort(case.pids[: len(case.pids) * 2 // 3]).values
        got = K.prune_candidates(case.cst, ivf, ivf_offsets, cands, len(doclens), threshold, ndocs, impl="cpp")
        ref = K.prune_candidates_ref(case.cst, ivf, ivf_offsets, cands, len(doclens), threshold, ndocs)
        assert torch.equal(got, ref), (Lq, got.tolist(), ref.tolist())
        # = PLAID stage 2 on the tokens (filter_candidates keeps the same set when nfinal = ndocs)
        keep = case.cst.max(dim=1).values >= threshold
        stage2 = K.filter_candidates_ref(case.cst, case.codes, case.doc_offsets, cands, keep, ndocs, ndocs)[0]
        assert torch.equal(got, torch.sort(stage2).values)


def test_prune_candidates_rejects_unsorted_or_out_of_range_pids(cpp_module):
    case = make_case("pc-bad", dim=64, nbits=2, Lq=7, doclens=[3, 4, 5, 6], C=11)
    ivf, ivf_offsets = _index_ivf(case.codes, case.doc_offsets, 11)
    with pytest.raises(ValueError, match="sorted and unique"):
        K.prune_candidates(case.cst, ivf, ivf_offsets, torch.tensor([2, 1]), 4, 0.0, 3)
    with pytest.raises(IndexError, match="n_docs"):
        K.prune_candidates(case.cst, ivf, ivf_offsets, torch.tensor([1, 4]), 4, 0.0, 3)
    bad = ivf.clone()
    bad[0] = 99
    with pytest.raises(IndexError, match="99"):
        K.prune_candidates(case.cst, bad, ivf_offsets, torch.tensor([0, 1, 2, 3]), 4, -5.0, 3, impl="cpp")
