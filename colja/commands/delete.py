"""``colja delete``: delete documents by id (arguments, or a file with one id a line)."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_delete(args) -> int:
    from colja import Index

    ids = list(args.ids)
    if args.ids_file:
        ids += [line.strip() for line in Path(args.ids_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not ids:
        print("colja delete: error: give document ids, or --ids-file with one id a line", file=sys.stderr)
        return 2
    index = Index.load(args.index)
    removed = index.delete(ids)
    print(f"deleted {len(ids):,} documents ({removed:,} passages) from {index.path}: {len(index):,} live passages")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("delete", help="delete documents by id (unknown ids: nothing is deleted)")
    p.add_argument("ids", nargs="*", help="document ids (a split document's id deletes all its passages)")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--ids-file", default=None, help="a file with one document id a line")
    p.set_defaults(func=cmd_delete)
