"""``colja stats``: what an index holds."""

from __future__ import annotations

import json


def cmd_stats(args) -> int:
    from colja import Index

    index = Index.load(args.index)
    stats = index.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, default=str))
        return 0
    for key, value in stats.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, default=str)
        print(f"{key:>20}: {value}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("stats", help="what an index holds: passages, vectors, centroids, bits, size, model, first stages")
    p.add_argument("index", help="index folder")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_stats)
