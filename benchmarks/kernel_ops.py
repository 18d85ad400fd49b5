"""Micro-benchmark of colja's CPU kernels against the PyTorch reference path.

    python benchmarks/kernel_ops.py [--threads 1 2] [--docs 20000] [--candidates 8192]
                                 [--centroids 16384] [--nbits 2] [--lq 32] [--reps 5]

Builds (or loads) the C++ extension, makes a synthetic PLAID-like index (dim 128,
doclens ~ 30..220, random codes/residuals), then times each public op with
``impl="torch"`` and ``impl="cpp"`` in this one process, for each thread count,
and prints median milliseconds and the torch/cpp ratio (higher = kernel faster).
Results are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import colja.kernels as K


def make_index(n_docs: int, C: int, dim: int, nbits: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(30, 221, (n_docs,), generator=g)
    offsets = torch.zeros(n_docs + 1, dtype=torch.long)
    offsets[1:] = lens.cumsum(0)
    N = int(offsets[-1])
    centroids = torch.nn.functional.normalize(torch.randn(C, dim, generator=g), dim=-1).half()
    codes = torch.randint(0, C, (N,), dtype=torch.int32, generator=g)
    residuals = torch.randint(0, 256, (N, dim * nbits // 8), dtype=torch.uint8, generator=g)
    bw = torch.linspace(-0.04, 0.04, 1 << nbits)
    return dict(offsets=offsets, centroids=centroids, codes=codes, residuals=residuals, bw=bw,
                nbits=nbits, N=N)


def timeit(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def check(a, b, name):
    if isinstance(a, tuple):
        assert torch.equal(a[0], b[0]), f"{name}: pids differ"
        a, b = a[1], b[1]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4, msg=lambda m: f"{name}: {m}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--candidates", type=int, default=8192)
    ap.add_argument("--rerank", type=int, default=1024, help="pids scored exactly (maxsim_*)")
    ap.add_argument("--centroids", type=int, default=16384)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--lq", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    info = K.backend_info()
    print(f"# backend: {info['backend']} simd={info.get('simd')} flags={info.get('cflags')}")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"docs={args.docs} candidates={args.candidates} rerank={args.rerank} C={args.centroids} "
          f"dim={args.dim} nbits={args.nbits} Lq={args.lq}")
    if info["backend"] != "cpp":
        raise SystemExit("the C++ kernels are unavailable: nothing to compare")

    ix = make_index(args.docs, args.centroids, args.dim, args.nbits)
    g = torch.Generator().manual_seed(1)
    Q = torch.nn.functional.normalize(torch.randn(args.lq, args.dim, generator=g), dim=-1)
    cst = (Q @ ix["centroids"].float().T).T.contiguous()
    keep = cst.max(dim=1).values >= torch.quantile(cst.max(dim=1).values, 0.5)  # prune half
    cand = torch.randperm(args.docs, generator=g)[: args.candidates].sort().values
    rer = cand[: args.rerank]
    norms = K.vector_norms(ix["codes"], ix["residuals"], ix["centroids"], ix["bw"], ix["nbits"])
    dec_rows = torch.arange(200_000) % ix["N"]
    dc, dr = ix["codes"][dec_rows].contiguous(), ix["residuals"][dec_rows].contiguous()
    D32 = K.decompress_residuals(ix["codes"], ix["residuals"], ix["centroids"], ix["bw"], ix["nbits"])
    D16 = D32.half()
    nb = ix["nbits"]
    off, codes, res, bw, cent = ix["offsets"], ix["codes"], ix["residuals"], ix["bw"], ix["centroids"]

    ops = {
        "decompress_residuals (200k vec)": lambda impl: K.decompress_residuals(dc, dr, cent, bw, nb, impl=impl),
        "vector_norms (200k vec)": lambda impl: K.vector_norms(dc, dr, cent, bw, nb, impl=impl),
        f"centroid_interaction (keep, {args.candidates} pids)":
            lambda impl: K.centroid_interaction(cst, codes, off, cand, keep, impl=impl),
        f"centroid_interaction (no keep, {args.candidates} pids)":
            lambda impl: K.centroid_interaction(cst, codes, off, cand, None, impl=impl),
        f"filter_candidates ({args.candidates} -> 256 -> 64)":
            lambda impl: K.filter_candidates(cst, codes, off, cand, keep, 256, 64, impl=impl),
        f"maxsim_packed LUT ({args.rerank} pids)":
            lambda impl: K.maxsim_packed(Q, cst, codes, res, norms, bw, nb, off, rer, impl=impl),
        "maxsim_packed LUT (64 pids)":
            lambda impl: K.maxsim_packed(Q, cst, codes, res, norms, bw, nb, off, rer[:64], impl=impl),
        f"maxsim_packed no-LUT ({args.rerank} pids)":
            lambda impl: K.maxsim_packed(Q, cst, codes, res, norms, bw, nb, off, rer, impl=impl,
                                         lut_max_bytes=0),
        f"maxsim_decompress ({args.rerank} pids)":
            lambda impl: K.maxsim_decompress(Q, codes, res, cent, bw, nb, off, rer, impl=impl),
        f"maxsim_dense fp32 ({args.rerank} pids)": lambda impl: K.maxsim_dense(Q, D32, off, rer, impl=impl),
        f"maxsim_dense fp16 ({args.rerank} pids)": lambda impl: K.maxsim_dense(Q, D16, off, rer, impl=impl),
        "maxsim_dense fp16 (all docs, brute force)": lambda impl: K.maxsim_dense(Q, D16, off, None, impl=impl),
    }
    for name, fn in ops.items():
        check(fn("cpp"), fn("torch"), name)

    saved = torch.get_num_threads()
    lut_ms: dict[int, float] = {}
    for nt in args.threads:
        torch.set_num_threads(nt)
        print(f"\n## {nt} thread(s)")
        print(f"{'op':<52} {'torch ms':>10} {'cpp ms':>10} {'ratio':>8}")
        for name, fn in ops.items():
            reps = max(2, args.reps // 2) if "all docs" in name else args.reps
            t_torch = timeit(lambda: fn("torch"), reps)
            t_cpp = timeit(lambda: fn("cpp"), reps)
            if name.startswith("maxsim_packed LUT (") and "64 pids" not in name:
                lut_ms[nt] = t_cpp
            print(f"{name:<52} {t_torch:>10.2f} {t_cpp:>10.2f} {t_torch / t_cpp:>7.1f}x")
        t_dec = timeit(lambda: K.maxsim_decompress(Q, codes, res, cent, bw, nb, off, rer, impl="cpp"), args.reps)
        print(f"{'  LUT speed-up over fused decompress+dot (cpp)':<52} {'':>10} {'':>10} "
              f"{t_dec / lut_ms[nt]:>7.1f}x")
    torch.set_num_threads(saved)


if __name__ == "__main__":
    main()
