"""Evaluate retrieval systems on a BEIR folder or a reranking set (``colja eval``).

Systems (``systems=``), all over one colja index of the corpus:

============== ===================================================================
``plaid``      the ColBERT model alone, PLAID search (default settings)
``exhaustive`` the ColBERT model alone, every passage scored exactly
``bm25``       BM25 alone (MeCab words; no ColBERT)
``dense``      the dense first stage alone (needs ``dense_model=``)
``static``     the static first stage alone (needs ``static_model=``)
``bm25+maxsim`` BM25's candidates reranked by exact MaxSim (likewise ``dense+maxsim``, ``static+maxsim``)
``hybrid``     RRF of PLAID and every first stage named in ``systems``, reranked by MaxSim
============== ===================================================================

Each system's metrics come with ``ms_per_query``: the median wall time of single-query
searches (query encoding included) over the first ``latency_queries`` queries.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from colja._progress import progress, progress_enabled
from colja.eval.datasets import BeirData, load_beir, load_reranking
from colja.eval.metrics import DEFAULT_METRICS, evaluate, parse_metric

logger = logging.getLogger(__name__)

STAGE_KINDS = ("bm25", "dense", "static")
SYSTEMS = ("plaid", "exhaustive", *STAGE_KINDS, *(f"{s}+maxsim" for s in STAGE_KINDS), "hybrid")


def check_systems(systems: Sequence[str]) -> list[str]:
    systems = list(dict.fromkeys(systems))
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise ValueError(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    return systems


def stages_needed(systems: Sequence[str]) -> list[str]:
    """The first stages the systems use (``hybrid`` uses those named by the other systems, else BM25)."""
    named = [k for k in STAGE_KINDS if k in systems or f"{k}+maxsim" in systems]
    if "hybrid" in systems and not named:
        named = ["bm25"]
    return named


def evaluate_beir(
    data: str | os.PathLike | BeirData,
    *,
    model: Any,
    systems: Sequence[str] = ("plaid", "bm25", "bm25+maxsim", "hybrid"),
    k: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    index_path: str | os.PathLike | None = None,
    nbits: int = 2,
    dense_model: str | None = None,
    static_model: str | None = None,
    max_queries: int | None = None,
    latency_queries: int = 100,
    batch_size: int = 64,
    show_progress: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Build (or open) an index of ``data``'s corpus and evaluate each system: ``{system: {metric: value}}``.

    ``k``: hits per query (default: the largest cutoff in ``metrics``; first
    stages pass ``max(100, 10*k)`` candidates to MaxSim, see
    :mod:`colja.search.first_stage`). ``index_path``: reuse the index there when it exists (built from the same
    corpus), else build it there; default a temporary folder. Passages are
    ``title + "\\n" + text`` as in ``BeirData.passages``.
    """
    from colja import Index

    systems = check_systems(systems)
    k = k or max(parse_metric(m)[1] for m in metrics)
    if isinstance(data, (str, os.PathLike)):
        data = load_beir(data)
    qids = list(data.queries)[: max_queries or None]
    queries = [data.queries[q] for q in qids]
    qrels = {q: data.qrels[q] for q in qids if q in data.qrels}
    stages = stages_needed(systems)
    stage_models = {"dense": dense_model, "static": static_model}
    with tempfile.TemporaryDirectory(prefix="colja-eval-") as tmp:
        path = Path(index_path) if index_path is not None else Path(tmp) / "index"
        if (path / "CURRENT").exists():
            index = Index.load(path, model=model)
            if len(index) != len(data.corpus):
                raise ValueError(f"the index at {path} holds {len(index)} passages, the corpus {len(data.corpus)}; "
                                 "give another index_path")
        else:
            index = Index.build(data.passages(), path, model=model, doc_ids=data.doc_ids, nbits=nbits,
                                show_progress=show_progress)
        for kind in stages:
            if kind not in index.first_stages:
                if kind != "bm25" and not stage_models[kind]:
                    raise ValueError(f"system {kind!r} needs a model: pass {kind}_model= (--{kind}-model)")
                index.add_first_stage(kind, stage_models.get(kind), show_progress=show_progress)
        results = {}
        for system in systems:
            search = _searcher(index, system, stages, k)
            run = {}
            show = progress_enabled(show_progress, len(queries) // batch_size)
            for start in progress(range(0, len(queries), batch_size), total=-(-len(queries) // batch_size),
                                  desc=f"eval {system}", show=show, unit="batch"):
                for qid, doc_ids in zip(qids[start : start + batch_size], search(queries[start : start + batch_size])):
                    run[qid] = doc_ids
            scores = evaluate(run, qrels, metrics)
            scores["ms_per_query"] = _latency(search, queries[:latency_queries])
            results[system] = scores
            logger.info("%s: %s", system, scores)
        index.close()
    return results


def evaluate_reranking(data: Any, *, model: Any, metrics: Sequence[str] = DEFAULT_METRICS,
                       max_queries: int | None = None) -> dict[str, dict[str, float]]:
    """MaxSim reranking of each query's own candidates (JQaRA / JaCWIR style), next to the given order."""
    from colja.search.rerank import rerank

    if not hasattr(data, "candidates"):
        data = load_reranking(data)
    qids = list(data.queries)[: max_queries or None]
    given, reranked, times = {}, {}, []
    for qid in qids:
        cands = data.candidates[qid]
        texts = [c["title"] + "\n" + c["text"] if c.get("title") else c["text"] for c in cands]
        t = time.perf_counter()
        hits = rerank(data.queries[qid], texts, model=model)
        times.append(time.perf_counter() - t)
        given[qid] = [c["id"] for c in cands]
        reranked[qid] = [cands[h.pid]["id"] for h in hits]
    qrels = {q: data.qrels[q] for q in qids}
    out = {"given order": evaluate(given, qrels, metrics), "maxsim rerank": evaluate(reranked, qrels, metrics)}
    out["maxsim rerank"]["ms_per_query"] = 1000 * statistics.median(times)
    return out


def _searcher(index: Any, system: str, stages: list[str], k: int) -> Callable[[list[str]], list[list[str]]]:
    """A function from queries to ranked doc id lists for ``system``."""
    if system in STAGE_KINDS:
        stage = index.first_stage(system)
        with index.snapshot() as snapshot:
            doc_ids = snapshot.docs.all_doc_ids()
        return lambda qs: [[doc_ids[p] for p in hits.pids] for hits in stage.search_batch(qs, k)]
    if system == "exhaustive":
        options: dict[str, Any] = {"exhaustive": True}
    elif system == "plaid":
        options = {}
    elif system == "hybrid":
        options = {"first_stage": ["plaid", *stages]}
    else:
        options = {"first_stage": system.split("+")[0]}
    return lambda qs: [[h.doc_id for h in hits] for hits in index.search_batch(qs, k, **options)]


def _latency(search: Callable[[list[str]], Any], queries: list[str]) -> float:
    """Median milliseconds of one-query searches (after one warm-up)."""
    if not queries:
        return float("nan")
    search(queries[:1])
    times = []
    for q in queries:
        t = time.perf_counter()
        search([q])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)
