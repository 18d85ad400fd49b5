"""``colja index``: build an index from a JSONL / CSV / text file."""

from __future__ import annotations

import sys
import time

from colja.commands._args import non_negative_int, positive_int

from colja.model.encoder import DEFAULT_MODEL


def cmd_index(args) -> int:
    from colja import Index
    from colja.commands._files import read_collection
    from colja.errors import IndexExistsError

    if not args.split and (args.max_tokens is not None or args.overlap):
        print("colja index: error: --max-tokens and --overlap apply with --split", file=sys.stderr)
        return 2
    collection = read_collection(args.input, text_field=args.text_field, id_field=args.id_field, title_field=args.title_field)
    print(f"{len(collection.texts):,} {'documents' if args.split else 'passages'} from {args.input}")
    t = time.perf_counter()
    if args.ray is not None or args.shards != 1:
        return _build_scaled(args, collection, t)
    split = {"split": True, "max_tokens": args.max_tokens, "overlap": args.overlap} if args.split else {}
    try:
        index = Index.build(collection.texts, args.index, model=args.model, doc_ids=collection.doc_ids,
                            metadata=collection.metadata, nbits=args.nbits, overwrite=args.overwrite,
                            batch_size=args.batch_size, show_progress=not args_quiet(args),
                            first_stages=args.first_stage or None, **split)
    except IndexExistsError:
        print(f"colja index: error: an index already exists at {args.index}; pass --overwrite to replace it "
              "(atomically), or choose another --index", file=sys.stderr)
        return 2
    stats = index.stats()
    print(f"built {index.path} in {time.perf_counter() - t:.1f}s: {stats['passages']:,} passages, "
          f"{stats['vectors']:,} vectors, {stats['centroids']:,} centroids, {stats['nbits']}-bit residuals, "
          f"{stats['bytes_on_disk'] / 1e6:.1f} MB on disk"
          + (f", first stages: {', '.join(index.first_stages)}" if index.first_stages else ""))
    return 0


def args_quiet(args) -> bool:
    return bool(getattr(args, "quiet", False))


def _build_scaled(args, collection, started: float) -> int:
    """``--ray`` (a Ray cluster) and/or ``--shards N`` (a sharded index)."""
    from colja import distributed
    from colja.errors import IndexExistsError

    if args.first_stage or args.split:
        print("colja index: error: --first-stage and --split are not supported with --ray / --shards yet",
              file=sys.stderr)
        return 2
    common = dict(model=args.model, doc_ids=collection.doc_ids, metadata=collection.metadata, nbits=args.nbits,
                  overwrite=args.overwrite, batch_size=args.batch_size, show_progress=not args_quiet(args))
    try:
        if args.ray is not None:
            address = None if args.ray == "local" else args.ray
            index = distributed.build(collection.texts, args.index, shards=args.shards, ray_address=address,
                                      num_gpus_per_worker=args.gpus_per_worker, **common)
        else:
            index = distributed.ShardedIndex.build(collection.texts, args.index, shards=args.shards, **common)
    except IndexExistsError as exc:
        print(f"colja index: error: {exc}", file=sys.stderr)
        return 2
    where = "on Ray" if args.ray is not None else "locally"
    shards = getattr(index, "num_shards", 1)
    print(f"built {args.index} {where} in {time.perf_counter() - started:.1f}s: {len(index):,} passages"
          + (f" in {shards} shards ({', '.join(f'{n:,}' for n in index.shard_lengths())})" if shards > 1 else ""))
    index.close()
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("index", help="build an index from a JSONL, CSV/TSV or text file (one passage a line)")
    p.add_argument("input", help="passages: .jsonl (fields text, _id/id, others kept as metadata), .csv/.tsv, or text")
    p.add_argument("--index", required=True, help="index folder to write")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"ColBERT model folder or hub id (default {DEFAULT_MODEL})")
    p.add_argument("--nbits", type=int, default=2, choices=(1, 2, 4), help="residual bits per dimension (default 2)")
    p.add_argument("--text-field", default="text", help="the field holding the passage text (.jsonl / .csv; default text)")
    p.add_argument("--id-field", default=None, help="default: the first of _id, id, doc_id, docid present")
    p.add_argument("--title-field", default=None, help="prepend this field to the text (e.g. title)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="passages encoded per batch (default 32)")
    p.add_argument("--split", action="store_true",
                   help="cut long documents into passages at sentence ends (passage ids '<doc id>#<j>')")
    p.add_argument("--max-tokens", type=positive_int, default=None,
                   help="with --split: model tokens per passage (default: what fits doc_maxlen)")
    p.add_argument("--overlap", type=non_negative_int, default=0, help="with --split: tokens shared by neighbours")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index (atomically)")
    p.add_argument("--first-stage", action="append", choices=("bm25",),
                   help="also store this first stage (repeatable; dense/static need a model: use the Python API)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="encode and compress on a Ray cluster (colja[ray]): ADDRESS such as auto or "
                        "ray://head:10001; without one, a local Ray")
    p.add_argument("--shards", type=positive_int, default=1,
                   help="write N shard indexes under --index (documents routed by a hash of their id)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="with --ray: GPUs for each model worker")
    p.set_defaults(func=cmd_index)
