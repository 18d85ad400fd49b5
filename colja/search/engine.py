"""Search as functions over an immutable snapshot and an encoder.

Nothing here holds state or calls back into the object a user holds: the
facades (:class:`~colja.Index`, :class:`~colja.InMemoryIndex`, …) pin a
snapshot and pass it in, so one search sees one generation throughout.

A snapshot is an :class:`~colja.index.snapshot.IndexSnapshot` (a compressed
index: PLAID, or stored first stages + exact MaxSim on the compressed
vectors) or a :class:`~colja.search.exact.VectorSnapshot` (uncompressed
vectors in memory: exact MaxSim over every passage). Both give ``dim``,
``num_passages``, ``docs``, ``allowed(where)``, ``group_keys()`` and
``first_stages``.

Rules every search follows: ``k`` is a positive int (``ValueError``);
queries are strings (``TypeError``); a filter and the options are checked
before any query is encoded; ``min(k, allowed passages)`` unique hits are
returned, best first, ties by the smaller passage id; all-zero query rows
(padding) score nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from colja import kernels
from colja._validation import check_texts
from colja.search.candidates import PLAID, check_candidates, resolve_stages, search_with_stages
from colja.search.exact import VectorSnapshot, search_exact
from colja.search.plaid import SearchArrays, search_many
from colja.search.results import Hit, SearchResults
from colja.search.settings import SearchSettings


# --------------------------------------------------------------------------- checks


def check_k(k: Any) -> int:
    """``k`` as an int; ``ValueError`` unless it is a positive int."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for several queries")
    return query


def as_query_tensor(Q: Any, dim: int) -> torch.Tensor:
    """Query vectors as float32 ``[n_queries, Lq, dim]`` on the CPU (one query may be ``[Lq, dim]``)."""
    if isinstance(Q, np.ndarray):
        Q = torch.from_numpy(Q)
    if not isinstance(Q, torch.Tensor):
        raise TypeError(f"Q must be a torch.Tensor or numpy array of query vectors, got {type(Q).__name__}")
    if Q.dim() == 2:
        Q = Q.unsqueeze(0)
    if Q.dim() != 3 or Q.shape[-1] != dim:
        raise ValueError(f"Q must have shape [Lq, {dim}] or [n_queries, Lq, {dim}], got {tuple(Q.shape)}")
    if not torch.isfinite(Q).all():
        raise ValueError("Q contains NaN or infinite values")
    return Q.detach().to("cpu", torch.float32)


def _settings(snapshot: Any, options: Mapping[str, Any]) -> SearchSettings:
    if isinstance(snapshot, VectorSnapshot) and options:
        raise TypeError(f"an in-memory index scores every passage exactly; it takes no search settings "
                        f"(got {sorted(options)})")
    return SearchSettings.from_overrides(dict(options))


# --------------------------------------------------------------------------- search


def search_texts(snapshot: Any, encoder: Any, queries: Sequence[str], k: int = 10, *,
                 first_stage: str | Sequence[str] = PLAID, candidates: int | None = None,
                 where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
                 options: Mapping[str, Any] | None = None, device: torch.device | None = None) -> list[list[Hit]]:
    """Encode ``queries`` with ``encoder`` and return each one's hits (see :func:`search_vectors`).

    ``first_stage``: ``"plaid"``, a stored first stage's name, ``"hybrid"`` or
    a list of names to fuse (:mod:`colja.search.candidates`); ``candidates``:
    how many each one passes to the exact MaxSim rerank; ``device``: where a
    compressed index's arrays are searched (default: the CPU; a GPU keeps a
    copy per snapshot).
    """
    queries = check_texts(queries, what="queries")
    k = check_k(k)
    snapshot.allowed(where)  # a bad filter fails before any encoding
    stages = resolve_stages(first_stage, list(snapshot.first_stages))
    settings = _settings(snapshot, options or {})
    if stages == [PLAID] and candidates is not None:
        raise ValueError("candidates= applies to first_stage='bm25' / 'dense' / 'static' / 'hybrid'; "
                         "PLAID's own knobs are ncells, ndocs and nfinal")
    if stages != [PLAID]:
        check_candidates(candidates, k)
    if not queries:
        return []
    Q = encoder.encode_queries(queries)
    results = _search(snapshot, as_query_tensor(Q, snapshot.dim), k, where=where, group_by_doc=group_by_doc,
                      settings=settings, stages=stages, queries=queries, candidates=candidates, device=device)
    return [to_hits(snapshot, results, i, query_length=kernels.query_length(Q[i])) for i in range(len(queries))]


def search_vectors(snapshot: Any, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                   group_by_doc: bool = False, options: Mapping[str, Any] | None = None,
                   device: torch.device | None = None) -> SearchResults:
    """Top-``k`` of query vectors ``Q`` (``[Lq, dim]`` or ``[n, Lq, dim]``) as ``[n, k]`` arrays,
    padded with ``-inf`` / ``-1`` where fewer passages (documents) are allowed.

    ``where``: a metadata filter (:mod:`colja.index.filters`); ``group_by_doc``:
    the best passage per document; ``options``: PLAID's
    :class:`~colja.search.settings.SearchSettings` (``exhaustive=True`` scores
    every passage exactly).
    """
    Q = as_query_tensor(Q, snapshot.dim)
    k = check_k(k)
    return _search(snapshot, Q, k, where=where, group_by_doc=group_by_doc, settings=_settings(snapshot, options or {}),
                   stages=[PLAID], queries=None, candidates=None, device=device)


