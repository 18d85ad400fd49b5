"""Search latency and encoding speed while another process uses the CPU, per OpenMP wait policy.

    python benchmarks/contention.py [--index DIR --model M --data BEIR_FOLDER] [--loads idle python encoder]

By default it builds (once, under ``bench-data/indexes/contention-jsquad-dev``) a
2-bit index of ``../shared/data/jsquad-dev`` with ``models/colja-small-ja`` and
times, in one run, in a fresh subprocess per configuration (thread count and OpenMP
wait policy, which libgomp reads once at start-up):

* ``search`` — p50/p90 of one-query ``search_embeddings`` (query encoding excluded),
  on an idle machine, beside a busy pure-Python process (one core) and beside
  another OpenMP program (an indexing job: 2-thread ``encode_documents`` in a loop,
  libgomp's default policy);
* ``encode`` — passages per second of ``encode_documents`` on the idle machine.

Configurations: 2 torch threads with libgomp's default wait policy (idle threads
spin a while, then sleep), with ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once) and
``ACTIVE`` (always spin), and 1 thread. Ratios are against the first, measured in
the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFIGS = {  # name -> (environment changes, torch threads)
    "2 threads": ({}, 2),
    "2 threads PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "2 threads ACTIVE": ({"OMP_WAIT_POLICY": "ACTIVE"}, 2),
    "1 thread": ({}, 1),
}
BASE = "2 threads"


def busy_python(stop_at: float, model: str, texts: list[str]) -> None:
    """A pure-Python loop on one core (``model`` and ``texts`` unused: every load takes the same arguments)."""
    x = 0
    while time.time() < stop_at:
        x += 1


def busy_encoder(stop_at: float, model: str, texts: list[str]) -> None:
    """Another OpenMP program: an indexing job encoding passages with 2 threads (libgomp's default policy)."""
    os.environ.pop("OMP_WAIT_POLICY", None)
    import torch

    from colja import ColBERT

    torch.set_num_threads(2)
    encoder = ColBERT.from_pretrained(model, device="cpu")
    while time.time() < stop_at:
        encoder.encode_documents(texts, show_progress=False)


LOADS = {"idle": [], "python": [busy_python], "encoder": [busy_encoder]}


def worker(args) -> None:
    """Runs in a fresh process: the policy is fixed before libgomp loads."""
    import statistics

    import torch

    from colja import Index
    from colja.eval.datasets import load_beir

    torch.set_num_threads(args.threads)
    index = Index.load(args.index, model=args.model)
    data = load_beir(args.data)
    queries = list(data.queries.values())[: args.queries]
    Q = index.model.encode_queries(queries)
    index.search_embeddings(Q[0], 10)  # warm-up: kernels, arrays
    passages = data.passages()[: args.passages]
    out = {"policy_seen": os.environ.get("OMP_WAIT_POLICY", "(unset)")}
    ctx = mp.get_context("spawn")  # a fresh interpreter: the neighbour loads its own libgomp settings
    for load in args.loads:
        procs = [ctx.Process(target=fn, args=(time.time() + 600, args.model, passages[:64]), daemon=True)
                 for fn in LOADS[load]]
        for p in procs:
            p.start()
        time.sleep(8 if procs else 0)  # the neighbour is up and busy
        times = []
        for i in range(len(queries)):
            t = time.perf_counter()
            index.search_embeddings(Q[i], 10)
            times.append((time.perf_counter() - t) * 1000)
        for p in procs:
            p.terminate()
            p.join()
        times.sort()
        out[f"search_load{load}"] = {"p50": statistics.median(times), "p90": times[int(0.9 * len(times))]}
    index.model.encode_documents(passages[:32], show_progress=False)
    t = time.perf_counter()
    index.model.encode_documents(passages, show_progress=False)
    out["encode_per_s"] = len(passages) / (time.perf_counter() - t)
    print("RESULT " + json.dumps(out))


def run_config(name: str, args) -> dict:
    changes, threads = CONFIGS[name]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(changes)
    cmd = [sys.executable, __file__, "--worker", "--index", args.index, "--model", args.model, "--data", args.data,
           "--threads", str(threads), "--queries", str(args.queries), "--passages", str(args.passages),
           "--loads", *args.loads]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker for {name!r} failed:\n{done.stderr[-3000:]}")


def ensure_index(args) -> None:
    if (Path(args.index) / "CURRENT").exists():
        return
    from colja import Index
    from colja.eval.datasets import load_beir

    data = load_beir(args.data)
    Index.build(data.passages(), args.index, model=args.model, doc_ids=data.doc_ids, nbits=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default=str(REPO / "bench-data" / "indexes" / "contention-jsquad-dev"))
    p.add_argument("--model", default=str(REPO / "models" / "colja-small-ja"))
    p.add_argument("--data", default=str(SHARED / "data" / "jsquad-dev"))
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--passages", type=int, default=600)
    p.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    ensure_index(args)
    print(f"index {args.index}, {args.queries} queries, {os.cpu_count()} CPUs")
    results = {name: run_config(name, args) for name in CONFIGS}
    base = results[BASE]
    print(f"{'config':<18} {'OMP_WAIT_POLICY':<16}" + "".join(f" {'p50 ' + n:>13}" for n in args.loads)
          + f" {'encode/s':>10}")
    for name, res in results.items():
        cells = "".join(f" {res[f'search_load{n}']['p50']:>10.2f} ms" for n in args.loads)
        print(f"{name:<18} {res['policy_seen']:<16}{cells} {res['encode_per_s']:>10.1f}")
    for name, res in results.items():
        if name == BASE:
            continue
        ratios = ", ".join(f"{n}: {base[f'search_load{n}']['p50'] / res[f'search_load{n}']['p50']:.2f}x"
                           for n in args.loads)
        print(f"{name}: search p50 speed-up vs {BASE} — {ratios}; "
              f"encoding {res['encode_per_s'] / base['encode_per_s']:.2f}x")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
