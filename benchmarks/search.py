"""Search speed, fidelity and memory: colja PLAID vs exhaustive and exact brute force.

    python benchmarks/search.py --data bench-data/S [--data bench-data/M] [--text]

Data: ``../shared/bench/gen_data.py`` collections (``--data``; generate with
``python ../shared/bench/gen_data.py --name S --docs 10000 --out bench-data``) and,
with ``--text``, ``../shared/data/jaquad-dev-large`` encoded with the fixture model.

For every collection, in one run:
* fidelity — top-10 agreement of default PLAID search with ``exhaustive=True`` on
  the same index, and with exact fp32 MaxSim on the uncompressed vectors, for
  nbits 1/2/4;
* speed — one query at a time, query encoding excluded: p50/p95 latency with 1 and
  2 threads, C++ kernels vs the PyTorch fallback (``COLJA_KERNELS=torch``, measured
  in a subprocess on the first 40 queries), and exact brute-force MaxSim (fp32 matmul over all vectors) as
  the baseline, printed as ratios;
* memory — peak RSS of a process that loads the index (normally and memory-mapped)
  and runs the queries;
* with ``--reference-python PY`` (a venv with colbert-ai, which needs
  ``transformers<4.50``): the reference PLAID on the same vectors
  (``benchmarks/plaid_reference.py``, run by that interpreter), and the speed /
  fidelity curve of both engines over several pruning budgets, one query at a
  time, 1 thread, best of ``--repeats`` per query for both: p50 and top-10
  agreement with colja's exhaustive search and with exact MaxSim on the
  uncompressed vectors; colja's default against the reference's default (k <= 10)
  as a ratio; at each reference budget the fastest colja budget at least as
  faithful; and search_batch throughput (all queries in one call) against one
  query at a time, 1 and 2 threads. ``--only-reference`` skips the other parts,
  ``--only-colja`` the reference's timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TORCH_QUERIES = 40  # single-query searches timed on the PyTorch fallback


# ---------------------------------------------------------------- data
def load_bench(folder: Path):
    embs = np.load(folder / "embs.npy", mmap_mode="r")
    doclens = np.load(folder / "doclens.npy").astype(np.int64)
    queries = np.load(folder / "queries.npy").astype(np.float32)
    gt = np.load(folder / "gt_ids.npy")[:, :10]
    return embs, doclens, queries, gt


def split_docs(embs, doclens):
    offsets = np.concatenate([[0], np.cumsum(doclens)])
    return [embs[offsets[i]:offsets[i + 1]] for i in range(len(doclens))]


def encode_jaquad(cache: Path):
    """jaquad-dev-large passages and queries encoded with the fixture model (cached)."""
    if (cache / "embs.npy").exists():
        return load_bench(cache)
    import warnings


    from colja import ColBERT, TruncationWarning
    from colja import kernels

    warnings.simplefilter("ignore", TruncationWarning)
    model = ColBERT.from_pretrained(SHARED / "fixtures" / "colbert-tiny-ja" / "model", device="cpu")
    data = SHARED / "data" / "jaquad-dev-large"
    texts = [json.loads(l)["text"] for l in open(data / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(l)["text"] for l in open(data / "queries.jsonl", encoding="utf-8")][:500]
    flat, doclens = model.encode_documents(texts, batch_size=64, return_flat=True, show_progress=True)
    Q = model.encode_queries(queries)
    gt = kernels.maxsim_dense_queries(Q, flat, kernels.lengths_to_offsets(doclens)).topk(10, dim=1).indices.numpy()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / "embs.npy", flat.half().numpy())
    np.save(cache / "doclens.npy", doclens.numpy().astype(np.int32))
    np.save(cache / "queries.npy", Q.half().numpy())
    np.save(cache / "gt_ids.npy", gt)
    return load_bench(cache)


def agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


def build_index(embs, doclens, path: Path, nbits: int):
    from colja import Index

    if (path / "CURRENT").exists():
        return Index.load(path)
    t = time.perf_counter()
    index = Index.from_embeddings(split_docs(embs, doclens), path, nbits=nbits)
    print(f"  built {path.name} in {time.perf_counter() - t:.1f}s", flush=True)
    return index


# ---------------------------------------------------------------- worker (subprocess)
def worker(args) -> None:
    """Load an index, time single-query searches, print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from colja import Index, kernels

    queries = np.load(args.queries).astype(np.float32)[: args.n]
    if os.environ.get("COLJA_KERNELS") == "torch":
        queries = queries[:TORCH_QUERIES]  # the fallback is ~30x slower: fewer queries keep the run short
    index = Index.load(args.index, mmap=args.mmap)
    overrides = json.loads(args.overrides)
    index.search_embeddings(queries[0], 10, **overrides)  # warm-up (kernel load, caches)
    per_query = [[] for _ in range(len(queries))]
    ids = []
    for r in range(args.repeats):  # best of the repeats per query, then percentiles (the reference's protocol)
        for i, q in enumerate(queries):
            t = time.perf_counter()
            res = index.search_embeddings(q, 10, **overrides)
            per_query[i].append(time.perf_counter() - t)
            if r == 0:
                ids.append(res.pids[0])
    times = np.array([min(t) for t in per_query])
    out = {"p50": float(np.median(times) * 1e3), "p95": float(np.percentile(times, 95) * 1e3),
           "backend": kernels.backend(), "peak_rss_mb": peak_rss_mb(), "ids": np.array(ids).tolist()}
    if args.batch:  # throughput of search_batch-style calls (all queries in one call) against one at a time
        Q = torch.from_numpy(queries)
        index.search_embeddings(Q[:2], 10, **overrides)
        single, batch = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for q in Q:
                index.search_embeddings(q, 10, **overrides)
            single.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search_embeddings(Q, 10, **overrides)
            batch.append(time.perf_counter() - t)
        out["qps_single"], out["qps_batch"] = len(Q) / min(single), len(Q) / min(batch)
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss carries the
    parent's peak across fork + exec, which would charge the benchmark's own data to the worker."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(index: Path, queries: Path, n: int, threads: int, *, torch_fallback=False, mmap=False, overrides=None,
               repeats: int = 1, batch: bool = False) -> dict:
    env = dict(os.environ)
    if torch_fallback:
        env["COLJA_KERNELS"] = "torch"
    cmd = [sys.executable, __file__, "--worker", "--index", str(index), "--queries", str(queries), "--n", str(n),
           "--threads", str(threads), "--overrides", json.dumps(overrides or {}), "--repeats", str(repeats)]
    cmd += (["--mmap"] if mmap else []) + (["--batch"] if batch else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def brute_force_ms(embs, doclens, queries, n: int, threads: int) -> tuple[float, np.ndarray]:
    """Exact MaxSim over all uncompressed vectors (fp32 matmul, tiled), one query at a time."""
    import torch

    torch.set_num_threads(threads)
    E = torch.from_numpy(np.asarray(embs, dtype=np.float32))
    lens = torch.from_numpy(doclens)
    times, ids = [], []
    for q in queries[:n]:
        t = time.perf_counter()
        sims = E @ torch.from_numpy(q).T  # [tokens, 32]
        scores = torch.segment_reduce(sims, "max", lengths=lens, axis=0).sum(1)
        ids.append(scores.topk(10).indices.numpy())
        times.append(time.perf_counter() - t)
    del E
    return float(np.median(times) * 1e3), np.array(ids)


# ---------------------------------------------------------------- main
def bench_collection(name: str, embs, doclens, queries, gt, work: Path, args) -> None:
    import torch

    print(f"\n=== {name}: {len(doclens):,} passages, {len(embs):,} vectors, {len(queries)} queries ===", flush=True)
    qfile = work / f"{name}-queries.npy"
    np.save(qfile, queries[: args.queries])
    nq = min(args.queries, len(queries))

    print("fidelity (top-10 agreement, default settings, all queries):")
    indexes = {}
    for nbits in args.nbits:
        index = build_index(embs, doclens, work / f"{name}-{nbits}bit", nbits)
        indexes[nbits] = index.path
        torch.set_num_threads(2)
        plaid = index.search_embeddings(queries[:nq], 10).pids
        exhaustive = index.search_embeddings(queries[:nq], 10, exhaustive=True).pids
        print(f"  nbits={nbits}: PLAID vs exhaustive {agreement(plaid, exhaustive):.4f} | "
              f"PLAID vs exact fp32 {agreement(plaid, gt[:nq]):.4f} | exhaustive vs exact {agreement(exhaustive, gt[:nq]):.4f}",
              flush=True)

    path = indexes[2] if 2 in indexes else indexes[args.nbits[0]]
    n_lat = min(args.latency_queries, nq)
    print(f"latency, one query at a time ({n_lat} queries, {path.name}):")
    rows = {}
    for threads in (1, 2):
        rows[("kernels", threads)] = run_worker(path, qfile, n_lat, threads)
        rows[("torch", threads)] = run_worker(path, qfile, n_lat, threads, torch_fallback=True)
        bf_ms, _ = brute_force_ms(embs, doclens, queries, min(args.brute_queries, nq), threads)
        rows[("brute", threads)] = {"p50": bf_ms}
        k, t = rows[("kernels", threads)], rows[("torch", threads)]
        print(f"  threads={threads}: kernels p50 {k['p50']:.2f} ms p95 {k['p95']:.2f} ms [{k['backend']}] | "
              f"torch fallback p50 {t['p50']:.2f} ms p95 {t['p95']:.2f} ms | brute force p50 {bf_ms:.1f} ms", flush=True)
        print(f"             kernels vs torch {t['p50'] / k['p50']:.1f}x faster; brute force / kernels = {bf_ms / k['p50']:.0f}x "
              f"(colja = 1/{bf_ms / k['p50']:.0f} of brute force)", flush=True)
    mm = run_worker(path, qfile, n_lat, 1, mmap=True)
    print(f"memory: peak RSS loaded normally {rows[('kernels', 1)]['peak_rss_mb']:.0f} MB, memory-mapped {mm['peak_rss_mb']:.0f} MB "
          f"(mmap p50 {mm['p50']:.2f} ms)", flush=True)


REFERENCE_BUDGETS = [  # colbert-ai's own settings for k <= 10, <= 100, > 100 (it exactly scores ndocs // 4)
    {"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 256},
    {"ncells": 2, "centroid_score_threshold": 0.45, "ndocs": 1024},
    {"ncells": 4, "centroid_score_threshold": 0.4, "ndocs": 4096},
]
COLJA_BUDGETS = [  # cheap to faithful; {} = colja's defaults for k = 10 (every survivor scored: nfinal = ndocs)
    {"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 128},
    {"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 256},
    {"ncells": 2, "centroid_score_threshold": 0.45, "ndocs": 512},
    {},
    {"ncells": 2, "centroid_score_threshold": 0.4, "ndocs": 1024},
    {"ncells": 4, "centroid_score_threshold": 0.4, "ndocs": 2048},
]


def reference_curve(name: str, data: Path, embs, doclens, queries, gt, work: Path, args) -> None:
    """The reference PLAID and colja over several budgets, in this run (one query at a time, 1 thread,
    best of ``--repeats`` per query for both engines), their ratios, and search_batch throughput."""
    ref_index = work.parent / "ref-indexes" / f"{name}-2bit"
    script = Path(__file__).with_name("plaid_reference.py")
    if not args.only_colja and not (ref_index / "ivf.pid.pt").exists() and not (ref_index / "ivf.pt").exists():
        print(f"building the reference index (colbert-ai) at {ref_index} ...", flush=True)
        subprocess.run([args.reference_python, str(script), "build", "--data", str(data), "--index", str(ref_index),
                        "--nbits", "2"], check=True)
    n = min(args.latency_queries, len(queries))
    qfile = work / f"{name}-ref-queries.npy"
    np.save(qfile, queries[:n])
    index = build_index(embs, doclens, work / f"{name}-2bit", 2)
    exhaustive = index.search_embeddings(queries[:n], 10, exhaustive=True).pids
    print(f"\n=== {name}: {len(doclens):,} passages, {len(embs):,} vectors; speed / fidelity, one query at a time, "
          f"1 thread, {n} queries, best of {args.repeats} per query ===")
    print("agreement: top-10 with colja exhaustive | with exact MaxSim on the uncompressed vectors")
    curve: dict[str, list[tuple[str, float, float, float]]] = {"reference": [], "colja": []}
    ref_rows = []
    if not args.only_colja:
        out = subprocess.run([args.reference_python, str(script), "search", "--index", str(ref_index), "--queries",
                              str(qfile), "--budgets", json.dumps(REFERENCE_BUDGETS), "--threads", "1", "--repeats",
                              str(args.repeats)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        ref_rows = json.loads(out.stdout.strip().splitlines()[-1])
    for row in ref_rows:
        ids = np.array(row["ids"])
        point = (json.dumps(row["budget"]), row["p50"], agreement(ids, exhaustive), agreement(ids, gt[:n]))
        curve["reference"].append(point)
        print(f"  reference {point[0]:66} p50 {point[1]:7.2f} ms | {point[2]:.3f} | {point[3]:.3f}", flush=True)
    for budget in COLJA_BUDGETS:
        row = run_worker(index.path, qfile, n, 1, overrides=budget, repeats=args.repeats)
        ids = np.array(row["ids"])
        point = (json.dumps(budget or "defaults"), row["p50"], agreement(ids, exhaustive), agreement(ids, gt[:n]))
        curve["colja"].append(point)
        print(f"  colja     {point[0]:66} p50 {point[1]:7.2f} ms | {point[2]:.3f} | {point[3]:.3f}", flush=True)
    default = next(p for p in curve["colja"] if p[0] == json.dumps("defaults"))
    if curve["reference"]:
        ref10 = curve["reference"][0]
        print(f"  default search (k <= 10): colja {default[1]:.2f} ms at agreement {default[2]:.3f} with its exhaustive "
              f"search; reference {ref10[1]:.2f} ms at {ref10[2]:.3f}: colja {ref10[1] / default[1]:.2f}x faster")
        for name_, p50, _, exact in curve["reference"]:  # the curve dominates: as faithful, faster, at every budget
            best = min((c for c in curve["colja"] if c[3] >= exact), key=lambda c: c[1], default=None)
            if best:
                print(f"  at the reference's {name_} (agreement with exact {exact:.3f}): fastest colja as faithful "
                      f"{best[1]:.2f} ms {best[0]} -> {p50 / best[1]:.2f}x")
            else:
                print(f"  at the reference's {name_} (agreement with exact {exact:.3f}): no colja budget as faithful")
    for threads in (1, 2):
        row = run_worker(index.path, qfile, n, threads, repeats=args.repeats, batch=True)
        print(f"  search_batch of {n} vs one at a time, {threads} thread(s): {row['qps_batch']:.1f} vs "
              f"{row['qps_single']:.1f} queries/s ({row['qps_batch'] / row['qps_single']:.2f}x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-python", help="python of a venv with colbert-ai: compare with the reference PLAID")
    ap.add_argument("--only-reference", action="store_true", help="run only the comparison with the reference")
    ap.add_argument("--only-colja", action="store_true", help="with --reference-python: skip timing the reference "
                    "(its index is still built); the colja curve and search_batch only")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes over the queries (best per query)")
    ap.add_argument("--data", action="append", default=[], help="a gen_data.py output folder (repeatable)")
    ap.add_argument("--text", action="store_true", help="also jaquad-dev-large encoded with the fixture model")
    ap.add_argument("--nbits", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--brute-queries", type=int, default=20)
    ap.add_argument("--work", default=str(REPO / "bench-data" / "indexes"), help="where indexes are built (reused)")
    args = ap.parse_args()
    import torch

    import colja

    print(f"colja {colja.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for folder in args.data:
        data = load_bench(Path(folder))
        if not args.only_reference:
            bench_collection(Path(folder).name, *data, work, args)
        if args.reference_python or args.only_colja:
            reference_curve(Path(folder).name, Path(folder), *data, work, args)
    if args.text:
        bench_collection("jaquad-dev-large", *encode_jaquad(REPO / "bench-data" / "jaquad-tiny"), work, args)


def worker_main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--index")
    p.add_argument("--queries")
    p.add_argument("--n", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--mmap", action="store_true")
    p.add_argument("--overrides", default="{}")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batch", action="store_true")
    worker(p.parse_args())


if __name__ == "__main__":
    worker_main() if "--worker" in sys.argv else main()
