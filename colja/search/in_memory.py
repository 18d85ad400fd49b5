"""An index without files: uncompressed vectors in RAM, exact MaxSim search.

For notebooks and small collections (up to some tens of thousands of
passages): nothing is written, every search scores every passage exactly, and
``add`` / ``delete`` are instant. Vectors are kept in float16 (256 bytes per
128-d token vector) and scored in float32.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

import torch

from colja._validation import check_texts
from colja.search.rerank import flatten, rank_scores, resolve_model, score_passages
from colja.search.results import Hit


class InMemoryIndex:
    """Exact MaxSim search over passages held in memory.

    Build with :meth:`colja.Index.in_memory` (or ``InMemoryIndex(model)`` then
    :meth:`add`). Thread-safe: writes take a lock, searches see a consistent
    snapshot.
    """

    def __init__(self, model=None, *, batch_size: int = 32):
        self.model = resolve_model(model)
        self.batch_size = batch_size
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadata: list[dict[str, Any]] = []
        self._vectors: list[torch.Tensor] = []
        self._position: dict[str, int] = {}
        self._flat: tuple[torch.Tensor, torch.Tensor] | None = None
        self._lock = threading.Lock()

    @classmethod
    def build(cls, collection: Iterable[str], *, model=None, doc_ids=None, metadata=None, batch_size: int = 32) -> "InMemoryIndex":
        index = cls(model, batch_size=batch_size)
        index.add(collection, doc_ids=doc_ids, metadata=metadata)
        return index

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def doc_ids(self) -> list[str]:
        return list(self._ids)

    def add(self, texts: Iterable[str], doc_ids: list[str] | None = None, metadata: list[dict] | None = None) -> list[str]:
        """Encode and add passages; returns their doc ids (generated when absent)."""
        texts = check_texts(texts, what="texts")
        with self._lock:
            ids = self._new_ids(len(texts), doc_ids)
            if metadata is not None and len(metadata) != len(texts):
                raise ValueError(f"metadata has {len(metadata)} entries for {len(texts)} texts")
            if metadata is not None:
                for i, m in enumerate(metadata):
                    if m is not None and not isinstance(m, dict):
                        raise TypeError(f"metadata[{i}] must be a dict or None, got {type(m).__name__}")
        vectors = self.model.encode_documents(texts, batch_size=self.batch_size) if texts else []
        with self._lock:
            for i, (doc_id, text, vec) in enumerate(zip(ids, texts, vectors)):
                if doc_id in self._position:  # added concurrently since the check
                    raise ValueError(f"doc id {doc_id!r} is already in the index")
                self._position[doc_id] = len(self._ids)
                self._ids.append(doc_id)
                self._texts.append(text)
                self._metadata.append(dict(metadata[i] or {}) if metadata is not None else {})
                self._vectors.append(vec.half())
            self._flat = None
        return ids

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Remove passages by doc id (unknown ids are an error, nothing is removed then)."""
        doc_ids = list(doc_ids)
        with self._lock:
            missing = [d for d in doc_ids if d not in self._position]
            if missing:
                raise KeyError(f"unknown doc ids {missing[:5]}{'…' if len(missing) > 5 else ''}")
            drop = {self._position[d] for d in doc_ids}
            keep = [i for i in range(len(self._ids)) if i not in drop]
            self._ids = [self._ids[i] for i in keep]
            self._texts = [self._texts[i] for i in keep]
            self._metadata = [self._metadata[i] for i in keep]
            self._vectors = [self._vectors[i] for i in keep]
            self._position = {d: i for i, d in enumerate(self._ids)}
            self._flat = None

    def search(self, query: str, k: int = 10) -> list[Hit]:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        queries = check_texts(queries, what="queries")
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not queries:
            return []
        Q = self.model.encode_queries(queries)
        return [self.search_embeddings(Q[i], k) for i in range(len(queries))]

    def search_embeddings(self, Q: torch.Tensor, k: int = 10) -> list[Hit]:
        """Hits for one query's vectors ``[Lq, dim]`` (zero rows ignored)."""
        with self._lock:
            if self._flat is None:
                self._flat = flatten(self._vectors) if self._vectors else None
            flat, ids, texts, metadata = self._flat, self._ids, self._texts, self._metadata
        if flat is None:
            return []
        scores = score_passages(Q, *flat)
        n_q = max(int((Q.abs().sum(1) > 0).sum()), 1)
        return [Hit(doc_id=ids[i], score=float(scores[i]), rank=r, text=texts[i], metadata=metadata[i],
                    normalized_score=float(scores[i]) / n_q, pid=i)
                for r, i in enumerate(rank_scores(scores, k), start=1)]

    def _new_ids(self, n: int, doc_ids: list[str] | None) -> list[str]:
        if doc_ids is None:
            start = len(self._ids)
            ids, i = [], start
            while len(ids) < n:
                if str(i) not in self._position:
                    ids.append(str(i))
                i += 1
            return ids
        doc_ids = list(doc_ids)
        if len(doc_ids) != n:
            raise ValueError(f"doc_ids has {len(doc_ids)} entries for {n} texts")
        for i, d in enumerate(doc_ids):
            if not isinstance(d, str):
                raise TypeError(f"doc_ids[{i}] must be a str, got {type(d).__name__}")
        dupes = sorted({d for d in doc_ids if doc_ids.count(d) > 1} | {d for d in doc_ids if d in self._position})
        if dupes:
            raise ValueError(f"duplicate doc ids {dupes[:5]}: ids must be unique (use delete + add to replace)")
        return doc_ids
