"""Readers beside a writer, and threads sharing one model: latency, throughput and errors.

    python benchmarks/concurrency.py [--docs 5000] [--seconds 8] [--readers 1 2 4]

Part 1, processes. Builds (once, under ``bench-data/indexes/concurrency-<docs>``) a
2-bit index of ``../shared/bench/gen_data.py`` vectors, then, for 1, 2 and 4 reader
processes, runs each configuration twice in one run: readers alone, and readers
beside a writer process that commits small writes (add one document, delete it)
as fast as it can. Each reader searches one query per call (``search_embeddings``,
k=10, 1 torch thread), calls ``refresh()`` every 10 searches and opens a fresh
``Index.load`` every 25; every exception counts as an error. Printed: searches,
p50 / p99 ms, errors, the writer's commits per second, and p50 beside the writer
as a ratio of p50 alone.

Part 2, threads. One ``ColBERT`` object (the shared fixture checkpoint: a tiny
model, so tokenization — the part that takes the per-tokenizer lock — weighs
most) encodes the same passages from 1 thread and from 2 threads at once:
passages per second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLJA_SHARED", REPO.parent / "shared"))


def data(docs: int) -> Path:
    out = REPO / "bench-data"
    folder = out / f"conc{docs}"
    if not (folder / "embs.npy").exists():
        subprocess.run([sys.executable, str(SHARED / "bench" / "gen_data.py"), "--name", f"conc{docs}", "--docs",
                        str(docs), "--queries", "200", "--seed", "7", "--no-gt", "--out", str(out)], check=True)
    return folder


def build(folder: Path, docs: int) -> Path:
    from colja import Index

    path = REPO / "bench-data" / "indexes" / f"concurrency-{docs}"
    if not (path / "CURRENT").exists():
        embs = np.load(folder / "embs.npy").astype(np.float32)
        doclens = np.load(folder / "doclens.npy")
        Index.from_embeddings(np.split(embs, np.cumsum(doclens)[:-1]), path, overwrite=True).close()
    return path


def reader(path: str, queries: str, stop_at: float, out: "mp.Queue") -> None:
    import torch

    from colja import Index

    torch.set_num_threads(1)
    Q = torch.from_numpy(np.load(queries).astype(np.float32))
    times, errors, messages = [], 0, []
    index = Index.load(path)
    i = 0
    while time.time() < stop_at:
        try:
            if i % 25 == 24:
                index.close()
                index = Index.load(path)
            elif i % 10 == 9:
                index.refresh()
            t = time.perf_counter()
            result = index.search_embeddings(Q[i % len(Q)], 10)
            times.append(time.perf_counter() - t)
            if len(result.pids[0]) != 10:
                raise AssertionError(f"{len(result.pids[0])} hits")
        except Exception as exc:  # counted, not raised: the figure is the error count
            errors += 1
            messages.append(f"{type(exc).__name__}: {exc}"[:200])
        i += 1
    out.put({"times": times, "errors": errors, "messages": messages[:3]})


def writer(path: str, embs: str, stop_at: float, out: "mp.Queue") -> None:
    import torch

    from colja import Index

    torch.set_num_threads(1)
    vectors = np.load(embs)[:40].astype(np.float32)
    index = Index.load(path)
    commits, errors, i = 0, 0, 0
    start = time.time()
    while time.time() < stop_at:
        try:
            index.add(embeddings=[vectors], doc_ids=[f"bench-w{i}"])
            index.delete([f"bench-w{i}"])
            commits += 2
        except Exception:
            errors += 1
        i += 1
    out.put({"commits_per_s": commits / max(1e-9, time.time() - start), "errors": errors})


def run_processes(path: Path, folder: Path, n_readers: int, with_writer: bool, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    queries = REPO / "bench-data" / f"conc-queries.npy"
    np.save(queries, np.load(folder / "queries.npy"))
    stop_at = time.time() + seconds + 3.0  # children need ~2-3 s to import
    procs = [ctx.Process(target=reader, args=(str(path), str(queries), stop_at, out)) for _ in range(n_readers)]
    wq: mp.Queue = ctx.Queue()
    if with_writer:
        procs.append(ctx.Process(target=writer, args=(str(path), str(folder / "embs.npy"), stop_at, wq)))
    for p in procs:
        p.start()
    results = [out.get() for _ in range(n_readers)]
    written = wq.get() if with_writer else None
    for p in procs:
        p.join()
    times = np.array([t for r in results for t in r["times"]]) * 1e3
    return {"searches": len(times), "p50": float(np.percentile(times, 50)) if len(times) else float("nan"),
            "p99": float(np.percentile(times, 99)) if len(times) else float("nan"),
            "errors": sum(r["errors"] for r in results),
            "messages": [m for r in results for m in r["messages"]][:3],
            "commits_per_s": written["commits_per_s"] if written else 0.0,
            "writer_errors": written["errors"] if written else 0}


def run_threads(repeats: int = 2) -> tuple[float, float]:
    import torch

    from colja import ColBERT

    torch.set_num_threads(2)
    model = ColBERT.from_pretrained(SHARED / "fixtures" / "colbert-tiny-ja" / "model", device="cpu")
    rows = [json.loads(line)["text"] for line in (SHARED / "data" / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")]
    texts = rows[:512]
    model.encode_documents(texts[:32])  # warm up

    def timed(n_threads: int) -> float:
        parts = [texts[i::n_threads] for i in range(n_threads)]
        best = float("inf")
        for _ in range(repeats):
            threads = [threading.Thread(target=model.encode_documents, args=(p,), kwargs={"batch_size": 32})
                       for p in parts]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            best = min(best, time.perf_counter() - t)
        return len(texts) / best

    return timed(1), timed(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--readers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("COLJA_DISABLE_PROGRESS", "1")
    folder = data(args.docs)
    path = build(folder, args.docs)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; index: {args.docs} passages; {args.seconds:.0f} s per configuration\n")
    print("| readers | writer | searches | p50 ms | p99 ms | errors | writer commits/s | p50 vs alone |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in args.readers:
        alone = run_processes(path, folder, n, False, args.seconds)
        busy = run_processes(path, folder, n, True, args.seconds)
        for label, r in (("no", alone), ("yes", busy)):
            ratio = r["p50"] / alone["p50"]
            print(f"| {n} | {label} | {r['searches']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
                  f"{r['commits_per_s']:.1f} | {ratio:.2f}× |", flush=True)
            if r["messages"]:
                print("   errors:", r["messages"])
    one, two = run_threads()
    print(f"\none ColBERT object, encode_documents of 512 passages: 1 thread {one:.1f} passages/s, "
          f"2 threads {two:.1f} passages/s ({two / one:.2f}×)")


if __name__ == "__main__":
    main()
