"""``colja update``: replace documents (same ids) from a file."""

from __future__ import annotations

import sys

from colja.commands._args import add_document_options


def cmd_update(args) -> int:
    from colja import Index
    from colja.commands._files import read_collection

    collection = read_collection(args.input, text_field=args.text_field, id_field=args.id_field,
                                 title_field=args.title_field)
    if collection.doc_ids is None:
        print(f"colja update: error: {args.input} has no id field (_id, id, doc_id, docid or --id-field): "
              "update needs the id of each document it replaces", file=sys.stderr)
        return 2
    index = Index.load(args.index, model=args.model)
    index.update(collection.doc_ids, collection.texts, metadata=None if args.keep_metadata else collection.metadata,
                 batch_size=args.batch_size, show_progress=not getattr(args, "quiet", False))
    print(f"updated {len(collection.doc_ids):,} documents in {index.path}: {len(index):,} live passages")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("update", help="replace documents (same ids, new text and metadata) from a .jsonl / .csv file")
    p.add_argument("input", help="documents with their ids: .jsonl (text, _id/id, metadata fields) or .csv/.tsv")
    add_document_options(p)
    p.add_argument("--keep-metadata", action="store_true", help="keep each document's old metadata")
    p.set_defaults(func=cmd_update)
