"""``colja rerank``: sort candidate passages for a query by MaxSim."""

from __future__ import annotations

import json


def cmd_rerank(args) -> int:
    from colja import rerank
    from colja.commands._files import read_collection

    collection = read_collection(args.passages, text_field=args.text_field)
    if not collection.texts:
        print(f"0 hits: {args.passages} holds no passages")
        return 0
    hits = rerank(args.query, collection.texts, k=args.k, model=args.model, doc_ids=collection.doc_ids)
    for h in hits:
        doc_id = h.doc_id
        if args.json:
            print(json.dumps({"rank": h.rank, "index": h.pid, "doc_id": doc_id, "score": h.score,
                              "normalized_score": h.normalized_score, "text": h.text}, ensure_ascii=False))
        else:
            text = h.text.replace("\n", " ")
            print(f"{h.rank:>3}. {h.score:8.3f} ({h.normalized_score:.3f})  [{doc_id}] {text[:80]}")
    return 0


def add_parser(sub) -> None:
    from colja.commands._args import positive_int
    from colja.model.encoder import DEFAULT_MODEL

    p = sub.add_parser("rerank", help="rerank candidate passages (a file) for one query")
    p.add_argument("query", help="the question")
    p.add_argument("passages", help=".jsonl / .csv / .tsv / text file of candidates")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"ColBERT model folder or hub id (default {DEFAULT_MODEL})")
    p.add_argument("-k", type=positive_int, default=None, help="keep the best k (default all)")
    p.add_argument("--text-field", default="text", help="the field holding the passage text (.jsonl / .csv; default text)")
    p.add_argument("--json", action="store_true", help="one JSON line per hit")
    p.set_defaults(func=cmd_rerank)
