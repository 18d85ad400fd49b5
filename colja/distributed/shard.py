"""One shard's side of a sharded index: an ordinary :class:`~colja.Index` and the calls the
fan-out makes on it. Runs in the caller's process (local shards, in threads) or
inside a Ray actor (:mod:`colja.distributed.shards`); everything it takes and
returns is plain data (numpy arrays, lists, ``Hit``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from colja.search.results import Hit, SearchResults


class _GivenQueries:
    """An encoder that returns query vectors encoded once by the caller (for every shard)."""

    def __init__(self, Q: torch.Tensor):
        self._Q = Q

    def encode_queries(self, queries: Sequence[str], **kwargs: Any) -> torch.Tensor:
        return self._Q


class ShardServer:
    """Shard ``number`` of a sharded index: the index at ``path``."""

    def __init__(self, number: int, path: str, model: Any = None, mmap: bool = False, device: Any = None):
        from colja.searchable.index import Index

        self.number = number
        self.path = os.fspath(path)
        self.index = Index.load(self.path, model=model, mmap=mmap, device=device)

    # ---------------------------------------------------------------- reads

    def pid(self) -> int:
        return os.getpid()

    def info(self) -> dict[str, Any]:
        return {"live": len(self.index), "passages": self.index.num_passages, "dim": self.index.dim,
                "first_stages": list(self.index.first_stages), "model": self.index.manifest.get("model"),
                "next_default_id": self._next_default_id()}

    def __len__(self) -> int:
        return len(self.index)

    def live(self) -> int:
        return len(self.index)

    def search_texts(self, queries: list[str], Q: Any, k: int, first_stage: Any, candidates: int | None,
                     where: Mapping[str, Any] | None, group_by_doc: bool, options: dict[str, Any]) -> list[list[Hit]]:
        from colja.search import engine

        with self.index.snapshot() as snapshot:
            return engine.search_texts(snapshot, _GivenQueries(torch.as_tensor(Q)), queries, k,
                                       first_stage=first_stage, candidates=candidates, where=where,
                                       group_by_doc=group_by_doc, options=options,
                                       device=None if self.index.device.type == "cpu" else self.index.device)

    def search_vectors(self, Q: Any, k: int, where: Mapping[str, Any] | None, group_by_doc: bool,
                       options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        results = self.index.search_embeddings(torch.as_tensor(Q), k, where=where, group_by_doc=group_by_doc, **options)
        return results.scores, results.pids

    def hits(self, pids: list[int], scores: list[float], query_length: int | None) -> list[Hit]:
        results = SearchResults(np.asarray([scores], np.float32), np.asarray([pids], np.int64))
        return self.index.hits(results, 0, query_length=query_length)

    def passage_vectors(self, pids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        flat, lens = self.index.passage_vectors(torch.as_tensor(pids, dtype=torch.long))
        return flat.numpy(), lens.numpy()

    def live_ids(self, doc_ids: list[str]) -> list[str]:
        """Which of ``doc_ids`` have live passages here (passage ids or parents of split passages)."""
        with self.index.snapshot() as s:
            return list(s.docs.live_pids_by_id(doc_ids))

    def _next_default_id(self) -> int:
        from colja.index.writes import next_default_id

        with self.index.snapshot() as s:
            return next_default_id(s)

    # ---------------------------------------------------------------- writes

    def add(self, texts: list[str] | None, doc_ids: list[str], metadata: list[dict | None] | None,
            embeddings: list[np.ndarray] | None, options: dict[str, Any]) -> list[str]:
        return self.index.add(texts, doc_ids, metadata, embeddings=embeddings, **options)

    def delete(self, doc_ids: list[str]) -> int:
        return self.index.delete(doc_ids)

    def update(self, doc_ids: list[str], texts: list[str] | None, metadata: list[dict | None] | None,
               embeddings: list[np.ndarray] | None, options: dict[str, Any]) -> None:
        self.index.update(doc_ids, texts, metadata, embeddings=embeddings, **options)

    def refresh(self) -> bool:
        return self.index.refresh()

    def close(self) -> None:
        self.index.close()


__all__ = ["ShardServer"]
