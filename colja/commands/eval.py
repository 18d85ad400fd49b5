"""``colja eval``: Recall / nDCG / MRR / MAP of colja's systems on a BEIR folder or a reranking set.

    colja eval --data ../shared/data/jaquad-dev --model models/colja-small-ja \\
        --systems plaid bm25 bm25+maxsim hybrid --json results.json --markdown results.md
    colja eval --reranking jqara.jsonl --model answerdotai/JaColBERTv2.5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_eval(args: argparse.Namespace) -> int:
    from colja.eval import to_markdown
    from colja.eval.runner import check_systems, evaluate_beir, evaluate_reranking

    if bool(args.data) == bool(args.reranking):
        print("colja eval: error: give exactly one of --data (a BEIR folder) or --reranking (a JSONL file)",
              file=sys.stderr)
        return 2
    try:
        if args.data:
            check_systems(args.systems)
            results = evaluate_beir(args.data, model=args.model, systems=args.systems, k=args.k, metrics=args.metrics,
                                    index_path=args.index, nbits=args.nbits, dense_model=args.dense_model,
                                    static_model=args.static_model, max_queries=args.max_queries,
                                    latency_queries=args.latency_queries,
                                    show_progress=False if args.no_progress else None)
        else:
            results = evaluate_reranking(args.reranking, model=args.model, metrics=args.metrics,
                                         max_queries=args.max_queries)
    except (ValueError, FileNotFoundError) as e:
        print(f"colja eval: error: {e}", file=sys.stderr)
        return 2
    table = to_markdown(results)
    report = {"data": args.data or args.reranking, "model": args.model, "k": args.k, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


def add_parser(sub) -> None:
    from colja.eval.metrics import DEFAULT_METRICS
    from colja.eval.runner import SYSTEMS

    p = sub.add_parser("eval", help="evaluate retrieval on a BEIR folder or a reranking set",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv or qrels/test.tsv)")
    p.add_argument("--reranking", help="reranking JSONL: {query, candidates: [{id, text, label}]} per line")
    p.add_argument("--model", required=True, help="ColBERT model (hub id or folder)")
    p.add_argument("--systems", nargs="+", default=["plaid", "bm25", "bm25+maxsim", "hybrid"],
                   help=f"systems to evaluate, from: {', '.join(SYSTEMS)}")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), help="e.g. recall@10 ndcg@10 mrr@10 map@100")
    p.add_argument("-k", type=int, default=None, help="hits retrieved per query (default: the largest metric cutoff)")
    p.add_argument("--index", help="index folder to reuse or create (default: a temporary one)")
    p.add_argument("--nbits", type=int, default=2, choices=(1, 2, 4), help="residual bits of the index built for the evaluation (default 2)")
    p.add_argument("--dense-model", help="sentence-transformers model for the dense systems")
    p.add_argument("--static-model", help="static embedding model for the static systems")
    p.add_argument("--max-queries", type=int, help="evaluate the first N queries only")
    p.add_argument("--latency-queries", type=int, default=100, help="single-query searches timed per system")
    p.add_argument("--json", help="write the results (metrics + ms_per_query per system) to this JSON file")
    p.add_argument("--markdown", help="write the markdown table to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)
