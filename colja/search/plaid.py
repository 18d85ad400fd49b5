"""PLAID candidate generation and scoring, as pure stage functions.

Stages (Santhanam et al. 2022, "PLAID: an efficient engine for late interaction retrieval"):

1. ``centroid_scores``: S = centroids · Qᵀ, kept transposed as ``[C, Lq]``;
2. ``candidate_pids``: the top ``ncells`` centroids of every query vector, the
   passages of their IVF lists;
3. pruned centroid interaction (centroids scoring below the threshold for every
   query vector are ignored) → top ``ndocs`` (kernels.prune_candidates); when
   ``nfinal < ndocs``, full centroid interaction of those → top ``nfinal``
   (kernels.filter_candidates does both);
4. exact MaxSim of the survivors on their compressed vectors → top k
   (kernels.maxsim_packed_topk: every survivor is scored approximately with a
   proven error bound, and only those that can still reach the top k are scored
   exactly, q·(c + r)/‖c + r‖ through lookup tables — the same top k as scoring
   them all exactly).

colja guarantees ``min(k, allowed passages)`` unique hits: when pruning leaves
fewer, the search widens and, at worst, scores every allowed passage exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from colja import kernels
from colja.search.settings import SearchSettings


@dataclass
class SearchArrays:
    """The parts of an index the search reads (CPU tensors, possibly memory-mapped, or copies on a GPU).

    centroids: float32 [C, dim]; codes: int32 [N]; residuals: uint8 [N, dim*nbits/8];
    norms: float32 [N]; bucket_weights: float32 [2**nbits]; doc_offsets: int64 [n+1];
    ivf: int32 [sum of list lengths] (sorted unique pids per centroid);
    ivf_offsets: int64 [C+1].
    """

    centroids: torch.Tensor
    codes: torch.Tensor
    residuals: torch.Tensor
    norms: torch.Tensor
    bucket_weights: torch.Tensor
    nbits: int
    doc_offsets: torch.Tensor
    ivf: torch.Tensor
    ivf_offsets: torch.Tensor

    @classmethod
    def of(cls, snapshot: Any, device: torch.device | None = None) -> "SearchArrays":
        """The arrays of an :class:`~colja.index.snapshot.IndexSnapshot` on ``device`` (default: where
        the snapshot holds them, the CPU), built once per snapshot and device."""
        def make() -> "SearchArrays":
            arrays = cls(
                centroids=snapshot.centroids.float().contiguous(), codes=snapshot.codes, residuals=snapshot.residuals,
                norms=snapshot.norms, bucket_weights=snapshot.bucket_weights.float(), nbits=snapshot.nbits,
                doc_offsets=snapshot.doc_offsets, ivf=snapshot.ivf, ivf_offsets=snapshot.ivf_offsets)
            return arrays if device is None or device.type == "cpu" else arrays.to(device)

        key = "plaid.arrays" if device is None or device.type == "cpu" else f"plaid.arrays@{device}"
        return snapshot.cached(key, make)

    def to(self, device: torch.device) -> "SearchArrays":
        """A copy of every array on ``device`` (e.g. the GPU)."""
        moved = {name: getattr(self, name).to(device) for name in
                 ("centroids", "codes", "residuals", "norms", "bucket_weights", "doc_offsets", "ivf", "ivf_offsets")}
        return SearchArrays(nbits=self.nbits, **moved)

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def num_passages(self) -> int:
        return int(self.doc_offsets.numel() - 1)

    @property
    def num_centroids(self) -> int:
        return int(self.centroids.shape[0])


def centroid_scores(Q: torch.Tensor, centroids: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``float32 [C, Lq]``: every centroid against every query vector (into ``out`` when given)."""
    if out is not None:
        return torch.mm(centroids, Q.T.contiguous(), out=out)
    return torch.mm(centroids, Q.T.contiguous())  # a contiguous right operand: MKL's faster kernel


_scratch = threading.local()


def _score_buffers(n: int, C: int, Lq: int, device: torch.device) -> list[torch.Tensor]:
    """``n`` reusable ``[C, Lq]`` float32 buffers of this thread: a fresh 2 MB matrix per query
    would cost the kernel's page zeroing on every search."""
    pool = getattr(_scratch, "pool", None)
    if pool is None or pool[0].shape != (C, Lq) or pool[0].device != device or len(pool) < n:
        pool = [torch.empty((C, Lq), dtype=torch.float32, device=device) for _ in range(max(n, 1))]
        _scratch.pool = pool
    return pool[:n]


def candidate_pids(scores_t: torch.Tensor, ncells: int, ivf: torch.Tensor, ivf_offsets: torch.Tensor,
                   n_docs: int) -> torch.Tensor:
    """Sorted unique passage ids (int64) in the IVF lists of each query vector's top cells."""
    return kernels.candidate_pids(scores_t, ncells, ivf, ivf_offsets, n_docs)


def exact_scores(Q: torch.Tensor, scores_t: torch.Tensor, arrays: SearchArrays, pids: torch.Tensor) -> torch.Tensor:
    """Exact MaxSim of ``pids`` on their compressed vectors, float32 [len(pids)]."""
    return kernels.maxsim_packed(Q, scores_t, arrays.codes, arrays.residuals, arrays.norms, arrays.bucket_weights,
                                 arrays.nbits, arrays.doc_offsets, pids)


