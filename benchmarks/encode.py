"""Encoding throughput: length-bucketed vs file-order batching, measured in one run.

    python benchmarks/encode.py [--passages 2000] [--batch-size 32] [--threads 2]

Encodes the first N passages of ../shared/data/jaquad-dev-large with the fixture
model (a 2-layer BERT, so the tokenizer's share of the time is larger than with
a full-size model) and prints passages/s for both orders and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import colja
from colja import ColBERT

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def load_passages(n: int) -> list[str]:
    texts = []
    with open(SHARED / "data" / "jaquad-dev-large" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == n:
                break
    return texts


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(SHARED / "fixtures" / "colbert-tiny-ja" / "model"))
    ap.add_argument("--doc-maxlen", type=int, default=300,
                    help="the fixture's own doc_maxlen is 64, which cuts nearly every passage; 300 is JaColBERTv2.5's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.simplefilter("ignore", colja.TruncationWarning)
    model = ColBERT.from_pretrained(args.model, device="cpu", doc_maxlen=args.doc_maxlen)
    texts = load_passages(args.passages)
    print(f"colja {colja.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={args.threads}, passages={len(texts)}, batch={args.batch_size}, doc_maxlen={model.doc_maxlen}")

    t = time.perf_counter()
    pieces = colja.model.tokenization.wordpiece_ids(model.tokenizer, texts)
    tok_s = time.perf_counter() - t
    print(f"tokenization alone: {len(texts) / tok_s:,.0f} passages/s")

    model.encode_documents(texts[:64], batch_size=args.batch_size, show_progress=False)  # warm-up
    runs = {}
    for name, sort in (("file order", False), ("length-bucketed", True)):
        runs[name] = timed(lambda: model.encode_documents(texts, batch_size=args.batch_size, sort_by_length=sort, show_progress=False), args.repeats)
    for name, secs in runs.items():
        med = statistics.median(secs)
        print(f"{name:>16}: median {med:6.2f}s  min {min(secs):6.2f}s  -> {len(texts) / med:7.1f} passages/s")
    ratio = statistics.median(runs["file order"]) / statistics.median(runs["length-bucketed"])
    print(f"length-bucketed / file order throughput: {ratio:.2f}x")
    lengths = sorted(min(len(p) + 3, model.doc_maxlen) for p in pieces)
    print(f"(tokens per passage after truncation: mean {sum(lengths) / len(lengths):.0f}, "
          f"median {lengths[len(lengths) // 2]}, max {lengths[-1]}; tokenization is included in both timings)")


if __name__ == "__main__":
    main()
