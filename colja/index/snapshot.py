"""One generation of an index as an immutable snapshot.

An :class:`~colja.index.index.Index` holds exactly one ``IndexSnapshot``
reference; a write builds a new generation and swaps that reference in one
assignment, and every search pins the snapshot it started with (see
``Index._pinned``), so a search never mixes two generations: arrays,
manifest, document store and the caches derived from them always belong
together.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from colja.index.codec import ResidualCodec
from colja.index.docstore import DocStore
from colja.search.plaid import SearchArrays

_WHERE_CACHE = 8  # filter masks kept per snapshot


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``array`` (read-only memmaps included)."""
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


def offsets(lengths: np.ndarray) -> torch.Tensor:
    """int64 ``[n+1]``: running sums of ``lengths`` starting at 0."""
    out = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    if len(lengths):
        torch.cumsum(torch.as_tensor(np.asarray(lengths, dtype=np.int64)), 0, out=out[1:])
    return out


class IndexSnapshot:
    """Arrays (as tensors), manifest, codec and document store of one generation, plus derived caches."""

    def __init__(self, generation: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], docs: DocStore):
        self.generation = Path(generation)
        self.manifest = manifest
        self.arrays = arrays  # the numpy arrays (memmaps with mmap=True) the tensors view
        self.docs = docs
        codec = manifest["codec"]
        self.nbits = int(codec["nbits"])
        self.dim = int(codec["dim"])
        self.avg_residual = float(codec.get("avg_residual", 0.0))
        self.centroids = as_tensor(arrays["centroids"])
        self.bucket_cutoffs = as_tensor(arrays["bucket_cutoffs"])
        self.bucket_weights = as_tensor(arrays["bucket_weights"])
        self.codes = as_tensor(arrays["codes"])
        self.residuals = as_tensor(arrays["residuals"])
        self.norms = as_tensor(arrays["norms"])
        self.doclens = as_tensor(arrays["doclens"])
        self.doc_offsets = offsets(arrays["doclens"])
        self.ivf = as_tensor(arrays["ivf"])
        self.ivf_lengths = as_tensor(arrays["ivf_lengths"])
        self.ivf_offsets = offsets(arrays["ivf_lengths"])
        self.num_passages = int(self.doclens.shape[0])
        self.num_embeddings = int(self.codes.shape[0])
        self.codec = ResidualCodec(self.centroids.float(), self.bucket_cutoffs, self.bucket_weights,
                                   self.avg_residual, self.nbits)
        self._lock = threading.Lock()
        self._pins = 0  # searches running on this snapshot
        self._retired = False  # replaced by a newer snapshot: close once the last search ends
        self._closed = False
        self._search_arrays: SearchArrays | None = None
        self._live: tuple[torch.Tensor | None] | None = None
        self._where: dict[str, torch.Tensor] = {}
        self._groups: torch.Tensor | None = None

    # ------------------------------------------------------------------ derived, cached
    def search_arrays(self) -> SearchArrays:
        """What the PLAID stages read (built once per snapshot)."""
        cached = self._search_arrays
        if cached is not None:
            return cached
        with self._lock:
            if self._search_arrays is None:
                self._search_arrays = SearchArrays(
                    centroids=self.centroids.float().contiguous(), codes=self.codes, residuals=self.residuals,
                    norms=self.norms, bucket_weights=self.bucket_weights.float(), nbits=self.nbits,
                    doc_offsets=self.doc_offsets, ivf=self.ivf, ivf_offsets=self.ivf_offsets)
            return self._search_arrays

    def live_mask(self) -> torch.Tensor | None:
        """bool ``[num_passages]`` of live passages, or None when nothing is deleted."""
        cached = self._live
        if cached is None:
            deleted = self.docs.deleted_mask()
            cached = (torch.from_numpy(~deleted) if deleted.any() else None,)
            self._live = cached
        return cached[0]

    def allowed(self, where: Mapping[str, Any] | None = None) -> torch.Tensor | None:
        """bool ``[num_passages]`` of passages a search may return (live, matching ``where``), or None for all."""
        if not where:
            return self.live_mask()
        key = json.dumps(where, sort_keys=True, ensure_ascii=False, default=repr)
        mask = self._where.get(key)
        if mask is None:
            mask = torch.from_numpy(self.docs.filter_mask(where))  # deleted rows are excluded in SQL
            with self._lock:
                if len(self._where) >= _WHERE_CACHE:
                    self._where.pop(next(iter(self._where)))
                self._where[key] = mask
        return mask

    def group_keys(self) -> torch.Tensor:
        """int64 ``[num_passages]``: the document (parent) each passage belongs to, as a number."""
        if self._groups is None:
            self._groups = torch.from_numpy(self.docs.group_keys())
        return self._groups

    # ------------------------------------------------------------------ lifetime
    def acquire(self) -> bool:
        """Count a search starting on this snapshot; False if it is already closed (take the newer one)."""
        with self._lock:
            if self._closed:
                return False
            self._pins += 1
            return True

    def release(self) -> None:
        """A search on this snapshot ended; a retired snapshot closes with its last search."""
        with self._lock:
            self._pins -= 1
            close = self._retired and self._pins == 0 and not self._closed
            if close:
                self._closed = True
        if close:
            self.docs.close()

    def retire(self) -> None:
        """A newer snapshot replaced this one: close it now, or when its running searches end."""
        with self._lock:
            self._retired = True
            close = self._pins == 0 and not self._closed
            if close:
                self._closed = True
        if close:
            self.docs.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.docs.close()
