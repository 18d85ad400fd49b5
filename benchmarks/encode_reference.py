"""The reference encoder (colbert-ai 0.2.22's ``Checkpoint``) timed on a checkpoint folder.

Run by the Python of a venv with colbert-ai (it needs ``transformers<4.50``, and
``fugashi`` + ``unidic-lite`` for the Japanese tokenizer)::

    PY benchmarks/encode_reference.py --model FOLDER --texts texts.json --threads 2 --repeats 2

``texts.json``: ``{"passages": [...], "queries": [...]}``. Prints one JSON line:
passages/s (``docFromText``, batch 16), single-query latency (``queryFromText``,
one query per call) and, with ``--vectors-out``, the first passages' vectors
(``.npy``, flattened) so the caller can check they equal colja's fp32 vectors.
``benchmarks/encode.py --reference-python PY`` runs it in the same run as colja.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--doc-maxlen", type=int, default=300)
    ap.add_argument("--query-maxlen", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--vectors-out", help="save the first --vectors passages' vectors here (.npy)")
    ap.add_argument("--vectors", type=int, default=4)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(args.threads)
    from colbert.infra.config import ColBERTConfig
    from colbert.modeling.checkpoint import Checkpoint

    data = json.load(open(args.texts, encoding="utf-8"))
    passages, queries = data["passages"], data["queries"]
    config = ColBERTConfig(doc_maxlen=args.doc_maxlen, query_maxlen=args.query_maxlen, amp=False, gpus=0)
    ckpt = Checkpoint(args.model, colbert_config=config, verbose=0)
    ckpt.eval()

    def encode_passages():
        return ckpt.docFromText(passages, bsize=args.batch_size, keep_dims="flatten", showprogress=False)

    encode_passages()  # warm-up
    secs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        encode_passages()
        secs.append(time.perf_counter() - t)
    lat = []
    ckpt.queryFromText(queries[:1])
    for _ in range(args.repeats):
        t = time.perf_counter()
        for q in queries:
            ckpt.queryFromText([q])
        lat.append((time.perf_counter() - t) / len(queries))
    if args.vectors_out:
        D, _ = ckpt.docFromText(passages[: args.vectors], bsize=args.vectors, keep_dims="flatten", showprogress=False)
        np.save(args.vectors_out, D.float().numpy())
    print(json.dumps({"passages_per_s": len(passages) / statistics.median(secs),
                      "query_ms": statistics.median(lat) * 1e3}))


if __name__ == "__main__":
    main()
