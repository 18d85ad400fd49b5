"""Exact MaxSim, the readable oracle every scoring path (kernels, search, training loss) is tested against.

score(q, d) = Σ over query vectors of max over document vectors of the dot
product. Zero query rows (padding from dynamic query length) add nothing.
"""

from __future__ import annotations

import torch

# Bound on the [query vectors x document vectors] block materialised at once.
_BLOCK_ELEMENTS = 1 << 24


def maxsim_matrix(Q: torch.Tensor, docs: list[torch.Tensor]) -> torch.Tensor:
    """Scores ``float32 [n_queries, n_docs]`` of queries ``[n_q, L, dim]`` against documents.

    ``docs`` is a list of ``[n_i, dim]`` tensors (``n_i`` may be 0: score 0).
    """
    if Q.dim() == 2:
        Q = Q.unsqueeze(0)
    n_q, length, dim = Q.shape
    out = torch.zeros((n_q, len(docs)), dtype=torch.float32)
    if not docs or n_q == 0:
        return out
    Qf = Q.reshape(n_q * length, dim).float()
    doclens = torch.tensor([d.shape[0] for d in docs], dtype=torch.long)
    start = 0
    while start < len(docs):
        # grow the block of documents while the score block stays bounded
        end, tokens = start, 0
        while end < len(docs) and (end == start or (tokens + doclens[end]) * n_q * length <= _BLOCK_ELEMENTS):
            tokens += int(doclens[end])
            end += 1
        block = [d for d in docs[start:end]]
        lens = doclens[start:end]
        if tokens:
            flat = torch.cat([d.float() for d in block])
            sims = flat @ Qf.T  # [tokens, n_q*L]
            nonempty = lens > 0
            reduced = torch.segment_reduce(sims, "max", lengths=lens[nonempty], axis=0)  # [docs, n_q*L]
            scores = reduced.reshape(-1, n_q, length).sum(2).T
            out[:, start:end][:, nonempty] = scores
        start = end
    return out


def maxsim_scores(Q: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Scores of one query ``[L, dim]`` against one document ``[n, dim]`` (a float)."""
    if D.shape[0] == 0:
        return torch.tensor(0.0)
    return (Q.float() @ D.float().T).max(dim=1).values.sum()
