"""``colja mine-negatives``: hard negatives for a BEIR folder, for ``colja train``.

    colja mine-negatives --data jaquad-train --out negatives.jsonl --method bm25 --k 30 --skip-top 2
    colja train --data jaquad-train --negatives negatives.jsonl --output my-colbert
"""

from __future__ import annotations

import argparse
import sys


def cmd_mine_negatives(args: argparse.Namespace) -> int:
    from colja.errors import ColjaError
    from colja.train.mining import mine_negatives, write_negatives

    if args.method == "index" and not args.index:
        print("colja mine-negatives: error: --method index needs --index PATH (a colja index of the same corpus)",
              file=sys.stderr)
        return 2
    try:
        rows = mine_negatives(args.data, method=args.method, k=args.k, skip_top=args.skip_top, index=args.index,
                              split=args.split, show_progress=False if args.no_progress else None)
    except ColjaError:
        raise
    except (ValueError, FileNotFoundError) as e:
        print(f"colja mine-negatives: error: {e}", file=sys.stderr)
        return 2
    path = write_negatives(rows, args.out)
    print(f"wrote negatives for {len(rows)} queries to {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("mine-negatives", help="mine hard negatives for a BEIR folder (BM25 or a colja index)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv)")
    p.add_argument("--out", required=True, help="output JSONL: {query_id, negatives: [doc ids], negative_scores}")
    p.add_argument("--method", choices=("bm25", "index"), default="bm25", help="retriever (default bm25)")
    p.add_argument("--index", help="colja index folder for --method index (built from the same corpus and doc ids)")
    p.add_argument("--k", type=int, default=30, help="negatives per query (default 30)")
    p.add_argument("--skip-top", type=int, default=0,
                   help="skip this many top non-relevant hits first, which are often unlabelled positives (default 0)")
    p.add_argument("--split", default="test", help="qrels/<split>.tsv when the folder has no qrels.tsv")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mine_negatives)
