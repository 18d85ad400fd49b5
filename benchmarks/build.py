"""Index build benchmark: build seconds, bytes per vector, peak memory and search fidelity per lever.

    python /work/shared/bench/gen_data.py --name S --docs 10000 --queries 500 --seed 1234 --out bench-data
    python benchmarks/build.py --data bench-data/S [--configs reference,default,...] [--threads 2]

Every configuration builds an index with ``Index.from_embeddings`` from the
generator's vectors (no model: encoding is not part of the figure) in a fresh
child process, which reports the build's wall time, the per-step times from the
manifest and its peak RSS. The parent then measures fidelity: exhaustive exact
MaxSim of the 500 queries over the *decompressed* vectors of the whole index,
top-10 agreement with the generator's exact fp32 ground truth
(``|top10 ∩ exact top10| / 10``, averaged), plus the mean cosine between each
decompressed vector and its original.

``reference`` is the colbert-ai setup (faiss's 256 points per centroid, 4
iterations, exact assignment), run in the same session as the baseline of the
ratios; the reference implementation itself took 544 s here for the same
collection (a fixed figure, from the issue), also printed as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCE_SECONDS = 544.0  # colbert-ai, 10k passages / 1.2M vectors / 16,384 centroids, 2 cores (from the issue)

#: name -> IndexSettings overrides
CONFIGS: dict[str, dict] = {
    "reference": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="flat", assignment="exact"),
    "mpc64": dict(max_points_per_centroid=64, kmeans_niters=4, kmeans="flat", assignment="exact"),
    "mpc32": dict(max_points_per_centroid=32, kmeans_niters=4, kmeans="flat", assignment="exact"),
    "mpc16": dict(max_points_per_centroid=16, kmeans_niters=4, kmeans="flat", assignment="exact"),
    "mpc16-it2": dict(max_points_per_centroid=16, kmeans_niters=2, kmeans="flat", assignment="exact"),
    "mpc8": dict(max_points_per_centroid=8, kmeans_niters=4, kmeans="flat", assignment="exact"),
    "mpc8-it2": dict(max_points_per_centroid=8, kmeans_niters=2, kmeans="flat", assignment="exact"),
    "2lvl-km": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=128, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-s7": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=128, assignment="exact", seed=7),
    "2lvl-km-mpc32": dict(max_points_per_centroid=32, kmeans_niters=4, kmeans="two_level", kmeans_cells=128, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-it10": dict(max_points_per_centroid=256, kmeans_niters=10, kmeans="two_level", kmeans_cells=128, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-c64-it10": dict(max_points_per_centroid=256, kmeans_niters=10, kmeans="two_level", kmeans_cells=64, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-c32-it10": dict(max_points_per_centroid=256, kmeans_niters=10, kmeans="two_level", kmeans_cells=32, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-c32": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=32, assignment="exact", kmeans_refine_iters=0),
    "2lvl-km-c32-r2": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=32, assignment="exact", kmeans_refine_iters=2),
    "2lvl-km-c16": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=16, assignment="exact", kmeans_refine_iters=0),
    "mpc16-2lvl-assign": dict(max_points_per_centroid=16, kmeans_niters=4, kmeans="flat", assignment="two_level", assignment_probe=8),
    "2lvl-km-2lvl-assign16": dict(max_points_per_centroid=256, kmeans_niters=4, kmeans="two_level", kmeans_cells=128, assignment="two_level", assignment_probe=16),
    "default": dict(),
}
DEFAULT_RUN = ["reference", "mpc32", "mpc16", "mpc16-it2", "mpc8", "mpc8-it2", "2lvl-km", "2lvl-km-mpc32",
               "mpc16-2lvl-assign", "default"]


def load_docs(data: Path) -> list[np.ndarray]:
    """Per-passage float16 views of the generator's ``embs.npy`` (memory-mapped, no copy)."""
    embs = np.load(data / "embs.npy", mmap_mode="r")
    doclens = np.load(data / "doclens.npy").astype(np.int64)
    return np.split(embs, np.cumsum(doclens)[:-1])


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    """Build one configuration and print a JSON line with its figures."""
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    from colja import Index

    docs = load_docs(Path(args.data))
    overrides = CONFIGS[args.child]
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    index = Index.from_embeddings(docs, args.out, overwrite=True, show_progress=False, **overrides)
    seconds = time.perf_counter() - started
    stats = index.stats()
    build = index.manifest["build"]
    print(json.dumps({
        "config": args.child,
        "settings": index.manifest["settings"],
        "seconds": seconds,
        "steps": build["seconds"],
        "kmeans_vectors": build["kmeans_vectors"],
        "centroids": stats["centroids"],
        "vectors": stats["vectors"],
        "bytes_per_vector": stats["bytes_per_vector"],
        "compressed_bytes_per_vector": stats["compressed_bytes_per_vector"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_seconds": _cpu_seconds() - cpu_started,
    }))


def fidelity(index_path: Path, data: Path, *, n_queries: int | None, block_vectors: int = 4096) -> dict:
    """Top-10 agreement of exhaustive MaxSim over decompressed vectors with the exact ground truth."""
    from colja.index.snapshot import IndexSnapshot

    index = IndexSnapshot.open(index_path, mmap=True, check_hashes=False)
    queries = torch.from_numpy(np.load(data / "queries.npy")).float()
    gt = np.load(data / "gt_ids.npy")[:, :10]
    if n_queries:
        queries, gt = queries[:n_queries], gt[:n_queries]
    nq, lq, dim = queries.shape
    qflat = queries.reshape(nq * lq, dim).T.contiguous()  # [dim, nq*lq]
    embs = np.load(data / "embs.npy", mmap_mode="r")
    doclens = index.doclens.numpy()
    offsets = index.doc_offsets.numpy()
    scores = torch.empty((nq, index.num_passages))
    cos_sum = 0.0
    p = 0
    while p < index.num_passages:
        q = p
        while q < index.num_passages and (q == p or offsets[q + 1] - offsets[p] <= block_vectors):
            q += 1
        a, b = int(offsets[p]), int(offsets[q])
        dec = index.codec.decompress(index.codes[a:b], index.residuals[a:b])
        orig = torch.from_numpy(np.asarray(embs[a:b], dtype=np.float32))
        cos_sum += float((dec * torch.nn.functional.normalize(orig, dim=-1)).sum())
        sims = dec @ qflat  # [vectors, nq*lq]
        per_doc = torch.segment_reduce(sims, "max", lengths=torch.from_numpy(doclens[p:q]), axis=0)
        scores[:, p:q] = per_doc.reshape(q - p, nq, lq).sum(-1).T
        p = q
    top = scores.topk(10, dim=1).indices.numpy()
    agree = np.mean([len(set(top[i]) & set(gt[i])) / 10 for i in range(nq)])
    top1 = float(np.mean(top[:, 0] == gt[:, 0]))
    index.close()
    return {"top10_agreement": float(agree), "top1_agreement": top1, "mean_cosine": cos_sum / index.num_embeddings,
            "queries": nq}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / "bench-data" / "S"))
    ap.add_argument("--configs", default=",".join(DEFAULT_RUN), help=f"comma-separated, from {sorted(CONFIGS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=None, help="evaluate the first N queries only")
    ap.add_argument("--workdir", default=None, help="where indexes are built (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes")
    ap.add_argument("--json", default=None, help="also write all rows to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    data = Path(args.data)
    if not (data / "embs.npy").is_file():
        raise SystemExit(f"no benchmark data at {data}; generate it with /work/shared/bench/gen_data.py (see this file's docstring)")
    torch.set_num_threads(args.threads)
    meta = json.loads((data / "meta.json").read_text()) if (data / "meta.json").is_file() else {}
    import faiss

    from colja import __version__

    print(f"# colja {__version__}, torch {torch.__version__}, numpy {np.__version__}, faiss {faiss.__version__}, "
          f"python {platform.python_version()}, {platform.machine()} {os.cpu_count()} cpus, threads={args.threads}")
    print(f"# data {data}: {meta.get('docs', '?')} passages, {meta.get('tokens', '?')} vectors, {meta.get('queries', '?')} queries")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="colja-build-bench-"))
    rows = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        if name not in CONFIGS:
            raise SystemExit(f"unknown config {name!r}; known: {sorted(CONFIGS)}")
        out = workdir / name
        load_before = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--child", name, "--data", str(data), "--out", str(out), "--threads", str(args.threads)]
        env = dict(os.environ, COLJA_DISABLE_PROGRESS="1", OMP_NUM_THREADS=str(args.threads))
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"config {name} failed")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["load_before"], row["load_after"] = load_before, os.getloadavg()[0]
        started = time.perf_counter()
        row.update(fidelity(out, data, n_queries=args.queries))
        row["eval_seconds"] = time.perf_counter() - started
        rows.append(row)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        steps = row["steps"]
        print(f"{name:>18}: build {row['seconds']:7.1f} s, cpu {row['cpu_seconds']:7.1f} s (kmeans {steps['kmeans']:6.1f}, compress {steps['compress']:6.1f}) "
              f"top10 {row['top10_agreement']:.4f} cos {row['mean_cosine']:.5f} peak {row['peak_rss_mb']:.0f} MB "
              f"load {row['load_before']:.1f}->{row['load_after']:.1f}", flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)

    base = next((r for r in rows if r["config"] == "reference"), None)
    print()
    print("| config | settings (mpc / iters / k-means / assignment) | k-means vectors | build s | k-means s | compress s "
          "| vs reference run | vs 544 s | top-10 agreement | top-1 | mean cos | bytes/vector (total / compressed) | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["settings"]
        lever = f"{s['max_points_per_centroid']} / {s['kmeans_niters']} / {s['kmeans']} / {s['assignment']}" + (
            f" p{s['assignment_probe']}" if s["assignment"] == "two_level" else "")
        ratio = f"{base['seconds'] / r['seconds']:.2f}x" if base else "-"
        print(f"| {r['config']} | {lever} | {r['kmeans_vectors']:,} | {r['seconds']:.1f} | {r['steps']['kmeans']:.1f} | "
              f"{r['steps']['compress']:.1f} | {ratio} | {REFERENCE_SECONDS / r['seconds']:.2f}x | {r['top10_agreement']:.4f} | "
              f"{r['top1_agreement']:.3f} | {r['mean_cosine']:.5f} | {r['bytes_per_vector']:.1f} / {r['compressed_bytes_per_vector']} | "
              f"{r['peak_rss_mb']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
