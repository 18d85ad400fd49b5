"""Ranking metrics with trec_eval's definitions (usnistgov/trec_eval 9.x).

Metric names are ``<name>@<k>``; ``k`` is a positive cutoff:

=================  ============================================================
``recall@k``       relevant docs in the top k / relevant docs (``recall_k``)
``precision@k``    relevant docs in the top k / k, even if fewer were retrieved (``P_k``)
``ndcg@k``         DCG@k / ideal DCG@k; gain = the qrels grade, discount
                   ``log2(rank + 1)``; the ideal ranking sorts every judged
                   doc of grade > 0 by grade (``ndcg_cut_k``)
``mrr@k``          1 / rank of the first relevant doc in the top k, else 0
                   (``recip_rank`` cut at k)
``map@k``          sum over relevant docs at rank r <= k of precision@r, divided
                   by the number of relevant docs, not by min(k, that) (``map_cut_k``)
=================  ============================================================

Conventions, as in trec_eval:

* a doc is relevant when its grade is >= 1; unjudged docs count as grade 0;
* a run given as ``{doc_id: score}`` is ranked by score descending, ties broken
  by doc id *descending* (string order, as trec_eval's ``strcmp``); the rank
  field of a TREC run is ignored there too. A run given as a list of doc ids is
  taken in the order given;
* a query whose qrels hold no relevant doc is skipped (its recall, AP and nDCG
  are undefined);
* a query in the qrels but missing from the run scores 0 on every metric
  (trec_eval's ``-c``); queries in the run but not in the qrels are ignored.

Ids are compared as strings. Averages are arithmetic means over the evaluated
queries.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Iterable, Literal, Mapping, Sequence, Union, overload

logger = logging.getLogger(__name__)

METRIC_NAMES = ("recall", "precision", "ndcg", "mrr", "map")
DEFAULT_METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10", "map@10")

Ranking = Union[Mapping[str, float], Sequence[str]]
Run = Mapping[str, Ranking]
Qrels = Mapping[str, Mapping[str, int]]


def parse_metric(name: str) -> tuple[str, int]:
    """``"nDCG@10"`` -> ``("ndcg", 10)``; ``ValueError`` listing the valid names otherwise."""
    base, sep, cut = str(name).strip().lower().partition("@")
    if base not in METRIC_NAMES or not sep or not cut.isdigit() or int(cut) < 1:
        raise ValueError(f"unknown metric {name!r}; valid metrics are {', '.join(m + '@k' for m in METRIC_NAMES)} "
                         "with k a positive int (e.g. 'ndcg@10')")
    return base, int(cut)


def rank_docs(docs: Ranking, *, limit: int | None = None) -> list[str]:
    """Doc ids best first: scores descending, ties by doc id descending; a list keeps its order.

    ``limit`` keeps only the first ``limit`` ids. Duplicate ids in a list raise
    ``ValueError`` (trec_eval refuses them too).
    """
    if isinstance(docs, Mapping):
        items = [(float(s), str(d)) for d, s in docs.items()]
        if limit is not None and len(items) > 4 * limit:
            top = heapq.nlargest(limit, items)
        else:
            top = sorted(items, reverse=True)
        return [d for _, d in top[:limit]]
    if isinstance(docs, (str, bytes)):
        raise TypeError("a ranking must be a dict of doc id -> score or a list of doc ids, "
                        f"got a single {type(docs).__name__}")
    ranked = [str(d) for d in docs]
    if len(set(ranked)) != len(ranked):
        seen: set[str] = set()
        for d in ranked:
            if d in seen:
                raise ValueError(f"doc id {d!r} appears twice in one ranking; a ranked list must not repeat docs")
            seen.add(d)
    return ranked[:limit]


def query_metrics(ranking: Sequence[str], rels: Mapping[str, float],
                  metrics: Iterable[tuple[str, int]]) -> dict[str, float]:
    """Every metric of one query; ``ranking`` is already ordered (see :func:`rank_docs`).

    ``rels`` maps doc id -> grade and must hold at least one grade >= 1.
    """
    grades = [float(rels.get(d, 0)) for d in ranking]
    n_rel = sum(1 for g in rels.values() if g >= 1)
    ideal = sorted((float(g) for g in rels.values() if g > 0), reverse=True)
    out: dict[str, float] = {}
    for base, k in metrics:
        top = grades[:k]
        if base == "recall":
            value = sum(1 for g in top if g >= 1) / n_rel
        elif base == "precision":
            value = sum(1 for g in top if g >= 1) / k
        elif base == "ndcg":
            idcg = _dcg(ideal[:k])
            value = _dcg(top) / idcg if idcg > 0 else 0.0
        elif base == "mrr":
            value = next((1.0 / (i + 1) for i, g in enumerate(top) if g >= 1), 0.0)
        else:  # map
            hits, total = 0, 0.0
            for i, g in enumerate(top):
                if g >= 1:
                    hits += 1
                    total += hits / (i + 1)
            value = total / n_rel
        out[f"{base}@{k}"] = value
    return out


def _dcg(grades: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(grades) if g > 0)


@overload
def evaluate(run: Run, qrels: Qrels, metrics: Iterable[str] = ..., *,
             per_query: Literal[False] = ...) -> dict[str, float]: ...
@overload
def evaluate(run: Run, qrels: Qrels, metrics: Iterable[str] = ..., *,
             per_query: Literal[True]) -> dict[str, dict[str, float]]: ...


def evaluate(run: Run, qrels: Qrels, metrics: Iterable[str] = DEFAULT_METRICS, *,
             per_query: bool = False) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean of each metric over the queries of ``qrels`` that have a relevant doc.

    ``run`` maps query id -> ``{doc_id: score}`` or a ranked list of doc ids;
    ``qrels`` maps query id -> ``{doc_id: grade}``. Returns ``{"ndcg@10": 0.93, ...}``
    (plain floats, JSON-ready, keys in the canonical lower-case form), or with
    ``per_query=True`` ``{query_id: {metric: value}}`` for each evaluated query.
    See the module docstring for the exact definitions.
    """
    parsed = list(dict.fromkeys(parse_metric(m) for m in ([metrics] if isinstance(metrics, str) else metrics)))
    if not parsed:
        raise ValueError(f"no metrics asked for; pass e.g. {list(DEFAULT_METRICS)}")
    names = [f"{b}@{k}" for b, k in parsed]
    max_k = max(k for _, k in parsed)
    runs = {str(q): r for q, r in run.items()}
    per: dict[str, dict[str, float]] = {}
    skipped = missing = 0
    for qid, rels in qrels.items():
        qid = str(qid)
        rels = {str(d): g for d, g in rels.items()}
        if not any(g >= 1 for g in rels.values()):
            skipped += 1
            continue
        docs = runs.get(qid)
        if docs is None:
            missing += 1
            docs = []
        per[qid] = query_metrics(rank_docs(docs, limit=max_k), rels, parsed)
    if not per:
        raise ValueError(f"nothing to evaluate: none of the {len(qrels)} qrels queries has a doc with grade >= 1")
    if skipped:
        logger.info("evaluate: skipped %d queries without a relevant doc", skipped)
    if missing:
        logger.warning("evaluate: %d of %d queries are missing from the run and count as 0", missing, len(per))
    if per_query:
        return per
    return {name: math.fsum(q[name] for q in per.values()) / len(per) for name in names}


def to_markdown(results_by_system: Mapping[str, Mapping[str, float]], *, digits: int = 4) -> str:
    """A markdown table: one row per system, one column per metric (in first-seen order).

    Numbers get ``digits`` decimals; a metric a system lacks shows as ``-``.
    """
    columns = list(dict.fromkeys(m for res in results_by_system.values() for m in res))
    lines = ["| system | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for system, res in results_by_system.items():
        cells = [_cell(res[m], digits) if m in res else "-" for m in columns]
        lines.append(f"| {_escape(system)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _escape(str(value))


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


__all__ = ["DEFAULT_METRICS", "METRIC_NAMES", "evaluate", "parse_metric", "query_metrics", "rank_docs", "to_markdown"]
