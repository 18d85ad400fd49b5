"""Single-vector store for the dense and static first stages: inner product in faiss.

Vectors live in one faiss index: ``IndexFlatIP`` (exact) up to
``hnsw_threshold`` passages, ``IndexHNSWFlat`` (inner product, approximate)
above it. With L2-normalised vectors the inner product is the cosine.

The store is written with ``faiss.write_index`` (no pickle) and can be read
back memory-mapped (``faiss.IO_FLAG_MMAP_IFC``); appending to a mapped store
first copies it into memory, since faiss cannot grow a mapped array.

faiss is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from colja.errors import IndexFormatError, IndexNotFoundError

logger = logging.getLogger(__name__)

KINDS = ("flat", "hnsw")
# Above this many passages an exact flat search (~n * dim multiply-adds per query) gives way to HNSW.
# 100k x 768 floats is ~0.3 GB and ~10-20 ms a query on one core of these CPUs; past that HNSW keeps a query
# at a few ms for a small loss of recall.
DEFAULT_HNSW_THRESHOLD = 100_000


@dataclass(frozen=True)
class VectorIndexSettings:
    """How a :class:`VectorIndex` is laid out; written to the first stage's JSON manifest.

    ``hnsw_threshold``: above this many vectors the flat index becomes HNSW
    (``None``: never; ``0``: always). ``hnsw_m``: graph neighbours per node;
    ``ef_construction`` / ``ef_search``: HNSW beam widths when adding / searching
    (a search uses at least ``k``).
    """

    hnsw_threshold: int | None = DEFAULT_HNSW_THRESHOLD
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def __post_init__(self) -> None:
        t = self.hnsw_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 0):
            raise ValueError(f"hnsw_threshold must be a non-negative int or None, got {t!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VectorIndexSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown vector index setting(s) {unknown}; valid: {', '.join(sorted(known))}")
        return cls(**d)

    def kind_for(self, n: int) -> str:
        """``"hnsw"`` when ``n`` vectors exceed the threshold, else ``"flat"``."""
        return "hnsw" if self.hnsw_threshold is not None and n > self.hnsw_threshold else "flat"


def _faiss():
    import faiss  # a core dependency; imported late only to keep `import colja` light

    return faiss


class VectorIndex:
    """float32 vectors ``[n, dim]`` searched by inner product; row ``i`` is pid ``i``.

    >>> vi = VectorIndex(4)
    >>> vi.add(np.eye(4, dtype=np.float32))
    >>> vi.search(np.eye(4, dtype=np.float32)[:1], k=2)[1]
    array([[0, 1]])

    Searching is thread-safe; :meth:`add` is not (guard it, as the index does
    for every write).
    """

    def __init__(self, dim: int, settings: VectorIndexSettings | None = None, *, expected_size: int = 0,
                 _index: Any = None, _mapped: bool = False) -> None:
        """An empty store of ``dim``-d vectors; ``expected_size`` (passages about to be added) picks
        HNSW from the start when it is above the threshold, sparing a rebuild."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = int(dim)
        self.settings = settings if settings is not None else VectorIndexSettings()
        self._index = _index if _index is not None else self._new_index(self.settings.kind_for(expected_size))
        self._mapped = _mapped
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ write
    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` (float32 ``[m, dim]``); they get pids ``len(self) .. len(self)+m-1``.

        Crossing ``hnsw_threshold`` rebuilds a flat store as HNSW once (an HNSW
        store never goes back to flat).
        """
        x = self._check(vectors, "vectors")
        if x.shape[0] == 0:
            return
        with self._lock:
            if self._mapped:  # faiss aborts the process when asked to grow a mapped array
                faiss = _faiss()
                self._index = faiss.deserialize_index(faiss.serialize_index(self._index))
                self._mapped = False
            if self.kind == "flat" and self.settings.kind_for(len(self) + x.shape[0]) == "hnsw":
                logger.info("vector store: %d -> %d vectors, above hnsw_threshold=%s: switching to HNSW",
                            len(self), len(self) + x.shape[0], self.settings.hnsw_threshold)
                old = self._index.reconstruct_n(0, self._index.ntotal) if len(self) else None
                self._index = self._new_index("hnsw")
                if old is not None:
                    self._index.add(old)
            self._index.add(x)

    # ----------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: ``(scores float32 [nq, k], pids int64 [nq, k])``, best first.

        Fewer than ``k`` hits are padded with ``-inf`` / ``-1`` (faiss's
        convention). Equal scores are ordered by ascending pid.
        """
        q = self._check(queries, "queries")
        k = int(k)
        nq = q.shape[0]
        if k <= 0 or nq == 0 or len(self) == 0:
            return np.full((nq, max(k, 0)), -np.inf, np.float32), np.full((nq, max(k, 0)), -1, np.int64)
        kk = min(k, len(self))
        if self.kind == "hnsw":
            params = _faiss().SearchParametersHNSW(efSearch=max(self.settings.ef_search, kk))
            scores, pids = self._index.search(q, kk, params=params)
        else:
            scores, pids = self._index.search(q, kk)
        scores = np.where(pids < 0, -np.inf, scores).astype(np.float32)
        order = np.lexsort((np.where(pids < 0, np.iinfo(np.int64).max, pids), -scores), axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        pids = np.take_along_axis(pids.astype(np.int64), order, axis=1)
        if kk < k:
            scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
            pids = np.pad(pids, ((0, 0), (0, k - kk)), constant_values=-1)
        return scores, pids

    def vectors(self, pids: np.ndarray | None = None) -> np.ndarray:
        """The stored vectors (float32 ``[n, dim]``), all of them or those of ``pids``."""
        if pids is None:
            pids = np.arange(len(self), dtype=np.int64)
        pids = np.asarray(pids, dtype=np.int64).reshape(-1)
        if pids.size and (pids.min() < 0 or pids.max() >= len(self)):
            raise IndexError(f"pids must lie in [0, {len(self)}), got {pids.min()}..{pids.max()}")
        return self._index.reconstruct_batch(pids) if pids.size else np.empty((0, self.dim), np.float32)

    # ---------------------------------------------------------------- persist
    def write(self, path: str | os.PathLike) -> None:
        """Write the faiss index to ``path`` (``faiss.write_index``; no pickle)."""
        _faiss().write_index(self._index, str(path))

    @classmethod
    def read(cls, path: str | os.PathLike, settings: VectorIndexSettings | None = None, *,
             mmap: bool = False) -> "VectorIndex":
        """Read a store written by :meth:`write`; ``mmap=True`` maps the vectors instead of reading them."""
        path = Path(path)
        if not path.is_file():
            raise IndexNotFoundError(f"vector store {path} is missing")
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        except RuntimeError as e:  # truncated or foreign file
            raise IndexFormatError(f"vector store {path} could not be read ({str(e).splitlines()[0]}); "
                                   "rebuild the first stage") from e
        inner_product = index.metric_type == faiss.METRIC_INNER_PRODUCT
        if not isinstance(index, (faiss.IndexFlatIP, faiss.IndexHNSWFlat)) or not inner_product:
            raise IndexFormatError(f"vector store {path} holds a {type(index).__name__}, expected an inner-product "
                                   "IndexFlatIP or IndexHNSWFlat; rebuild the first stage")
        return cls(index.d, settings, _index=index, _mapped=bool(mmap))

    # ------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        """``"flat"`` or ``"hnsw"``."""
        return "hnsw" if isinstance(self._index, _faiss().IndexHNSWFlat) else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"VectorIndex(n={len(self)}, dim={self.dim}, kind={self.kind!r})"

    # --------------------------------------------------------------- helpers
    def _new_index(self, kind: str) -> Any:
        faiss = _faiss()
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        index = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.settings.ef_construction
        index.hnsw.efSearch = self.settings.ef_search
        return index

    def _check(self, x: Any, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{what} must be float32 [n, {self.dim}], got shape {tuple(x.shape)}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what} hold NaN or infinite values")
        return np.ascontiguousarray(x, dtype=np.float32)


__all__ = ["DEFAULT_HNSW_THRESHOLD", "KINDS", "VectorIndex", "VectorIndexSettings"]
