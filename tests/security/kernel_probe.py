"""Run every kernel on bad arrays and print, per case, the exception raised (run in a child process:
a segmentation fault or an abort shows as the child's exit status, not as a crashed test run).

Usage: python -m tests.security.kernel_probe IMPL   (torch | cpp)
"""

from __future__ import annotations

import json
import sys

import torch

from colja import kernels

C, DIM, NBITS, N = 16, 32, 2, 40
P = DIM * NBITS // 8


def arrays():
    g = torch.Generator().manual_seed(0)
    centroids = torch.nn.functional.normalize(torch.randn(C, DIM, generator=g), dim=1).half()
    codes = torch.randint(0, C, (N,), generator=g, dtype=torch.int32)
    residuals = torch.randint(0, 256, (N, P), generator=g, dtype=torch.uint8)
    weights = torch.linspace(-0.1, 0.1, 2**NBITS)
    offsets = torch.tensor([0, 10, 20, 30, 40], dtype=torch.int64)
    Q = torch.nn.functional.normalize(torch.randn(4, DIM, generator=g), dim=1)
    return centroids, codes, residuals, weights, offsets, Q


def cases(impl: str):
    centroids, codes, residuals, weights, offsets, Q = arrays()
    cst = (Q @ centroids.float().T).T.contiguous()
    norms = kernels.vector_norms(codes, residuals, centroids, weights, NBITS, impl=impl)
    pids = torch.tensor([0, 3], dtype=torch.int64)
    big_code = codes.clone()
    big_code[5] = 1 << 30
    neg_code = codes.clone()
    neg_code[7] = -3
    bad_pids = torch.tensor([0, 4], dtype=torch.int64)  # 4 passages: pid 4 is out of range
    neg_pids = torch.tensor([-1], dtype=torch.int64)
    falling = torch.tensor([0, 30, 10, 35, 40], dtype=torch.int64)
    beyond = torch.tensor([0, 10, 20, 30, 4000], dtype=torch.int64)
    D = torch.randn(N, DIM)
    for name, bad in (("code-too-big", big_code), ("code-negative", neg_code)):
        yield f"decompress/{name}", lambda bad=bad: kernels.decompress_residuals(bad, residuals, centroids, weights, NBITS, impl=impl)
        yield f"norms/{name}", lambda bad=bad: kernels.vector_norms(bad, residuals, centroids, weights, NBITS, impl=impl)
        yield f"interaction/{name}", lambda bad=bad: kernels.centroid_interaction(cst, bad, offsets, pids, impl=impl)
        yield f"filter/{name}", lambda bad=bad: kernels.filter_candidates(cst, bad, offsets, pids, None, 2, 2, impl=impl)
        yield f"packed/{name}", lambda bad=bad: kernels.maxsim_packed(Q, cst, bad, residuals, norms, weights, NBITS,
                                                                        offsets, pids, impl=impl)
        yield f"decompress-maxsim/{name}", lambda bad=bad: kernels.maxsim_decompress(
            Q, bad, residuals, centroids, weights, NBITS, offsets, pids, impl=impl)
    for name, bad in (("pid-too-big", bad_pids), ("pid-negative", neg_pids)):
        yield f"interaction/{name}", lambda bad=bad: kernels.centroid_interaction(cst, codes, offsets, bad, impl=impl)
        yield f"filter/{name}", lambda bad=bad: kernels.filter_candidates(cst, codes, offsets, bad, None, 2, 2, impl=impl)
        yield f"packed/{name}", lambda bad=bad: kernels.maxsim_packed(Q, cst, codes, residuals, norms, weights, NBITS,
                                                                        offsets, bad, impl=impl)
        yield f"dense/{name}", lambda bad=bad: kernels.maxsim_dense(Q, D, offsets, bad, impl=impl)
        yield f"decompress-maxsim/{name}", lambda bad=bad: kernels.maxsim_decompress(
            Q, codes, residuals, centroids, weights, NBITS, offsets, bad, impl=impl)
    for name, bad, at in (("offsets-falling", falling, torch.tensor([1])), ("offsets-beyond-n", beyond, pids)):
        yield f"interaction/{name}", lambda bad=bad, at=at: kernels.centroid_interaction(cst, codes, bad, at, impl=impl)
        yield f"filter/{name}", lambda bad=bad, at=at: kernels.filter_candidates(cst, codes, bad, at, None, 2, 2,
                                                                                 impl=impl)
        yield f"packed/{name}", lambda bad=bad, at=at: kernels.maxsim_packed(Q, cst, codes, residuals, norms, weights,
                                                                               NBITS, bad, at, impl=impl)
        yield f"dense/{name}", lambda bad=bad, at=at: kernels.maxsim_dense(Q, D, bad, at, impl=impl)
        yield f"decompress-maxsim/{name}", lambda bad=bad, at=at: kernels.maxsim_decompress(
            Q, codes, residuals, centroids, weights, NBITS, bad, at, impl=impl)
    yield "token-rows/pid-minus-two", lambda: kernels.token_rows(offsets, torch.tensor([-2]))


def main(impl: str) -> None:
    out = {}
    for name, call in cases(impl):
        try:
            call()
            out[name] = None
        except Exception as exc:  # noqa: BLE001 - recorded: the point is that it is an exception
            out[name] = type(exc).__name__
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
