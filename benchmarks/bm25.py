"""BM25 first stage on jaquad-dev-large: build time, per-query latency and quality.

    python benchmarks/bm25.py [--dataset jaquad-dev-large] [--repeats 3] [--k 10] [--json out.json]

Builds ``BM25Retriever`` over ``title + "\\n" + text`` passages (the reference
recipe), times the build (tokenization + bm25s indexing, median of --repeats),
then searches every query once on one thread and reports p50/p95/mean latency
(query tokenization included). Quality (Recall@1/5/10, nDCG@10, MRR@10) is
printed next to the reference numbers in ``shared/data/bm25_baseline.json``.
Peak RSS is that of the whole process; about 250 MiB of it is the UniDic
dictionary that MeCab memory-maps (file-backed pages, shared by every tagger).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one thread, pinned before numpy loads

import numpy as np  # noqa: E402

import colja  # noqa: E402
from colja.eval import evaluate, load_beir, to_markdown  # noqa: E402
from colja.firststage import BM25Retriever  # noqa: E402

SHARED = Path(os.environ.get("COLJA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10")


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def dictionary_rss_mib() -> float | None:
    """Resident MiB of the memory-mapped MeCab dictionary (file-backed, shared); None off Linux."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    total, in_dict = 0, False
    for line in lines:
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):
            in_dict = len(head) == 6 and "unidic" in head[5]
        elif in_dict and head[0] == "Rss:":
            total += int(head[1])
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="jaquad-dev-large")
    ap.add_argument("--repeats", type=int, default=3, help="index builds to time (the median is reported)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    from importlib.metadata import version

    data = load_beir(SHARED / "data" / args.dataset)
    passages = data.passages()
    qids = list(data.queries)
    queries = [data.queries[q] for q in qids]
    print(f"colja {colja.__version__}, bm25s {version('bm25s')}, fugashi {version('fugashi')}, "
          f"unidic-lite {version('unidic-lite')}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, threads=1")
    print(f"{args.dataset}: {len(passages):,} passages ({sum(map(len, passages)) / len(passages):.0f} chars avg), "
          f"{len(queries):,} queries")

    builds = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        bm25 = BM25Retriever.build(passages, show_progress=False)
        builds.append(time.perf_counter() - t)
    t = time.perf_counter()
    bm25.tokenizer.tokenize_many(passages)
    tokenize_s = time.perf_counter() - t
    build_s = statistics.median(builds)
    print(f"build: median {build_s:.2f} s, min {min(builds):.2f} s over {args.repeats} "
          f"({len(passages) / build_s:,.0f} passages/s; MeCab tokenization alone {tokenize_s:.2f} s), "
          f"vocabulary {bm25.vocab_size:,} words")

    for q in queries[:50]:  # warm-up
        bm25.search(q, args.k)
    lat = np.empty(len(queries))
    hits = []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        hits.append(bm25.search(q, args.k))
        lat[i] = time.perf_counter() - t
    lat_ms = lat * 1e3
    p50, p95, mean = (float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 95)), float(lat_ms.mean()))
    print(f"search (k={args.k}, 1 thread, tokenization included): p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
          f"mean {mean:.3f} ms -> {1e3 / mean:,.0f} queries/s")

    ids = data.doc_ids
    run = {q: {ids[p]: float(s) for p, s in zip(h.pids, h.scores)} for q, h in zip(qids, hits)}
    ours = evaluate(run, data.qrels, METRICS)
    ref_rows = json.loads((SHARED / "data" / "bm25_baseline.json").read_text(encoding="utf-8"))
    ref = next(r for r in ref_rows if r["dir"].endswith("/" + args.dataset))
    reference = {m: ref[m] for m in METRICS}
    print()
    print(to_markdown({"colja BM25": ours, "reference (bm25_baseline.json)": reference,
                       "difference": {m: round(ours[m] - reference[m], 6) + 0.0 for m in METRICS}}))
    dic = dictionary_rss_mib()
    note = f" ({dic:.0f} MiB of it is the memory-mapped UniDic dictionary, file-backed)" if dic else ""
    print(f"peak RSS {peak_rss_mib():.0f} MiB{note}")

    if args.json:
        args.json.write_text(json.dumps({
            "dataset": args.dataset, "passages": len(passages), "queries": len(queries),
            "build_s": builds, "tokenize_s": tokenize_s,
            "latency_ms": {"p50": p50, "p95": p95, "mean": mean}, "metrics": ours, "reference": reference,
        }, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
