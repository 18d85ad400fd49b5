"""Hard-negative mining for a BEIR folder: BM25 or an existing colja index.

For each query with qrels, the retriever's top passages minus the relevant
ones, after skipping the first ``skip_top`` of them (the very top non-relevant
passages are often unlabelled positives), keeping the next ``k``. Output rows
(JSONL, the format :func:`colja.train.data.from_beir` reads)::

    {"query_id": "q1", "negatives": ["d7", "d3", …], "negative_scores": [12.1, 11.7, …]}

``negative_scores`` are the retriever's scores, for inspection; training
ignores them (teacher scores go in the text schema's ``scores``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from colja._progress import progress, progress_enabled
from colja.errors import MiningError

logger = logging.getLogger(__name__)

METHODS = ("bm25", "index")
_SEARCH_BATCH = 64


def mine_negatives(data: Any, *, method: str = "bm25", k: int = 30, skip_top: int = 0,
                   index: str | os.PathLike | Any = None, split: str = "test", with_title: bool = True,
                   show_progress: bool | None = None) -> list[dict[str, Any]]:
    """Mine ``k`` hard negatives per query of a BEIR folder (or loaded ``BeirData``).

    ``method="bm25"`` indexes the corpus (``title + "\\n" + text``) with
    :class:`~colja.firststage.bm25.BM25Retriever`; ``method="index"`` searches
    a colja index (a folder for ``colja.Index.load`` or a loaded index) built
    from the same corpus with its doc ids. Queries for which nothing
    non-relevant is found are left out (and counted in the log).
    """
    from colja.eval.datasets import BeirData, load_beir

    if method not in METHODS:
        raise ValueError(f"unknown mining method {method!r}; choose one of {', '.join(METHODS)}")
    for name, value, low in (("k", k, 1), ("skip_top", skip_top, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    beir = data if isinstance(data, BeirData) else load_beir(data, split=split)
    qids = list(beir.queries)
    doc_ids = beir.doc_ids
    if method == "bm25":
        search = _bm25_search(beir.passages(with_title=with_title), doc_ids, show_progress)
    else:
        search = _index_search(index, set(doc_ids))
    rows, empty = [], 0
    batches = [qids[i : i + _SEARCH_BATCH] for i in range(0, len(qids), _SEARCH_BATCH)]
    show = progress_enabled(show_progress, len(batches))
    for batch in progress(batches, desc=f"Mining ({method})", show=show, unit="batch"):
        depths = {q: skip_top + k + sum(1 for g in beir.qrels[q].values() if g >= 1) for q in batch}
        results = search([beir.queries[q] for q in batch], max(depths.values()))
        for qid, hits in zip(batch, results):
            rels = beir.qrels[qid]
            kept = [(d, s) for d, s in hits if rels.get(d, 0) < 1][skip_top : skip_top + k]
            if not kept:
                empty += 1
                continue
            rows.append({"query_id": qid, "negatives": [d for d, _ in kept],
                         "negative_scores": [round(float(s), 4) for _, s in kept]})
    if empty:
        logger.warning("%d of %d queries got no negatives from %s and are left out", empty, len(qids), method)
    logger.info("mined negatives for %d queries (k=%d, skip_top=%d, %s)", len(rows), k, skip_top, method)
    return rows


def write_negatives(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write mined rows as JSONL (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _bm25_search(passages: list[str], doc_ids: list[str], show_progress: bool | None) -> Callable:
    from colja.firststage.bm25 import BM25Retriever

    retriever = BM25Retriever.build(passages, show_progress=show_progress)

    def search(queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        out = []
        for q in queries:
            hits = retriever.search(q, depth)
            out.append([(doc_ids[int(p)], float(s)) for p, s in zip(hits.pids, hits.scores)])
        return out

    return search


def _index_search(index: Any, corpus_ids: set[str]) -> Callable:
    if index is None:
        raise ValueError("method='index' needs index= (a colja index folder); or use method='bm25'")
    if isinstance(index, (str, os.PathLike)):
        try:
            from colja.searchable.index import Index
        except ImportError as e:
            raise MiningError(f"method='index' needs colja.Index, which this installation cannot import ({e}); "
                              "use method='bm25'") from e
        index = Index.load(index)
    if not hasattr(index, "search_batch"):
        raise TypeError(f"index must be a colja index folder or an object with search_batch, got {type(index).__name__}")

    def search(queries: list[str], depth: int) -> list[list[tuple[str, float]]]:
        out = []
        for hits in index.search_batch(queries, k=depth):
            row = [(h.doc_id, h.score) for h in hits]
            unknown = [d for d, _ in row if d not in corpus_ids]
            if unknown:
                raise MiningError(f"the index returned doc id {unknown[0]!r}, which is not in the BEIR corpus; "
                                  "build the index from the same corpus with its doc ids (doc_ids=corpus ids)")
            out.append(row)
        return out

    return search
