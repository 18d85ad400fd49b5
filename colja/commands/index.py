"""``colja index``: build an index from a JSONL / CSV / text file."""

from __future__ import annotations

import time

from colja.model.encoder import DEFAULT_MODEL


def cmd_index(args) -> int:
    from colja import Index
    from colja.commands._files import read_collection

    collection = read_collection(args.input, text_field=args.text_field, id_field=args.id_field, title_field=args.title_field)
    print(f"{len(collection.texts):,} passages from {args.input}")
    t = time.perf_counter()
    if args.ray is not None or args.shards != 1:
        return _build_scaled(args, collection, t)
    index = Index.build(collection.texts, args.index, model=args.model, doc_ids=collection.doc_ids,
                        metadata=collection.metadata, nbits=args.nbits, overwrite=args.overwrite,
                        batch_size=args.batch_size, show_progress=True, first_stages=args.first_stage or None)
    stats = index.stats()
    print(f"built {index.path} in {time.perf_counter() - t:.1f}s: {stats['passages']:,} passages, "
          f"{stats['vectors']:,} vectors, {stats['centroids']:,} centroids, {stats['nbits']}-bit residuals, "
          f"{stats['bytes_on_disk'] / 1e6:.1f} MB on disk"
          + (f", first stages: {', '.join(index.first_stages)}" if index.first_stages else ""))
    return 0


def _build_scaled(args, collection, started: float) -> int:
    """``--ray`` (a Ray cluster) and/or ``--shards N`` (a sharded index)."""
    import sys

    from colja import distributed

    if args.shards < 1:
        print("colja index: error: --shards must be at least 1", file=sys.stderr)
        return 2
    if args.first_stage:
        print("colja index: error: --first-stage is not supported with --ray / --shards yet; "
              "add it to each shard with the Python API", file=sys.stderr)
        return 2
    common = dict(model=args.model, doc_ids=collection.doc_ids, metadata=collection.metadata, nbits=args.nbits,
                  overwrite=args.overwrite, batch_size=args.batch_size, show_progress=True)
    if args.ray is not None:
        address = None if args.ray == "local" else args.ray
        index = distributed.build(collection.texts, args.index, shards=args.shards, ray_address=address,
                                  num_gpus_per_worker=args.gpus_per_worker, **common)
    else:
        index = distributed.ShardedIndex.build(collection.texts, args.index, shards=args.shards, **common)
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
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default=None, help="default: the first of _id, id, doc_id, docid present")
    p.add_argument("--title-field", default=None, help="prepend this field to the text (e.g. title)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true", help="replace an existing index (atomically)")
    p.add_argument("--first-stage", action="append", choices=("bm25",),
                   help="also store this first stage (repeatable; dense/static need a model: use the Python API)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="encode and compress on a Ray cluster (colja[ray]): ADDRESS such as auto or "
                        "ray://head:10001; without one, a local Ray")
    p.add_argument("--shards", type=int, default=1,
                   help="write N shard indexes under --index (documents routed by a hash of their id)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="with --ray: GPUs for each model worker")
    p.set_defaults(func=cmd_index)
