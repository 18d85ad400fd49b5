"""Exact MaxSim search over uncompressed vectors held in memory (the engine of ``InMemoryIndex``).

A :class:`VectorSnapshot` is an immutable view of an in-memory collection:
its passages' vectors (float16, scored in float32), and the document store
rows they belong to. Every search scores every allowed passage exactly.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from colja import kernels
from colja.index.docstore import DocStore
from colja.search.rerank import pack_passages, score_passages


class VectorSnapshot:
    """Vectors of passages ``0..n-1`` and their document store, as of one moment.

    ``vectors[p]``: float ``[n_p, dim]`` (deleted passages may hold ``[0, dim]``);
    ``docs``: the collection's store (rows added later are ignored; deletions
    made later are honoured).
    """

    first_stages: dict[str, Any] = {}

    def __init__(self, vectors: Sequence[torch.Tensor], docs: DocStore, dim: int):
        self.dim = dim
        self.docs = docs
        self.num_passages = len(vectors)
        self.D, self.doc_offsets = pack_passages(vectors, dim)
        deleted = torch.from_numpy(docs.deleted_mask()[: self.num_passages])
        self._live = None if not bool(deleted.any()) else ~deleted
        self._groups: torch.Tensor | None = None

    def allowed(self, where: Mapping[str, Any] | None = None) -> torch.Tensor | None:
        """bool ``[num_passages]`` of passages a search may return, or None for all."""
        if not where:
            return self._live
        mask = torch.from_numpy(self.docs.filter_mask(where)[: self.num_passages].copy())
        return mask if self._live is None else mask & self._live

    def group_keys(self) -> torch.Tensor:
        if self._groups is None:
            self._groups = torch.from_numpy(self.docs.group_keys()[: self.num_passages].copy())
        return self._groups

    def first_stage(self, name: str) -> Any:
        raise ValueError(f"an in-memory index has no first stage {name!r}; it scores every passage exactly")


def search_exact(snapshot: VectorSnapshot, Q: torch.Tensor, k: int,
                 allowed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k ``(scores float32, pids int64)`` of one query ``[Lq, dim]`` over every allowed passage."""
    pids = torch.arange(snapshot.num_passages, dtype=torch.long)
    if allowed is not None:
        pids = pids[allowed]
    if pids.numel() == 0:
        return torch.empty(0, dtype=torch.float32), pids
    return kernels.top_k(score_passages(Q, snapshot.D, snapshot.doc_offsets, pids), pids, k)


__all__ = ["VectorSnapshot", "search_exact"]
