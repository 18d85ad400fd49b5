"""Candidates from stored first stages (one, or several fused), reranked by exact MaxSim.

``index.search(q, k, first_stage=...)``:

* ``"plaid"`` (default): PLAID alone (:mod:`colja.search.plaid`);
* a stored first stage's name (``"bm25"``, ``"dense"``, ``"static"`` or the
  ``name=`` given to ``add_first_stage``): its top ``candidates`` passages;
* ``"hybrid"``: reciprocal-rank fusion of PLAID's ranking and every stored first
  stage's, cut to ``candidates``; a list such as ``["plaid", "bm25"]`` fuses those.

The candidates are then scored by the same exact MaxSim kernel as PLAID's last
stage (:func:`colja.search.plaid.exact_top_k`, on the compressed vectors) and
the best ``k`` returned. Deleted or filtered-out passages are dropped before
scoring. When the candidates are fewer than ``k`` (BM25 finds no shared word),
PLAID's hits fill the rest, so every search still returns ``min(k, live)`` hits.

Default ``candidates``: ``max(100, 10 * k)`` per first stage — enough for
reranking to matter (BM25 → MaxSim gains most of its recall between ranks 10
and 100) while the exact scoring stays a few milliseconds.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from colja.firststage.fusion import reciprocal_rank_fusion
from colja import kernels
from colja.search.plaid import SearchArrays, centroid_scores, exact_top_k, search_one
from colja.search.settings import SearchSettings

PLAID = "plaid"
HYBRID = "hybrid"


def default_candidates(k: int) -> int:
    """Candidates taken from each first stage for top-``k`` search: ``max(100, 10 * k)``."""
    return max(100, 10 * k)


def resolve_stages(first_stage: Any, stored: Sequence[str]) -> list[str]:
    """The stages a ``first_stage=`` value names (``"plaid"`` included where it takes part)."""
    if isinstance(first_stage, str):
        if first_stage == PLAID:
            return [PLAID]
        if first_stage == HYBRID:
            if not stored:
                raise ValueError("first_stage='hybrid' fuses PLAID with the index's first stages, but it has none; "
                                 "add one with index.add_first_stage('bm25') (or 'dense' / 'static')")
            return [PLAID, *sorted(stored)]
        names = [first_stage]
    elif isinstance(first_stage, (list, tuple)) and first_stage and all(isinstance(n, str) for n in first_stage):
        names = list(dict.fromkeys(first_stage))
    else:
        raise TypeError(f"first_stage must be 'plaid', 'hybrid', a stored first stage's name or a list of names, "
                        f"got {first_stage!r}")
    for name in names:
        if name != PLAID and name not in stored:
            raise ValueError(f"this index has no first stage named {name!r} (stored: {sorted(stored) or 'none'}); "
                             f"add one with index.add_first_stage(...) or use first_stage='plaid'")
    return names


def check_candidates(candidates: Any, k: int) -> int:
    if candidates is None:
        return default_candidates(k)
    if not isinstance(candidates, (int, np.integer)) or isinstance(candidates, bool) or candidates <= 0:
        raise ValueError(f"candidates must be a positive int, got {candidates!r}")
    return max(int(candidates), k)


def search_with_stages(Q: torch.Tensor, stage_pids: list[list[np.ndarray]], use_plaid: bool, arrays: SearchArrays,
                       k: int, n_candidates: int, settings: SearchSettings, allowed: torch.Tensor | None,
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k ``(scores, pids)`` per query from first-stage rankings (and PLAID when ``use_plaid``).

    ``Q``: float32 ``[n_queries, Lq, dim]``; ``stage_pids[s][i]``: stage ``s``'s
    ranked pids for query ``i``; ``settings``: resolved PLAID settings.
    """
    allowed_np = None if allowed is None else allowed.cpu().numpy()
    live = arrays.num_passages if allowed is None else int(allowed.sum())
    out = []
    for i in range(Q.shape[0]):
        rankings = []
        for ranked in (lists[i] for lists in stage_pids):
            ranked = np.asarray(ranked, dtype=np.int64)
            ranked = ranked[(ranked >= 0) & (ranked < arrays.num_passages)]
            if allowed_np is not None:
                ranked = ranked[allowed_np[ranked]]
            rankings.append(ranked[:n_candidates])
        if use_plaid:
            rankings.insert(0, search_one(Q[i], arrays, n_candidates, settings, allowed)[1].cpu().numpy())
        if len(rankings) == 1:
            pids = rankings[0]
        else:
            pids = reciprocal_rank_fusion(rankings, limit=n_candidates).pids
        if len(pids) < min(k, live):  # too few candidates: PLAID fills the rest
            extra = search_one(Q[i], arrays, k, settings, allowed)[1].cpu().numpy()
            pids = np.concatenate([pids, extra[~np.isin(extra, pids)]])
        ranked_pids = torch.from_numpy(np.ascontiguousarray(pids, dtype=np.int64)).to(arrays.device)
        out.append(rerank_pids(Q[i], arrays, ranked_pids, k))
    return out


def rerank_pids(Q: torch.Tensor, arrays: SearchArrays, pids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact MaxSim of ``pids`` on the compressed vectors (PLAID's last stage), best ``k``."""
    Q = kernels.query_rows(Q.float()).contiguous()
    if Q.shape[0] == 0 or pids.numel() == 0:
        return (torch.empty(0, dtype=torch.float32, device=Q.device),
                torch.empty(0, dtype=torch.long, device=Q.device))
    return exact_top_k(Q, centroid_scores(Q, arrays.centroids), arrays, pids, k)
