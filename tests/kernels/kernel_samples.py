"""Sample inputs shared by the kernel tests (CPU and CUDA).

``sample_inputs(device)`` returns named cases covering: empty candidate lists,
an empty index (N = 0), doclens 0 / 1 / odd, dims 24 / 64 / 128 with nbits
1 / 2 / 4, Lq 1 / 7 / 32 / 33 / 64, float16 centroids and non-contiguous inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from colja.kernels import pack_residual_buckets


@dataclass
class Case:
    name: str
    Q: torch.Tensor  # float32 [Lq, dim]
    centroids: torch.Tensor  # float16/32 [C, dim]
    cst: torch.Tensor  # float32 [C, Lq] (= (Q @ centroids.float().T).T)
    codes: torch.Tensor  # int32 [N]
    residuals: torch.Tensor  # uint8 [N, P]
    buckets: torch.Tensor  # uint8 [N, dim]
    bucket_weights: torch.Tensor  # float32 [2**nbits]
    nbits: int
    doc_offsets: torch.Tensor  # int64 [n_docs + 1]
    pids: torch.Tensor  # int64 [m]
    keep: torch.Tensor  # bool [C]
    extra: dict = field(default_factory=dict)

    @property
    def Lq(self) -> int:
        return self.Q.shape[0]

    def __repr__(self) -> str:  # short ids in pytest output
        return self.name


def noncontig(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous layout (when the tensor has > 1 element per dim)."""
    if t.dim() == 1:
        return torch.stack([t, t], dim=-1)[:, 0]
    return t.t().contiguous().t()


def make_case(
    name: str,
    *,
    dim: int,
    nbits: int,
    Lq: int,
    doclens: list[int],
    C: int = 37,
    m: int | None = None,
    half: bool = False,
    non_contiguous: bool = False,
    quantized: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Case:
    g = torch.Generator().manual_seed(seed)
    n_docs = len(doclens)
    offsets = torch.zeros(n_docs + 1, dtype=torch.int64)
    offsets[1:] = torch.tensor(doclens, dtype=torch.int64).cumsum(0)
    N = int(offsets[-1])
    centroids = torch.nn.functional.normalize(torch.randn(C, dim, generator=g), dim=-1)
    if half:
        centroids = centroids.half()
    codes = torch.randint(0, C, (N,), generator=g, dtype=torch.int32)
    buckets = torch.randint(0, 1 << nbits, (N, dim), generator=g, dtype=torch.uint8)
    residuals = pack_residual_buckets(buckets, nbits)
    bucket_weights = (torch.randn(1 << nbits, generator=g) * 0.05).sort().values
    Q = torch.nn.functional.normalize(torch.randn(Lq, dim, generator=g), dim=-1)
    cst = (Q @ centroids.float().T).T  # non-contiguous view [C, Lq]
    if quantized:  # multiples of 1/64: every sum is exact in any order -> exact ties
        cst = torch.randint(-64, 65, (C, Lq), generator=g).float() / 64
    cst = cst.contiguous()
    keep = torch.rand(C, generator=g) < 0.6
    if m is None:
        m = n_docs
    pids = torch.randperm(n_docs, generator=g)[:m].to(torch.int64) if n_docs else torch.zeros(0, dtype=torch.int64)
    case = Case(name, Q, centroids, cst, codes, residuals, buckets, bucket_weights, nbits, offsets, pids, keep)
    if non_contiguous:
        case = replace(
            case,
            Q=noncontig(case.Q),
            centroids=noncontig(case.centroids),
            cst=(Q @ centroids.float().T).T if not quantized else noncontig(case.cst),
            codes=noncontig(case.codes),
            residuals=noncontig(case.residuals),
            doc_offsets=noncontig(case.doc_offsets),
            pids=noncontig(case.pids),
            keep=noncontig(case.keep),
            bucket_weights=noncontig(case.bucket_weights),
        )
    dev = torch.device(device)
    if dev.type != "cpu":
        case = replace(case, **{
            k: getattr(case, k).to(dev)
            for k in ("Q", "centroids", "cst", "codes", "residuals", "buckets", "bucket_weights",
                      "doc_offsets", "pids", "keep")
        })
    return case


def _doclens(n: int, lo: int, hi: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, (n,), generator=g).tolist()


def sample_inputs(device: str | torch.device = "cpu") -> list[Case]:
    mixed = [0, 1, 3, 0, 7, 1, 13, 2, 0, 31, 5, 1, 65, 9]  # doclens 0 / 1 / odd, SIMD tails
    cases = [
        make_case("empty-pids", dim=128, nbits=2, Lq=32, doclens=[3, 0, 5], m=0, device=device),
        make_case("empty-index", dim=128, nbits=2, Lq=32, doclens=[0, 0, 0], device=device),
        make_case("no-docs", dim=64, nbits=2, Lq=7, doclens=[], device=device),
        make_case("len1-Lq1", dim=128, nbits=2, Lq=1, doclens=[1, 1, 0, 1], device=device),
        make_case("d24-nb1-Lq7", dim=24, nbits=1, Lq=7, doclens=mixed, seed=1, device=device),
        make_case("d64-nb2-Lq33", dim=64, nbits=2, Lq=33, doclens=mixed, seed=2, device=device),
        make_case("d64-nb4-Lq1", dim=64, nbits=4, Lq=1, doclens=mixed, seed=3, device=device),
        make_case("d128-nb1-Lq32", dim=128, nbits=1, Lq=32, doclens=_doclens(40, 0, 140, 4), seed=4, device=device),
        make_case("d128-nb2-Lq32", dim=128, nbits=2, Lq=32, doclens=_doclens(40, 0, 200, 5), C=300, seed=5, device=device),
        make_case("d128-nb4-Lq33", dim=128, nbits=4, Lq=33, doclens=_doclens(25, 0, 90, 6), seed=6, device=device),
        make_case("d128-nb2-Lq64", dim=128, nbits=2, Lq=64, doclens=_doclens(20, 0, 250, 7), seed=7, device=device),
        make_case("d128-nb2-Lq7-fp16", dim=128, nbits=2, Lq=7, doclens=mixed, half=True, seed=8, device=device),
        make_case("d128-nb2-Lq32-noncontig", dim=128, nbits=2, Lq=32, doclens=mixed, non_contiguous=True,
                  seed=9, device=device),
        make_case("d24-nb1-Lq33-fp16-noncontig", dim=24, nbits=1, Lq=33, doclens=mixed, half=True,
                  non_contiguous=True, seed=10, device=device),
        make_case("d128-nb2-Lq100", dim=128, nbits=2, Lq=100, doclens=_doclens(12, 0, 70, 11), seed=11, device=device),
    ]
    return cases


def big_lq_case(device: str | torch.device = "cpu") -> Case:
    """Lq = 512: the largest supported query length."""
    return make_case("d128-nb2-Lq512", dim=128, nbits=2, Lq=512, doclens=_doclens(6, 0, 40, 12), seed=12,
                     device=device)
