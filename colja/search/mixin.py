"""Search methods of :class:`colja.Index`.

The index (``colja.index``) owns the arrays and the document store; this mixin
turns queries into hits with the PLAID stages in :mod:`colja.search.plaid`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from colja._validation import check_texts
from colja.search.first_stage import PLAID, check_candidates, resolve_stages, search_with_stages
from colja.search.plaid import SearchArrays, search_one
from colja.search.results import Hit, SearchResults
from colja.search.settings import SearchSettings


def _one_snapshot(method: Callable) -> Callable:
    """Run ``method`` on one snapshot of the index: a write committed meanwhile is not seen half-way."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        pinned = getattr(self, "_pinned", None)
        if pinned is None:
            return method(self, *args, **kwargs)
        with pinned():
            return method(self, *args, **kwargs)

    return wrapper


class SearchMixin:
    """Adds ``search``, ``search_batch`` and ``search_embeddings`` to ``Index``.

    Searches are thread-safe: the arrays are read-only and the kernels release
    the GIL, so several threads can search one loaded index at once. A search
    running while the index is written (``add`` / ``delete`` / ``update``)
    sees the collection before or after the write, never a mix.

    ``where=`` restricts hits to passages whose metadata match a filter
    (:mod:`colja.index.filters`: ``{"source": "wiki", "year": {"$gte": 2020}}``);
    ``min(k, matching passages)`` hits are still returned. ``group_by_doc=True``
    returns the best passage of each document (passages split from one
    document share its ``parent_id``), ``min(k, documents)`` of them.
    """

    _search_arrays_cache: SearchArrays | None = None
    _search_lock = threading.Lock()

    # ------------------------------------------------------------------ public
    def search(self, query: str, k: int = 10, *, first_stage: str | Sequence[str] = "plaid",
               candidates: int | None = None, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
               **overrides: Any) -> list[Hit]:
        """The ``min(k, passages)`` best passages for one text query, best first.

        ``first_stage``: ``"plaid"`` (default), a stored first stage's name
        (``"bm25"``, ``"dense"``, ``"static"``: see ``add_first_stage``), ``"hybrid"``
        (PLAID fused with every stored first stage) or a list of names to fuse;
        ``candidates`` (default ``max(100, 10*k)``) is how many each one passes
        to the exact MaxSim rerank (:mod:`colja.search.first_stage`).
        ``overrides`` are :class:`~colja.search.settings.SearchSettings` fields:
        ``ncells``, ``centroid_score_threshold``, ``ndocs``, ``nfinal``,
        ``exhaustive=True`` (score every passage exactly).
        ``where``: a metadata filter; ``group_by_doc``: best passage per document
        (see the class docstring).
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for several queries")
        return self.search_batch([query], k, first_stage=first_stage, candidates=candidates, where=where,
                                 group_by_doc=group_by_doc, **overrides)[0]

    @_one_snapshot
    def search_batch(self, queries: list[str], k: int = 10, *, first_stage: str | Sequence[str] = "plaid",
                     candidates: int | None = None, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
                     **overrides: Any) -> list[list[Hit]]:
        """``search`` for several queries (encoded together)."""
        queries = check_texts(queries, what="queries")
        allowed = self._allowed_mask(where) if where else None  # a bad filter fails before any encoding
        stages = resolve_stages(first_stage, list(getattr(self, "first_stages", {}) or {}))
        if not queries:
            return []
        Q = self.model.encode_queries(queries)
        if stages == [PLAID]:
            if candidates is not None:
                raise ValueError("candidates= applies to first_stage='bm25' / 'dense' / 'static' / 'hybrid'; "
                                 "PLAID's own knobs are ncells, ndocs and nfinal")
            def run(kk: int) -> SearchResults:
                return self.search_embeddings(Q, kk, where=where, **overrides)
        else:
            def run(kk: int) -> SearchResults:
                return self._search_first_stages(queries, Q, kk, stages, candidates, overrides, where=where)
        if group_by_doc:
            results = self._grouped(run, _check_k(k), allowed if where else self._allowed_mask())
        else:
            results = run(k)
        return [self.hits(results, i, query_lengths=int((Q[i].abs().sum(1) > 0).sum())) for i in range(len(queries))]

    @_one_snapshot
    def search_embeddings(self, Q, k: int = 10, *, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
                          **overrides: Any) -> SearchResults:
        """Search with precomputed query vectors.

        Args:
            Q: float ``[Lq, dim]`` (one query) or ``[n_queries, Lq, dim]``,
                numpy or torch; all-zero rows (padding) are ignored.
            where, group_by_doc: as for :meth:`search`.
        Returns:
            :class:`SearchResults` with ``[n_queries, k]`` arrays, padded with
            ``-inf`` / ``-1`` where fewer than k passages (documents) are allowed.
        """
        Q = _as_query_tensor(Q, self.dim)
        k = _check_k(k)
        settings = SearchSettings.from_overrides(overrides)
        arrays = self._search_arrays()
        allowed = self._allowed_mask(where) if where else self._allowed_mask()
        if group_by_doc:
            return self._grouped(lambda kk: self.search_embeddings(Q, kk, where=where, **overrides), k, allowed)
        resolved = settings.resolve(k, self._live_count(allowed, arrays), arrays.num_centroids)
        scores = np.full((Q.shape[0], k), -np.inf, dtype=np.float32)
        pids = np.full((Q.shape[0], k), -1, dtype=np.int64)
        for i in range(Q.shape[0]):
            s, p = search_one(Q[i], arrays, k, resolved, allowed)
            scores[i, : len(s)] = s.numpy()
            pids[i, : len(p)] = p.numpy()
        return SearchResults(scores, pids)

    @_one_snapshot
    def hits(self, results: SearchResults, i: int = 0, *, query_lengths: int | None = None) -> list[Hit]:
        """``Hit`` objects (doc id, score, rank, text, metadata, parent id, span) for query ``i`` of ``results``."""
        pids = [int(p) for p in results.pids[i] if p >= 0]
        records = self.docs.records(pids) if pids else []
        out = []
        for rank, (pid, score, record) in enumerate(zip(pids, results.scores[i], records), start=1):
            normalized = float(score) / query_lengths if query_lengths else None
            out.append(Hit(doc_id=record.doc_id, score=float(score), rank=rank, text=record.text,
                           metadata=record.metadata or {}, normalized_score=normalized, pid=pid,
                           parent_id=record.parent_id, span=record.span))
        return out

    # ------------------------------------------------------------------ internals
    def _search_first_stages(self, queries: list[str], Q, k: int, stages: list[str], candidates: int | None,
                             overrides: dict[str, Any], where: Mapping[str, Any] | None = None) -> SearchResults:
        Q = _as_query_tensor(Q, self.dim)
        k = _check_k(k)
        n_candidates = check_candidates(candidates, k)
        arrays = self._search_arrays()
        allowed = self._allowed_mask(where) if where else self._allowed_mask()
        live = self._live_count(allowed, arrays)
        settings = SearchSettings.from_overrides(overrides).resolve(k, live, arrays.num_centroids)
        # fetch enough that n_candidates survive the deleted / filtered-out passages
        fetch = min(arrays.num_passages, n_candidates + (arrays.num_passages - live))
        stage_pids = [[hits.pids for hits in self.first_stage(name).search_batch(queries, fetch)]
                      for name in stages if name != PLAID]
        found = search_with_stages(Q, stage_pids, PLAID in stages, arrays, k, n_candidates, settings, allowed)
        scores = np.full((len(found), k), -np.inf, dtype=np.float32)
        pids = np.full((len(found), k), -1, dtype=np.int64)
        for i, (s, p) in enumerate(found):
            scores[i, : len(s)] = s.numpy()
            pids[i, : len(p)] = p.numpy()
        return SearchResults(scores, pids)

    def _search_arrays(self) -> SearchArrays:
        cached = self._search_arrays_cache
        if cached is not None:
            return cached
        with self._search_lock:
            if self._search_arrays_cache is None:
                self._search_arrays_cache = SearchArrays(
                    centroids=self.centroids.float().contiguous(),
                    codes=self.codes,
                    residuals=self.residuals,
                    norms=self.norms,
                    bucket_weights=self.bucket_weights.float(),
                    nbits=int(self.nbits),
                    doc_offsets=self.doc_offsets,
                    ivf=self.ivf,
                    ivf_offsets=self.ivf_offsets,
                )
            return self._search_arrays_cache

    def _grouped(self, run: Callable[[int], SearchResults], k: int, allowed: torch.Tensor | None) -> SearchResults:
        """Top ``k`` documents: ``run(n)`` (top-n passages) with n growing until every query has
        ``k`` distinct documents or the allowed passages are exhausted."""
        n_allowed = self._search_arrays().num_passages if allowed is None else int(allowed.sum())
        groups = self._group_keys()
        fetch = min(n_allowed, max(4 * k, k + 16))
        while True:
            results = run(max(fetch, 1))
            grouped, complete = best_per_group(results, groups, k)
            if complete or fetch >= n_allowed:
                return grouped
            fetch = min(n_allowed, fetch * 4)

    def _group_keys(self) -> torch.Tensor:
        """int64 [num_passages]: the document each passage belongs to (one passage each by default)."""
        return torch.arange(self._search_arrays().num_passages)

    def _allowed_mask(self, where: Mapping[str, Any] | None = None) -> torch.Tensor | None:
        """bool [num_passages] of passages that may be returned, or None for all."""
        if where:
            raise NotImplementedError(f"{type(self).__name__} has no metadata store to filter with where=")
        deleted = getattr(self, "deleted_mask", None)
        if deleted is None:
            return None
        mask = deleted() if callable(deleted) else deleted
        if mask is None or not bool(mask.any()):
            return None
        return ~mask

    @staticmethod
    def _live_count(allowed: torch.Tensor | None, arrays: SearchArrays) -> int:
        return arrays.num_passages if allowed is None else int(allowed.sum())


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


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def _as_query_tensor(Q, dim: int) -> torch.Tensor:
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
