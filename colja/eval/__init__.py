"""Evaluation: trec_eval-compatible ranking metrics and dataset loaders.

>>> from colja.eval import evaluate, load_beir, to_markdown
>>> from colja.firststage import BM25Retriever
>>> data = load_beir("../shared/data/jsquad-dev")
>>> bm25 = BM25Retriever.build(data.passages())
>>> qids, ids = list(data.queries), data.doc_ids
>>> hits = bm25.search_batch([data.queries[q] for q in qids], k=10)
>>> run = {q: [ids[p] for p in h.pids] for q, h in zip(qids, hits)}
>>> results = evaluate(run, data.qrels)        # {"recall@1": 0.8812, ..., "ndcg@10": 0.9348, ...}
>>> print(to_markdown({"bm25": results}))
"""

from __future__ import annotations

from colja.eval.datasets import BeirData, RerankingData, from_hf_dataset, load_beir, load_reranking
from colja.eval.metrics import DEFAULT_METRICS, METRIC_NAMES, evaluate, parse_metric, to_markdown

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_NAMES",
    "BeirData",
    "RerankingData",
    "evaluate",
    "from_hf_dataset",
    "load_beir",
    "load_reranking",
    "parse_metric",
    "to_markdown",
]
