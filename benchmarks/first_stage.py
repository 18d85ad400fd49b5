"""First stages and reranking on real Japanese data: quality and per-query latency, in one run.

    python benchmarks/first_stage.py                       # jaquad-dev-large, fixture + small model
    python benchmarks/first_stage.py --data ../shared/data/jaquad-dev ../shared/data/jsquad-dev \\
        --models models/colja-small-ja --json results.json

For each dataset and model: an index of the corpus (title + text passages, 2
bits), then ``colja.eval.runner.evaluate_beir`` for BM25 alone, BM25 → exact
MaxSim rerank (top 100 BM25 candidates), hybrid (RRF of PLAID and BM25, then
MaxSim) and the model alone through PLAID. Latency is the median of single
query searches with query encoding included (``ms_per_query``). BM25 does not
depend on the model; it is printed once per dataset.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
MODELS = {"fixture (random 2-layer)": SHARED / "fixtures" / "colbert-tiny-ja" / "model",
          "colja-small-ja": REPO / "models" / "colja-small-ja"}
METRICS = ["recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10"]


def main() -> None:
    from colja import __version__
    from colja.eval import to_markdown
    from colja.eval.runner import evaluate_beir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=[str(SHARED / "data" / "jaquad-dev-large")])
    ap.add_argument("--models", nargs="+", default=None, help="model folders (default: the fixture and colja-small-ja)")
    ap.add_argument("--systems", nargs="+", default=["bm25", "bm25+maxsim", "hybrid", "plaid"])
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {Path(m).name: Path(m) for m in args.models} if args.models else MODELS
    print(f"# colja {__version__}, torch {torch.__version__}, {platform.machine()} {torch.get_num_threads()} threads")
    report = []
    for data in args.data:
        tables = {}
        for m, (label, path) in enumerate(models.items()):
            systems = args.systems if m == 0 else [s for s in args.systems if s != "bm25"]
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # passages cut at doc_maxlen
                results = evaluate_beir(data, model=str(path), systems=systems, metrics=METRICS,
                                        max_queries=args.max_queries, latency_queries=args.latency_queries,
                                        show_progress=False)
            seconds = time.perf_counter() - t
            for system, scores in results.items():
                name = system if system == "bm25" else f"{label}: {system}"
                tables[name] = scores
                report.append({"data": Path(data).name, "model": label, "system": system, **scores})
            print(f"# {Path(data).name} / {label}: built and evaluated in {seconds:.0f} s", flush=True)
        print(f"\n## {Path(data).name}\n")
        print(to_markdown(tables))
        bm25 = tables.get("bm25")
        if bm25:
            for name, scores in tables.items():
                if name != "bm25":
                    print(f"{name}: nDCG@10 {scores['ndcg@10'] - bm25['ndcg@10']:+.4f} vs BM25, "
                          f"latency x{scores['ms_per_query'] / bm25['ms_per_query']:.0f} of BM25's")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
