"""The reference PLAID (Stanford ``colbert-ai``) on gen_data.py vectors, run from its own venv.

    /path/to/ref-venv/bin/python benchmarks/plaid_reference.py build --data bench-data/S --index DIR --nbits 2
    /path/to/ref-venv/bin/python benchmarks/plaid_reference.py search --index DIR --queries Q.npy \
        --budgets '[{"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 256}]' --threads 1

colbert-ai needs ``transformers<4.50``, so ``benchmarks/search.py`` runs this
file in a subprocess with that venv's interpreter; it imports nothing from colja.

* build: colbert-ai's own ``CollectionIndexer`` (k-means, codec, residuals, IVF)
  with its encoder replaced by the precomputed vectors (passage ``i`` is the
  text ``"i"``), so both engines index identical vectors; no checkpoint is read.
* search: the reference's ``IndexScorer.rank`` (candidate generation, C++
  ``filter_pids``, decompression, exact MaxSim of ``ndocs // 4``) — exactly
  what ``Searcher.dense_search`` runs after query encoding — one query per call.
  Prints one JSON line: per budget, the p50 / p95 latency (ms) and the top-10 ids.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


class _Vectors:
    """Stands in for colbert-ai's ``CollectionEncoder``: passage text ``"i"`` -> passage i's vectors."""

    def __init__(self, embs: np.ndarray, doclens: np.ndarray):
        self.embs = embs
        self.offsets = np.concatenate([[0], np.cumsum(doclens)])

    def encode_passages(self, passages):
        import torch

        pids = [int(p) for p in passages]
        parts = [np.asarray(self.embs[self.offsets[p]:self.offsets[p + 1]], dtype=np.float32) for p in pids]
        flat = torch.from_numpy(np.concatenate(parts)) if parts else torch.empty(0, self.embs.shape[1])
        return flat, [len(x) for x in parts]


def build(data: Path, index: Path, nbits: int) -> None:
    import torch
    from colbert.indexing import collection_indexer as ci
    from colbert.indexing.index_saver import IndexSaver
    from colbert.infra.config import ColBERTConfig

    embs = np.load(data / "embs.npy", mmap_mode="r")
    doclens = np.load(data / "doclens.npy").astype(np.int64)
    index.parent.mkdir(parents=True, exist_ok=True)
    config = ColBERTConfig(nbits=nbits, dim=int(embs.shape[1]), doc_maxlen=int(doclens.max()), index_path=str(index),
                           root=str(index.parent), avoid_fork_if_possible=True)
    os.makedirs(config.index_path_, exist_ok=True)

    def init(self, config, collection, verbose=2):  # the indexer, minus the checkpoint it would encode with
        self.verbose, self.config = verbose, config
        self.rank, self.nranks = 0, 1
        self.use_gpu = False
        self.collection = ci.Collection.cast(collection)
        self.encoder = _Vectors(embs, doclens)
        self.saver = IndexSaver(config)

    ci.CollectionIndexer.__init__ = init
    torch.manual_seed(12345)
    np.random.seed(12345)
    import random

    random.seed(12345)
    t = time.perf_counter()
    ci.CollectionIndexer(config=config, collection=[str(i) for i in range(len(doclens))], verbose=0).run([[None]])
    print(json.dumps({"built_s": time.perf_counter() - t}))


def search(index: Path, queries_path: Path, budgets: list[dict], threads: int, repeats: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from colbert.infra.config import ColBERTConfig
    from colbert.modeling.colbert import ColBERT
    from colbert.search.index_storage import IndexScorer

    ColBERT.try_load_torch_extensions(False)  # its segmented MaxSim (a Searcher's model would load it)
    queries = torch.from_numpy(np.load(queries_path).astype(np.float32))
    ranker = IndexScorer(str(index), use_gpu=False)
    out = []
    for budget in budgets:
        config = ColBERTConfig(**budget)
        ranker.rank(config, queries[0:1])  # warm-up
        times: list[list[float]] = [[] for _ in range(len(queries))]
        ids = []
        for r in range(repeats):
            for i in range(len(queries)):
                t = time.perf_counter()
                pids, _ = ranker.rank(config, queries[i:i + 1])
                times[i].append(time.perf_counter() - t)
                if r == 0:
                    top = list(pids[:10]) + [-1] * (10 - min(10, len(pids)))
                    ids.append([int(p) for p in top])
        per_query = np.array([min(t) for t in times]) * 1e3  # best of the repeats per query, then percentiles
        out.append({"budget": budget, "p50": float(np.median(per_query)), "p95": float(np.percentile(per_query, 95)),
                    "ids": ids})
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--data", type=Path, required=True)
    b.add_argument("--index", type=Path, required=True)
    b.add_argument("--nbits", type=int, default=2)
    s = sub.add_parser("search")
    s.add_argument("--index", type=Path, required=True)
    s.add_argument("--queries", type=Path, required=True)
    s.add_argument("--budgets", required=True, help="JSON list of ColBERTConfig search settings")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.data, args.index, args.nbits)
    else:
        search(args.index, args.queries, json.loads(args.budgets), args.threads, args.repeats)


if __name__ == "__main__":
    main()
