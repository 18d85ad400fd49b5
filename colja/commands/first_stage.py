"""``colja first-stage add|remove``: store or drop a first stage (bm25, dense, static) in an index."""

from __future__ import annotations


def cmd_first_stage(args) -> int:
    from colja import Index

    index = Index.load(args.index)
    if args.action == "add":
        index.add_first_stage(args.kind, args.model, name=args.name, overwrite=args.overwrite,
                              show_progress=not getattr(args, "quiet", False))
        print(f"added first stage {args.name or args.kind!r} ({args.kind}) to {index.path}; "
              f"search with: colja search QUERY --index {args.index} --first-stage {args.name or args.kind}")
    else:
        index.remove_first_stage(args.name or args.kind)
        print(f"removed first stage {args.name or args.kind!r} from {index.path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("first-stage", help="add or remove a stored first stage (bm25, dense, static)")
    p.add_argument("action", choices=("add", "remove"), help="add: build and store it; remove: drop it")
    p.add_argument("kind", help="bm25, dense or static (remove: the stage's name)")
    p.add_argument("model", nargs="?", default=None,
                   help="dense/static: a sentence-transformers model folder or hub id (bm25 takes none)")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--name", default=None, help="the stage's name (default: the kind)")
    p.add_argument("--overwrite", action="store_true", help="replace a stage of that name")
    p.set_defaults(func=cmd_first_stage)
