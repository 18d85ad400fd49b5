"""``colja add``: add documents from a file to an existing index (prints the new ids)."""

from __future__ import annotations

import sys

from colja.commands._args import add_document_options, non_negative_int, positive_int


def cmd_add(args) -> int:
    from colja import Index
    from colja.commands._files import read_collection

    if not args.split and (args.max_tokens is not None or args.overlap):
        raise SystemExit("colja add: error: --max-tokens and --overlap apply with --split")
    index = Index.load(args.index, model=args.model)
    collection = read_collection(args.input, text_field=args.text_field, id_field=args.id_field,
                                 title_field=args.title_field)
    split = {"split": True, "max_tokens": args.max_tokens, "overlap": args.overlap} if args.split else {}
    ids = index.add(collection.texts, doc_ids=collection.doc_ids, metadata=collection.metadata,
                    batch_size=args.batch_size, show_progress=not getattr(args, "quiet", False), **split)
    for doc_id in ids:
        print(doc_id)
    print(f"added {len(ids):,} documents to {index.path}: {len(index):,} live passages", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("add", help="add documents from a .jsonl / .csv / text file to an index; prints their ids")
    p.add_argument("input", help="documents: .jsonl (fields text, _id/id, others kept as metadata), .csv/.tsv, or text")
    add_document_options(p)
    p.add_argument("--split", action="store_true", help="cut long documents into passages at sentence ends")
    p.add_argument("--max-tokens", type=positive_int, default=None, help="with --split: model tokens per passage")
    p.add_argument("--overlap", type=non_negative_int, default=0, help="with --split: tokens shared by neighbours")
    p.set_defaults(func=cmd_add)
