"""GPU benchmark of colja's CUDA kernels against the PyTorch path on the same GPU.

    python benchmarks/gpu_kernels.py [--docs 200000] [--candidates 65536] [--rerank 4096]
                                     [--centroids 65536] [--nbits 2] [--lq 32] [--reps 20]

Meant to be run in one go by a session that has a GPU: it builds (or loads)
the CUDA extension, checks that every CUDA kernel agrees with the PyTorch
reference (on GPU and, for a subset, with the C++ CPU kernels), then prints
median milliseconds (CUDA events) for impl="torch" and impl="cuda" and their
ratio. Exits 0 with a message when no GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import colja.kernels as K


def make_index(n_docs, C, dim, nbits, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(30, 221, (n_docs,), generator=g)
    offsets = torch.zeros(n_docs + 1, dtype=torch.long)
    offsets[1:] = lens.cumsum(0)
    N = int(offsets[-1])
    centroids = torch.nn.functional.normalize(torch.randn(C, dim, generator=g), dim=-1).half()
    codes = torch.randint(0, C, (N,), dtype=torch.int32, generator=g)
    residuals = torch.randint(0, 256, (N, dim * nbits // 8), dtype=torch.uint8, generator=g)
    bw = torch.linspace(-0.04, 0.04, 1 << nbits)
    to = lambda t: t.to(device)  # noqa: E731
    return dict(offsets=to(offsets), centroids=to(centroids), codes=to(codes), residuals=to(residuals),
                bw=to(bw), nbits=nbits, N=N)


def cuda_time(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def agree(a, b, name):
    if isinstance(a, tuple):
        same = torch.equal(a[0].cpu(), b[0].cpu())
        a, b = a[1], b[1]
        if not same:
            print(f"  !! {name}: pids differ")
            return False
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    ok = torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-4)
    print(f"  {'ok' if ok else '!!'} {name}: max abs diff {diff:.3g}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--candidates", type=int, default=65_536)
    ap.add_argument("--rerank", type=int, default=4096)
    ap.add_argument("--centroids", type=int, default=65_536)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--lq", type=int, default=32)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-cpu-check", action="store_true")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("no CUDA device: skipping the GPU kernel benchmark")
        return 0
    t0 = time.perf_counter()
    info = K.backend_info("cuda")
    print(f"# backend: {info['backend']} ({time.perf_counter() - t0:.1f} s to build/load) "
          f"device={torch.cuda.get_device_name()} torch={torch.__version__} cuda={torch.version.cuda}")
    if info["backend"] != "cuda":
        print(f"the CUDA kernels are unavailable: {info['reason']}")
        return 1

    dev = torch.device("cuda")
    ix = make_index(args.docs, args.centroids, args.dim, args.nbits, dev)
    g = torch.Generator().manual_seed(1)
    Q = torch.nn.functional.normalize(torch.randn(args.lq, args.dim, generator=g), dim=-1).to(dev)
    cst = (Q @ ix["centroids"].float().T).T.contiguous()
    keep = cst.max(dim=1).values >= cst.max(dim=1).values.median()
    cand = torch.randperm(args.docs, generator=g)[: args.candidates].sort().values.to(dev)
    rer = cand[: args.rerank]
    off, codes, res, bw, cent, nb = ix["offsets"], ix["codes"], ix["residuals"], ix["bw"], ix["centroids"], ix["nbits"]
    norms = K.vector_norms(codes, res, cent, bw, nb, impl="cuda")
    rows = torch.arange(min(1_000_000, ix["N"]), device=dev)
    dc, dr = codes[rows].contiguous(), res[rows].contiguous()

    ops = {
        f"decompress_residuals ({len(rows)} vec)": lambda impl: K.decompress_residuals(dc, dr, cent, bw, nb, impl=impl),
        f"vector_norms ({len(rows)} vec)": lambda impl: K.vector_norms(dc, dr, cent, bw, nb, impl=impl),
        f"centroid_interaction keep ({args.candidates} pids)":
            lambda impl: K.centroid_interaction(cst, codes, off, cand, keep, impl=impl),
        f"filter_candidates ({args.candidates} -> 1024 -> 256)":
            lambda impl: K.filter_candidates(cst, codes, off, cand, keep, 1024, 256, impl=impl),
        f"maxsim_packed ({args.rerank} pids)":
            lambda impl: K.maxsim_packed(Q, cst, codes, res, norms, bw, nb, off, rer, impl=impl),
        f"maxsim_decompress ({args.rerank} pids)":
            lambda impl: K.maxsim_decompress(Q, codes, res, cent, bw, nb, off, rer, impl=impl),
    }
    print("\n## agreement (cuda vs torch on the GPU)")
    ok = all(agree(fn("cuda"), fn("torch"), name) for name, fn in ops.items())

    if not args.skip_cpu_check:
        print("\n## agreement (cuda vs C++ CPU kernels, 256 reranked pids)")
        cpu = lambda t: t.cpu()  # noqa: E731
        sub = rer[:256]
        try:
            ok &= agree(K.maxsim_packed(Q, cst, codes, res, norms, bw, nb, off, sub, impl="cuda").cpu(),
                        K.maxsim_packed(cpu(Q), cpu(cst), cpu(codes), cpu(res), cpu(norms), cpu(bw), nb, cpu(off),
                                        cpu(sub)), "maxsim_packed cuda vs cpu")
            ok &= agree(K.centroid_interaction(cst, codes, off, sub, keep, impl="cuda").cpu(),
                        K.centroid_interaction(cpu(cst), cpu(codes), cpu(off), cpu(sub), cpu(keep)),
                        "centroid_interaction cuda vs cpu")
        except Exception as e:  # the CPU kernels may be unavailable there: not the point here
            print(f"  (skipped: {e})")

    print(f"\n## timings (median of {args.reps}, CUDA events)")
    print(f"{'op':<56} {'torch ms':>10} {'cuda ms':>10} {'ratio':>8}")
    for name, fn in ops.items():
        t_torch = cuda_time(lambda: fn("torch"), args.reps)
        t_cuda = cuda_time(lambda: fn("cuda"), args.reps)
        print(f"{name:<56} {t_torch:>10.3f} {t_cuda:>10.3f} {t_torch / t_cuda:>7.1f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