def to_hits(snapshot: Any, results: SearchResults, i: int = 0, *, query_length: int | None = None) -> list[Hit]:
    """``Hit`` objects (doc id, score, rank, text, metadata, parent id, span) for query ``i`` of ``results``."""
    pids = [int(p) for p in results.pids[i] if p >= 0]
    records = snapshot.docs.records(pids) if pids else []
    out = []
    for rank, (pid, score, record) in enumerate(zip(pids, results.scores[i], records), start=1):
        out.append(Hit(doc_id=record.doc_id, score=float(score), rank=rank, text=record.text,
                       metadata=record.metadata or {}, normalized_score=float(score) / query_length if query_length else None,
                       pid=pid, parent_id=record.parent_id, span=record.span))
    return out


# --------------------------------------------------------------------------- internals


def _search(snapshot: Any, Q: torch.Tensor, k: int, *, where: Mapping[str, Any] | None, group_by_doc: bool,
            settings: SearchSettings, stages: list[str], queries: Sequence[str] | None,
            candidates: int | None, device: torch.device | None = None) -> SearchResults:
    allowed = snapshot.allowed(where)

    def run(kk: int) -> SearchResults:
        return _rank(snapshot, Q, kk, allowed, settings, stages, queries, candidates, device)

    if group_by_doc:
        return grouped(run, k, allowed, snapshot.group_keys(), snapshot.num_passages)
    return run(k)


def _rank(snapshot: Any, Q: torch.Tensor, k: int, allowed: torch.Tensor | None, settings: SearchSettings,
          stages: list[str], queries: Sequence[str] | None, candidates: int | None,
          device: torch.device | None = None) -> SearchResults:
    """Top-``k`` ``SearchResults`` of every query in ``Q`` over the allowed passages."""
    if isinstance(snapshot, VectorSnapshot):
        return _stack([search_exact(snapshot, Q[i], k, allowed) for i in range(Q.shape[0])], k)
    arrays = SearchArrays.of(snapshot, device)
    if arrays.device.type != "cpu":
        Q = Q.to(arrays.device)
        allowed = None if allowed is None else allowed.to(arrays.device)
    live = arrays.num_passages if allowed is None else int(allowed.sum())
    resolved = settings.resolve(k, live, arrays.num_centroids)
    if stages == [PLAID]:
        return _stack(search_many(Q, arrays, k, resolved, allowed), k)
    assert queries is not None
    n_candidates = check_candidates(candidates, k)
    # fetch enough that n_candidates survive the deleted / filtered-out passages
    fetch = min(arrays.num_passages, n_candidates + (arrays.num_passages - live))
    stage_pids = [[ranking.pids for ranking in snapshot.first_stage(name).search_batch(list(queries), fetch)]
                  for name in stages if name != PLAID]
    return _stack(search_with_stages(Q, stage_pids, PLAID in stages, arrays, k, n_candidates, resolved,
                                     allowed), k)


def _stack(found: list[tuple[torch.Tensor, torch.Tensor]], k: int) -> SearchResults:
    scores = np.full((len(found), k), -np.inf, dtype=np.float32)
    pids = np.full((len(found), k), -1, dtype=np.int64)
    for i, (s, p) in enumerate(found):
        scores[i, : len(s)] = s.cpu().numpy()
        pids[i, : len(p)] = p.cpu().numpy()
    return SearchResults(scores, pids)


def grouped(run: Callable[[int], SearchResults], k: int, allowed: torch.Tensor | None, groups: torch.Tensor,
            num_passages: int) -> SearchResults:
    """Top ``k`` documents: ``run(n)`` (top-n passages) with n growing until every query has
    ``k`` distinct documents or the allowed passages are exhausted."""
    n_allowed = num_passages if allowed is None else int(allowed.sum())
    fetch = min(n_allowed, max(4 * k, k + 16))
    while True:
        results = run(max(fetch, 1))
        best, complete = best_per_group(results, groups, k)
        if complete or fetch >= n_allowed:
            return best
        fetch = min(n_allowed, fetch * 4)


def best_per_group(results: SearchResults, groups: torch.Tensor, k: int) -> tuple[SearchResults, bool]:
    """The best hit of each group, ``k`` groups per query at most: ``(results [n, k], all complete)``.

    A query is complete when it found ``k`` groups or its ranking was not full
    (every allowed passage was already ranked).
    """
    n, width = results.pids.shape
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    pids = np.full((n, k), -1, dtype=np.int64)
    complete = True
    group_of = groups.numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
    for i in range(n):
        seen: set[int] = set()
        got = 0
        for score, pid in zip(results.scores[i], results.pids[i]):
            if pid < 0:
                break
            g = int(group_of[pid])
            if g in seen:
                continue
            seen.add(g)
            scores[i, got], pids[i, got] = score, pid
            got += 1
            if got == k:
                break
        if got < k and results.pids[i, width - 1] >= 0:
            complete = False
    return SearchResults(scores, pids), complete


__all__ = ["check_k", "check_query", "as_query_tensor", "search_texts", "search_vectors", "to_hits", "grouped",
           "best_per_group"]
