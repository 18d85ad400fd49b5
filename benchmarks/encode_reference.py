"""The reference encoder (Stanford ``colbert-ai``'s ``Checkpoint``) timed on given texts, run from its own venv.

    /path/to/ref-venv/bin/python benchmarks/encode_reference.py --model DIR --texts T.json --out V.npz \
        --threads 2 --bsize 16 --doc-maxlen 300 --query-maxlen 32 --repeats 3

colbert-ai needs ``transformers<4.50``, so ``benchmarks/encode.py --reference-python``
runs this file in a subprocess with that venv's interpreter; it imports nothing
from colja. ``T.json``: ``{"passages": [...], "queries": [...], "check": [...], "check_queries": [...]}``.

* passages: ``Checkpoint.docFromText(passages, bsize=..., keep_dims="flatten")``
  (its own length sorting and batching), after one warm-up batch; median of the repeats.
* queries: ``Checkpoint.queryFromText([q])`` one query per call; median per query.
* check / check_queries: the vectors of these passages (flattened, with doclens)
  and queries, saved to ``--out`` so that the caller can compare them with its own
  fp32 vectors.

Prints one JSON line: passages/s, per-query ms, the versions used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="an HF_ColBERT checkpoint folder")
    ap.add_argument("--texts", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help=".npz for the check passages' vectors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bsize", type=int, default=16)
    ap.add_argument("--doc-maxlen", type=int, default=300)
    ap.add_argument("--query-maxlen", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    import torch

    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    import transformers
    from colbert.infra.config import ColBERTConfig
    from colbert.modeling.checkpoint import Checkpoint

    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    config = ColBERTConfig(doc_maxlen=args.doc_maxlen, query_maxlen=args.query_maxlen, bsize=args.bsize)
    ckpt = Checkpoint(str(args.model), colbert_config=config, verbose=0)
    passages, queries = texts["passages"], texts["queries"]

    def encode_passages(batch):
        return ckpt.docFromText(batch, bsize=args.bsize, keep_dims="flatten")

    encode_passages(passages[:8])  # warm-up
    secs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        encode_passages(passages)
        secs.append(time.perf_counter() - t)
    ckpt.queryFromText(queries[:1])
    per_query = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for q in queries:
            ckpt.queryFromText([q])
        per_query.append((time.perf_counter() - t) / len(queries))

    flat, doclens = encode_passages(texts["check"])
    Q = ckpt.queryFromText(texts["check_queries"], bsize=args.bsize)
    np.savez(args.out, doc_embeddings=flat.float().numpy(), doclens=np.asarray(doclens, dtype=np.int64),
             query_embeddings=Q.float().numpy())
    print(json.dumps({"passages_per_s": len(passages) / statistics.median(secs), "seconds": secs,
                      "query_ms": statistics.median(per_query) * 1e3, "colbert": version("colbert-ai"),
                      "transformers": transformers.__version__, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
