"""Load test of ``colja serve`` on loopback against in-process search of the same queries, in one run.

    python benchmarks/serve.py [--model models/colja-small-ja] [--data examples/data/jaquad-sample]
                               [--requests 240] [--clients 1 4 16] [--window-ms 2]

Builds (once, under ``bench-data/indexes/serve-jaquad-sample``) a 2-bit index of
the demo collection with the shipped small model, then measures, in this run:

* ``in-process``: ``Index.search(q, k=10)`` one query at a time in this process
  (query encoding included): the baseline;
* ``HTTP``: ``POST /v1/indexes/bench/search`` from 1, 4 and 16 concurrent clients
  (threads, one keep-alive connection each), a fixed number of requests in all,
  against a ``colja serve`` subprocess with micro-batching on (``--max-batch 32``,
  ``--batch-window-ms`` = ``--window-ms``) and off (``--max-batch 1``).

Prints requests/s, p50/p99 latency and errors per row, then the figures the
issue aims at: p50 overhead of HTTP over in-process at 1 client, and
requests/s at 16 clients with micro-batching over without. The load generator
runs on the same machine as the server (its CPU time competes with it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_MODEL = REPO / "models" / "colja-small-ja"
DEFAULT_DATA = REPO / "examples" / "data" / "jaquad-sample"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_index(model: str, data: Path, path: Path) -> None:
    from colja import Index, TruncationWarning

    if (path / "CURRENT").exists():
        return
    corpus = _read_jsonl(data / "corpus.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        Index.build([f"{d['title']}\n{d['text']}" for d in corpus], path, model=model,
                    doc_ids=[d["_id"] for d in corpus], metadata=[{"title": d["title"]} for d in corpus],
                    overwrite=True, show_progress=False)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def in_process(path: Path, model: str, queries: list[str]) -> dict:
    import torch

    from colja import ColBERT, Index

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    index = Index.load(path, model=ColBERT.from_pretrained(model, device="cpu"))
    for q in queries[:10]:
        index.search(q, k=10)
    times = []
    start = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        index.search(q, k=10)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    index.close()
    return {"rps": len(queries) / wall, "p50": percentile(times, 50), "p99": percentile(times, 99), "errors": 0}


def start_server(path: Path, model: str, window_ms: float, max_batch: int = 32, workers: int = 1
                 ) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "colja.cli", "serve", "--index", f"bench={path}", "--model", model,
           "--port", str(port), "--batch-window-ms", str(window_ms), "--max-batch", str(max_batch),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", COLJA_DISABLE_PROGRESS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"colja serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("colja serve did not become ready")


def load(url: str, queries: list[str], clients: int, requests: int) -> dict:
    import httpx

    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker():
        with httpx.Client(base_url=url, timeout=60) as http:
            http.post("/v1/indexes/bench/search", json={"query": queries[0], "k": 10})  # connect
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    ok = http.post("/v1/indexes/bench/search", json={"query": queries[i % len(queries)], "k": 10})
                    failed = ok.status_code != 200
                except httpx.HTTPError:
                    failed = True
                elapsed = time.perf_counter() - t
                with lock:
                    times.append(elapsed)
                    errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"rps": requests / wall, "p50": percentile(times, 50), "p99": percentile(times, 99), "errors": errors[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--index", default=str(REPO / "bench-data" / "indexes" / "serve-jaquad-sample"))
    p.add_argument("--requests", type=int, default=240, help="requests per row (all clients together)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--window-ms", type=float, default=2.0, help="micro-batching window of the 'on' server")
    p.add_argument("--repeats", type=int, default=1, help="repeat each row and keep the median")
    p.add_argument("--workers", type=int, default=1, help="the server's --workers")
    args = p.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("COLJA_DISABLE_PROGRESS", "1")
    path = Path(args.index)
    build_index(args.model, Path(args.data), path)
    queries = [q["text"] for q in _read_jsonl(Path(args.data) / "queries.jsonl")]

    def median_of(run) -> dict:
        rows = [run() for _ in range(args.repeats)]
        return {k: statistics.median(r[k] for r in rows) for k in rows[0]}

    rows: dict[str, dict] = {"in-process, 1 caller": median_of(lambda: in_process(path, args.model, queries[: args.requests]))}
    for batching in (True, False):
        label = f"batching {'on (' + format(args.window_ms, 'g') + ' ms)' if batching else 'off'}"
        proc, url = start_server(path, args.model, args.window_ms, 32 if batching else 1, args.workers)
        try:
            load(url, queries, 4, 40)  # warm-up
            for c in args.clients:
                rows[f"HTTP {label}, {c} client{'s' if c > 1 else ''}"] = median_of(
                    lambda: load(url, queries, c, args.requests))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    print(f"\n{cpu}, {os.cpu_count()} cores; {args.requests} requests per row, k=10, model {Path(args.model).name}")
    print(f"{'':44} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in rows.items():
        print(f"{name:44} {r['rps']:8.1f} {r['p50'] * 1000:8.2f} {r['p99'] * 1000:8.2f} {int(r['errors']):7d}")
    base = rows["in-process, 1 caller"]
    on1 = rows.get(f"HTTP batching on ({args.window_ms:g} ms), 1 client")
    off1 = rows.get("HTTP batching off, 1 client")
    if on1 and off1:
        print(f"\np50 overhead of HTTP over in-process at 1 client: {(on1['p50'] - base['p50']) * 1000:+.2f} ms "
              f"(batching on), {(off1['p50'] - base['p50']) * 1000:+.2f} ms (off)")
    c = max(args.clients)
    on, off = rows.get(f"HTTP batching on ({args.window_ms:g} ms), {c} clients"), rows.get(f"HTTP batching off, {c} clients")
    if on and off:
        print(f"requests/s at {c} clients, batching on / off: {on['rps'] / off['rps']:.2f}x")
    print(f"errors in all rows: {int(sum(r['errors'] for r in rows.values()))}")


if __name__ == "__main__":
    main()
