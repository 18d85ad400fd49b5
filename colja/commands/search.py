"""``colja search``: query an index from the command line."""

from __future__ import annotations

import json
import sys
import time


def cmd_search(args) -> int:
    from colja import Index

    try:
        where = _parse_where(args.where)
    except ValueError as e:
        print(f"colja search: error: {e}", file=sys.stderr)
        return 2
    from colja.distributed import ShardedIndex, is_sharded

    if is_sharded(args.index):
        index = ShardedIndex.load(args.index, model=args.model, mmap=args.mmap)
    else:
        index = Index.load(args.index, model=args.model, mmap=args.mmap)
    overrides: dict = {"where": where, "group_by_doc": args.group_by_doc}
    if args.exhaustive:
        overrides["exhaustive"] = True
    if args.first_stage != "plaid":
        overrides.update(first_stage=args.first_stage, candidates=args.candidates)
    try:
        index.search(args.queries[0], k=1, **overrides)  # warm-up: model, kernels; checks the options
    except ValueError as e:
        print(f"colja search: error: {e}", file=sys.stderr)
        return 2
    for query in args.queries:
        t = time.perf_counter()
        hits = index.search(query, k=args.k, **overrides)
        ms = (time.perf_counter() - t) * 1000
        if args.json:
            print(json.dumps({"query": query, "ms": round(ms, 2), "hits": [_hit_json(h) for h in hits]},
                             ensure_ascii=False))
            continue
        print(f"Q: {query}  ({ms:.1f} ms, query encoding included)")
        if not hits:
            print("  0 hits: " + ("no live passage matches --where " + args.where if where is not None
                                  else "the index holds no live passage"))
        for h in hits:
            text = (h.text or "").replace("\n", " ")
            print(f"  {h.rank:>3}. {h.score:8.3f}  [{h.doc_id}] {text[:args.width]}{'…' if len(text) > args.width else ''}")
    return 0


def _hit_json(h) -> dict:
    row = {"rank": h.rank, "doc_id": h.doc_id, "score": h.score, "normalized_score": h.normalized_score,
           "text": h.text, "metadata": h.metadata}
    if h.parent_id is not None:
        row.update(parent_id=h.parent_id, span=list(h.span) if h.span else None)
    return row


def _parse_where(text: str | None) -> dict | None:
    """``--where '{"source": "wiki"}'`` → the filter dict of ``Index.search(where=...)``."""
    if text is None:
        return None
    try:
        where = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--where must be a JSON object such as '{{\"source\": \"wiki\"}}'; "
                         f"could not parse {text!r}: {e.msg}") from None
    if not isinstance(where, dict):
        raise ValueError(f"--where must be a JSON object (a metadata filter), got {type(where).__name__}: {text!r}")
    return where


def add_parser(sub) -> None:
    from colja.commands._args import positive_int

    p = sub.add_parser("search", help="search an index")
    p.add_argument("queries", nargs="+", help="one or more queries")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("-k", type=positive_int, default=10, help="hits per query (default 10)")
    p.add_argument("--model", default=None, help="override the model recorded in the index")
    p.add_argument("--exhaustive", action="store_true", help="score every passage exactly")
    p.add_argument("--first-stage", default="plaid",
                   help="plaid (default), a first stage stored in the index (bm25, dense, static), or hybrid")
    p.add_argument("--candidates", type=positive_int, default=None, help="first-stage candidates reranked (default max(100, 10k))")
    p.add_argument("--where", default=None, metavar="JSON",
                   help='metadata filter as JSON, e.g. \'{"source": "wiki"}\' or \'{"year": {"$gte": 2020}}\'')
    p.add_argument("--group-by-doc", action="store_true",
                   help="best passage of each document (indexes built with --split)")
    p.add_argument("--mmap", action="store_true", help="memory-map the index instead of loading it")
    p.add_argument("--json", action="store_true", help="one JSON line per query")
    p.add_argument("--width", type=positive_int, default=80, help="characters of passage text to show")
    p.set_defaults(func=cmd_search)
