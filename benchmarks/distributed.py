"""Scale-out benchmark: build throughput on Ray vs a local build, and the fan-out cost of shards.

    python benchmarks/distributed.py [--model models/colja-small-ja] [--passages 3000] [--queries 100]

In one run, on one collection (JaQuAD passages, Japanese):

* build passages/s of ``Index.build`` (local, the baseline) and of
  ``colja.distributed.build`` on a real local Ray cluster (``ray.cluster_utils.Cluster``:
  a head and one worker node of 1 CPU each) with 1 and 2 model workers;
* search p50 (precomputed query vectors, so encoding is not in the figure) of
  one index vs the same collection in 2 and 4 shards (``ShardedIndex``, shards
  in threads), and 2 shards in Ray actors; plus the p50 of one shard alone;
* bytes per passage on disk and in memory, for ``docs/scale.md``.

Ratios are against the baseline measured in the same run; latencies are the
median of ``--repeats`` passes over the queries. The machine and its load are
printed: a shared 2-core machine gives noisy absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # benchmarks/kernels.py
sys.path.insert(0, str(REPO))
os.environ.setdefault("COLJA_DISABLE_PROGRESS", "1")
warnings.filterwarnings("ignore", module="colja")  # TruncationWarning of long passages


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _p50(search, Q, repeats: int) -> float:
    """Median over ``repeats`` passes of the per-query median latency (ms)."""
    passes = []
    for _ in range(repeats):
        times = []
        for i in range(Q.shape[0]):
            t = time.perf_counter()
            search(Q[i : i + 1])
            times.append((time.perf_counter() - t) * 1000)
        passes.append(statistics.median(times))
    return statistics.median(passes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "colja-small-ja"))
    ap.add_argument("--data", default=os.environ.get("COLJA_SHARED", str(REPO.parent / "shared")) +
                    "/data/jaquad-dev-large/corpus.jsonl")
    ap.add_argument("--passages", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-passages", type=int, default=256)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from colja import ColBERT, Index
    from colja.distributed import ShardedIndex, build

    rows = [json.loads(line) for line in open(args.data, encoding="utf-8")][: args.passages]
    texts = [r["text"] for r in rows]
    model = ColBERT.from_pretrained(args.model, device="cpu")
    queries = [t[:40] for t in texts[:: max(1, len(texts) // args.queries)]][: args.queries]
    Q = model.encode_queries(queries)
    print(f"CPU: {_cpu()}, {os.cpu_count()} cores; load average {os.getloadavg()}; "
          f"{len(texts):,} passages; model {args.model}")
    out: dict = {"cpu": _cpu(), "cores": os.cpu_count(), "passages": len(texts), "model": args.model}
    root = Path(tempfile.mkdtemp(prefix="colja-bench-distributed-"))
    cluster = None
    try:
        # ---------------------------------------------------------------- build
        t = time.perf_counter()
        one = Index.build(texts, root / "local", model=model)
        local_s = time.perf_counter() - t
        out["build_local_s"] = local_s
        print(f"build  local Index.build            {len(texts) / local_s:8.1f} passages/s  (baseline)")
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 200 << 20})
        cluster.add_node(num_cpus=1, object_store_memory=200 << 20)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        for workers in (1, 2):
            t = time.perf_counter()
            build(texts, root / f"ray{workers}", model=args.model, num_workers=workers,
                  batch_passages=args.batch_passages, ray_address=cluster.address).close()
            s = time.perf_counter() - t
            out[f"build_ray{workers}_s"] = s
            print(f"build  Ray, {workers} worker(s) (1 CPU each) {len(texts) / s:8.1f} passages/s  "
                  f"x{local_s / s:.2f} of local")

        # ---------------------------------------------------------------- size
        stats = one.stats()
        with one.snapshot() as snap:
            in_memory = sum(np.asarray(a).nbytes for a in snap.arrays.values())
        out.update(vectors_per_passage=stats["vectors"] / stats["passages"],
                   disk_bytes_per_passage=stats["bytes_on_disk"] / stats["passages"],
                   memory_bytes_per_passage=in_memory / stats["passages"])
        print(f"size   {stats['vectors'] / stats['passages']:.1f} vectors/passage, "
              f"{stats['bytes_on_disk'] / stats['passages']:.0f} B/passage on disk (document store included), "
              f"{in_memory / stats['passages']:.0f} B/passage of arrays in memory (dim {stats['dim']}, "
              f"{stats['nbits']}-bit)")

        # ---------------------------------------------------------------- search
        def p50_of(index) -> float:
            index.search_embeddings(Q[:1], k=10)  # warm-up
            return _p50(lambda q: index.search_embeddings(q, k=10), Q, args.repeats)

        one.close()
        one = Index.load(root / "local", model=model)  # as a user opens it (not the object the build returned)
        base = p50_of(one)
        out["search_p50_ms_one_index"] = base
        print(f"search one index                     p50 {base:7.2f} ms  (baseline)")
        for shards in (2, 4):
            path = root / f"sharded{shards}"
            ShardedIndex.build(texts, path, shards=shards, model=model).close()
            with ShardedIndex.load(path, model=model) as sharded:
                p = p50_of(sharded)
            with Index.load(path / "shard-000") as shard:
                alone = p50_of(shard)
            out[f"search_p50_ms_{shards}_shards"] = p
            out[f"search_p50_ms_one_of_{shards}_shards"] = alone
            print(f"search {shards} shards (threads)              p50 {p:7.2f} ms  x{p / base:.2f}; "
                  f"one shard alone {alone:.2f} ms")
        with ShardedIndex.load(root / "sharded2", model=model, ray_address=cluster.address) as on_ray:
            p = p50_of(on_ray)
        out["search_p50_ms_2_shards_ray"] = p
        print(f"search 2 shards (Ray actors)          p50 {p:7.2f} ms  x{p / base:.2f}")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