def exact_top_k(Q: torch.Tensor, scores_t: torch.Tensor, arrays: SearchArrays, pids: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` ``(scores, pids)`` of ``pids`` by exact MaxSim on their compressed vectors
    (= ``kernels.top_k(exact_scores(...), pids, k)``, without scoring hopeless passages exactly)."""
    return kernels.maxsim_packed_topk(Q, scores_t, arrays.codes, arrays.residuals, arrays.norms,
                                      arrays.bucket_weights, arrays.nbits, arrays.doc_offsets, pids, k)


def search_one(Q: torch.Tensor, arrays: SearchArrays, k: int, settings: SearchSettings,
               allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k ``(scores float32, pids int64)`` of one query ``Q`` float32 [Lq, dim].

    ``allowed`` (bool [num_passages]) restricts the result to some passages
    (deletions, metadata filters). ``settings`` must be resolved.
    """
    Q = kernels.query_rows(Q.float()).contiguous()
    if Q.shape[0] == 0:
        return _empty(Q.device)
    return _search_scored(Q, centroid_scores(Q, arrays.centroids), arrays, k, settings, allowed)


def search_many(Q: torch.Tensor, arrays: SearchArrays, k: int, settings: SearchSettings,
                allowed: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`search_one` for every query of ``Q`` float32 [n, Lq, dim], with the same results.

    On the CPU the C++ kernels search as many queries per call as there are threads,
    one per thread (:func:`colja.kernels.plaid_search_batch`): threads share whole
    queries instead of splitting each small stage. (More at once would let their
    centroid scores, C*Lq*4 bytes each, leave the cache before they are read.)
    """
    out = None
    if not settings.exhaustive and arrays.device.type == "cpu":
        out = _search_batched(Q, arrays, k, settings, allowed)
    if out is None:
        out = [search_one(Q[i], arrays, k, settings, allowed) for i in range(Q.shape[0])]
    return out


def _search_batched(Q, arrays: SearchArrays, k: int, settings: SearchSettings, allowed):
    nfinal = max(settings.nfinal, k)
    ndocs = max(settings.ndocs, nfinal)
    if nfinal < ndocs:  # the stage-3 variant: query by query
        return None
    n_allowed = arrays.num_passages if allowed is None else int(allowed.sum())
    k = min(k, n_allowed)
    rows = [kernels.query_rows(Q[i].float()).contiguous() for i in range(Q.shape[0])]
    out: list = [_empty(Q.device) for _ in rows]
    todo = [i for i, q in enumerate(rows) if q.shape[0] > 0] if k > 0 else []
    per_call = max(1, torch.get_num_threads())
    for start in range(0, len(todo), per_call):
        group = todo[start:start + per_call]
        if len({rows[i].shape[0] for i in group}) == 1:
            buffers = _score_buffers(len(group), arrays.num_centroids, rows[group[0]].shape[0], Q.device)
            csts = [centroid_scores(rows[i], arrays.centroids, out=b) for i, b in zip(group, buffers)]
        else:
            csts = [centroid_scores(rows[i], arrays.centroids) for i in group]
        got = kernels.plaid_search_batch([rows[i] for i in group], csts, arrays.ivf, arrays.ivf_offsets, arrays.codes,
                                         arrays.residuals, arrays.norms, arrays.bucket_weights, arrays.nbits,
                                         arrays.doc_offsets, allowed, settings.ncells,
                                         settings.centroid_score_threshold, ndocs, k)
        if got is None:
            return None
        scores, pids, too_few = got
        for j, i in enumerate(group):
            if bool(too_few[j]):  # fewer than k candidates: probe wider, query by query
                out[i] = _search_scored(rows[i], csts[j], arrays, k, settings, allowed)
            else:
                keep = pids[j] >= 0
                out[i] = (scores[j][keep], pids[j][keep])
    return out


def _search_scored(Q: torch.Tensor, scores_t: torch.Tensor, arrays: SearchArrays, k: int, settings: SearchSettings,
                   allowed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of one query (non-zero rows ``Q`` [Lq, dim]) given its centroid scores ``[C, Lq]``."""
    n_allowed = arrays.num_passages if allowed is None else int(allowed.sum())
    k = min(k, n_allowed)
    if k <= 0:
        return _empty(Q.device)
    if settings.exhaustive:
        return _exhaustive(Q, scores_t, arrays, k, allowed)

    ncells = settings.ncells
    while True:
        pids = candidate_pids(scores_t, ncells, arrays.ivf, arrays.ivf_offsets, arrays.num_passages)
        if allowed is not None and pids.numel():
            pids = pids[allowed[pids]]
        if pids.numel() >= k or ncells >= arrays.num_centroids:
            break
        ncells = min(ncells * 4, arrays.num_centroids)  # too few candidates: probe wider
    if pids.numel() < k:
        return _exhaustive(Q, scores_t, arrays, k, allowed)

    nfinal = max(settings.nfinal, k)
    ndocs = max(settings.ndocs, nfinal)
    if nfinal >= ndocs:  # every survivor of the pruned interaction is scored: stage 3 would only reorder them
        survivors = kernels.prune_candidates(scores_t, arrays.ivf, arrays.ivf_offsets, pids, arrays.num_passages,
                                             settings.centroid_score_threshold, ndocs)
    else:
        keep = scores_t.max(dim=1).values >= settings.centroid_score_threshold
        survivors, _ = kernels.filter_candidates(scores_t, arrays.codes, arrays.doc_offsets, pids, keep, ndocs,
                                                  nfinal)
    return exact_top_k(Q, scores_t, arrays, survivors, k)


def _exhaustive(Q, scores_t, arrays: SearchArrays, k: int, allowed: torch.Tensor | None):
    pids = torch.arange(arrays.num_passages, dtype=torch.long, device=scores_t.device)
    if allowed is not None:
        pids = pids[allowed]
    return exact_top_k(Q, scores_t, arrays, pids, k)


def _empty(device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty(0, dtype=torch.float32, device=device), torch.empty(0, dtype=torch.long, device=device)
