"""GPU against CPU, end to end, in one run: encoding, building and searching.

    python benchmarks/gpu.py [--gen ../shared/bench/gen_data.py] [--sizes 10000,50000]
                             [--queries 200] [--out gpu-results.json]

* encoding: passages/s of a bert-base-sized ColBERT (12 layers, 768 hidden, random
  weights, 128-d projection; token ids drawn at random, so tokenisation, which runs
  on the CPU either way, is excluded) at 180 tokens per passage, fp32 and bf16
  autocast on the GPU, fp32 on the CPU;
* build: ``Index.from_embeddings`` of the generated collection on the GPU and the CPU,
  with the fraction of identical codes;
* search: p50 / p95 of one query per call and queries/s of batches of 32, GPU and
  CPU on the same index, and top-10 agreement between them.

Writes every figure to ``--out`` (JSON) and prints a table. Exits 0 with a message
when torch sees no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_encoding(device: str, precision: str, batches: int, batch: int = 64, length: int = 180) -> float:
    """Passages/s of a bert-base-sized ColBERT forward (+ projection + L2 norm)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=32768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)
    bert = BertModel(config, add_pooling_layer=False).eval().to(device)
    linear = torch.nn.Linear(768, 128, bias=False).to(device)
    ids = torch.randint(5, 32768, (batch, length), device=device)
    mask = torch.ones_like(ids)

    def step() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                    enabled=precision == "bf16"):
            out = linear(bert(input_ids=ids, attention_mask=mask).last_hidden_state)
            return torch.nn.functional.normalize(out.float(), dim=-1)

    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(device)
    return batches * batch / (time.perf_counter() - start)


def generate(gen: Path, name: str, docs: int, queries: int, out: Path) -> Path:
    folder = out / name
    if not (folder / "embs.npy").exists():
        subprocess.run([sys.executable, str(gen), "--name", name, "--docs", str(docs), "--queries", str(queries),
                        "--out", str(out), "--no-gt"], check=True)
    return folder


def load_collection(folder: Path) -> tuple[list[torch.Tensor], torch.Tensor]:
    embs = torch.from_numpy(np.load(folder / "embs.npy"))
    doclens = np.load(folder / "doclens.npy").tolist()
    return list(embs.split(doclens)), torch.from_numpy(np.load(folder / "queries.npy")).float()


def bench_search(index, Q: torch.Tensor, device: str) -> dict:
    for i in range(min(5, Q.shape[0])):  # warm-up (kernel build, GPU copies)
        index.search_embeddings(Q[i], 10)
    times = []
    for i in range(Q.shape[0]):
        _sync(device)
        start = time.perf_counter()
        index.search_embeddings(Q[i], 10)
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    start = time.perf_counter()
    for s in range(0, Q.shape[0], 32):
        index.search_embeddings(Q[s : s + 32], 10)
    _sync(device)
    qps = Q.shape[0] / (time.perf_counter() - start)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))], "batch32_qps": qps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen", default=os.environ.get("COLJA_GEN_DATA", str(REPO.parent / "shared" / "bench" / "gen_data.py")))
    ap.add_argument("--sizes", default="10000,50000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default="gpu-results.json")
    ap.add_argument("--data", default=None, help="folder for generated collections (default: a temp folder)")
    ap.add_argument("--encode-batches", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (run this on a GPU machine: scripts/gpu_check.sh)")
        return 0
    from colja import Index, kernels

    results: dict = {"gpu": torch.cuda.get_device_name(0), "cpu": platform.processor() or platform.machine(),
                     "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "encode": {}, "sets": {}}
    enc = results["encode"]
    enc["gpu_fp32"] = bench_encoding("cuda", "fp32", args.encode_batches)
    enc["gpu_bf16"] = bench_encoding("cuda", "bf16", args.encode_batches)
    enc["cpu_fp32"] = bench_encoding("cpu", "fp32", 2, batch=16)
    print(f"encoding passages/s (bert-base, 180 tokens): GPU fp32 {enc['gpu_fp32']:.0f}, GPU bf16 {enc['gpu_bf16']:.0f}, "
          f"CPU fp32 {enc['cpu_fp32']:.1f} -> GPU bf16 = {enc['gpu_bf16'] / enc['cpu_fp32']:.0f}x CPU")
    results["kernels"] = {"cpu": kernels.backend("cpu"), "cuda": kernels.backend("cuda")}

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="colja-gpu-"))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        name = f"gen{size}"
        docs, Q = load_collection(generate(Path(args.gen), name, size, args.queries, data))
        row: dict = {"passages": size, "vectors": int(sum(d.shape[0] for d in docs))}
        timings = {}
        for device in ("cuda", "cpu"):
            start = time.perf_counter()
            Index.from_embeddings(docs, data / f"{name}-{device}", device=device, overwrite=True, show_progress=False)
            timings[device] = time.perf_counter() - start
        row["build_s"] = timings
        a, b = Index.load(data / f"{name}-cpu"), Index.load(data / f"{name}-cuda")
        with a.snapshot() as sa, b.snapshot() as sb:
            row["same_codes"] = float((sa.codes == sb.codes).float().mean())
        on_cpu, on_gpu = Index.load(data / f"{name}-cpu", device="cpu"), Index.load(data / f"{name}-cpu", device="cuda")
        row["search_cpu"] = bench_search(on_cpu, Q, "cpu")
        row["search_gpu"] = bench_search(on_gpu, Q, "cuda")
        ra, rb = on_cpu.search_embeddings(Q, 10), on_gpu.search_embeddings(Q, 10)
        row["top10_agreement_gpu_vs_cpu"] = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ra.pids, rb.pids)]))
        row["max_score_diff"] = float(np.nanmax(np.abs(ra.scores - rb.scores)))
        results["sets"][name] = row
        print(f"{name}: build GPU {timings['cuda']:.1f} s vs CPU {timings['cpu']:.1f} s (same codes {row['same_codes']:.5f}); "
              f"search p50 GPU {row['search_gpu']['p50_ms']:.2f} ms vs CPU {row['search_cpu']['p50_ms']:.2f} ms; "
              f"batch-32 q/s GPU {row['search_gpu']['batch32_qps']:.0f} vs CPU {row['search_cpu']['batch32_qps']:.0f}; "
              f"top-10 agreement {row['top10_agreement_gpu_vs_cpu']:.4f}, max score diff {row['max_score_diff']:.2e}")
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
