"""One generation of an index as an immutable snapshot: arrays, manifest, documents, stored first stages.

An :class:`~colja.Index` holds exactly one ``IndexSnapshot`` reference; a
write builds a new generation and swaps that reference in one assignment,
and every search pins the snapshot it started with, so a search never mixes
two generations: arrays, manifest, document store, stored first stages and
the caches derived from them always belong together.

The query layer (:mod:`colja.search`) reads snapshots; it keeps what it
derives from one (e.g. PLAID's float32 centroids) in :meth:`IndexSnapshot.cached`,
so storage needs to know nothing about search.

Arrays are CPU tensors (read-only views of the files when opened with
``mmap=True``): ``centroids`` float16 ``[C, dim]``, ``bucket_cutoffs`` /
``bucket_weights`` float32, ``codes`` int32 ``[N]``, ``residuals`` uint8
``[N, dim*nbits/8]``, ``norms`` float32 ``[N]``, ``doclens`` int64 ``[n]``,
``doc_offsets`` int64 ``[n+1]``, ``ivf`` int32, ``ivf_lengths`` int64 ``[C]``,
``ivf_offsets`` int64 ``[C+1]``.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from colja import kernels
from colja.errors import IndexFormatError
from colja.index.codec import ResidualCodec
from colja.index.docstore import DocStore
from colja.index.store import DOCSTORE, unpin_generation
from colja.index.validate import open_checked

_WHERE_CACHE = 8  # filter masks kept per snapshot


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``array`` (read-only memmaps included)."""
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


class IndexSnapshot:
    """Arrays (as tensors), manifest, codec, document store and stored first stages of one generation."""

    def __init__(self, generation: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], docs: DocStore,
                 *, mmap: bool = False, pin: int | None = None):
        self.generation = Path(generation)
        self.manifest = manifest
        self.arrays = arrays  # the numpy arrays (memmaps with mmap=True) the tensors view
        self.docs = docs
        self.mmap = mmap
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
        self.doc_offsets = kernels.lengths_to_offsets(self.doclens)
        self.ivf = as_tensor(arrays["ivf"])
        self.ivf_lengths = as_tensor(arrays["ivf_lengths"])
        self.ivf_offsets = kernels.lengths_to_offsets(self.ivf_lengths)
        self.num_passages = int(self.doclens.shape[0])
        self.num_embeddings = int(self.codes.shape[0])
        self.codec = ResidualCodec(self.centroids.float(), self.bucket_cutoffs, self.bucket_weights,
                                   self.avg_residual, self.nbits)
        self._lock = threading.Lock()
        self._reader_lock = pin  # the generation's shared lock (see colja.index.store), released at close
        self._pins = 0  # searches running on this snapshot
        self._retired = False  # replaced by a newer snapshot: close once the last search ends
        self._closed = False
        self._cache: dict[str, Any] = {}
        self._live: tuple[torch.Tensor | None] | None = None
        self._where: dict[str, torch.Tensor] = {}
        self._groups: torch.Tensor | None = None
        self._retrievers: dict[str, Any] = {}
        self.trust_remote_code = False  # set by open: may stored first stages run their model's code?

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, mmap: bool = False, check_hashes: bool = True,
             trust_remote_code: bool = False, written_here: bool = False) -> "IndexSnapshot":
        """The live generation of the index folder ``path`` (or a generation folder), validated
        (:mod:`colja.index.validate`) and pinned for this snapshot (see :mod:`colja.index.store`).
        ``trust_remote_code``: whether stored first stages may run their model's own code (the
        caller's decision, never the folder's). ``written_here``: the generation was just
        committed by this process, so the value checks are skipped."""
        gen, manifest, arrays, pin = open_checked(path, mmap=mmap, check_hashes=check_hashes, pin=True,
                                                  check_values=not written_here)
        try:
            docs = DocStore.open(gen / DOCSTORE)
            count = docs.count()
        except Exception as exc:  # sqlite3.DatabaseError, ValueError
            unpin_generation(pin)
            raise IndexFormatError(f"{gen / DOCSTORE}: unreadable document store ({exc})") from exc
        if count != int(manifest["counts"]["passages"]):
            docs.close()
            unpin_generation(pin)
            raise IndexFormatError(f"{gen / DOCSTORE}: {count} passages, the manifest says {manifest['counts']['passages']}")
        snapshot = cls(gen, manifest, arrays, docs, mmap=mmap, pin=pin)
        snapshot.trust_remote_code = bool(trust_remote_code)
        return snapshot

    # ------------------------------------------------------------------ contents
    @property
    def first_stages(self) -> dict[str, dict[str, Any]]:
        """The stored first stages: name -> ``{"kind", "path", "passages", "settings"}``."""
        return dict(self.manifest.get("first_stages") or {})

    def first_stage(self, name: str, **load_options: Any) -> Any:
        """The stored first stage ``name``, loaded on first use (memory-mapped when the snapshot is)."""
        from colja.index.retrievers import load_stored

        stages = self.first_stages
        if name not in stages:
            raise ValueError(
                f"this index has no first stage named {name!r} (stored: {sorted(stages) or 'none'}); "
                f"add one with index.add_first_stage({name!r}) or search with first_stage='plaid'")
        found = self._retrievers.get(name)
        if found is None:
            with self._lock:
                found = self._retrievers.get(name)
                if found is None:
                    found = load_stored(self.generation, stages[name], mmap=self.mmap,
                                        trust_remote_code=self.trust_remote_code, **load_options)
                    self._retrievers[name] = found
        return found

    def loaded_first_stages(self) -> dict[str, Any]:
        """The first stages already loaded (their encoders can be reused by the next generation)."""
        with self._lock:
            return dict(self._retrievers)

    def keep_first_stage(self, name: str, retriever: Any) -> None:
        """Hand an already loaded first stage to this snapshot (a write just built or extended it)."""
        with self._lock:
            self._retrievers[name] = retriever

    def passage_vectors(self, pids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Decompressed vectors of ``pids``: ``(float32 [sum doclens, dim], doclens int64 [len(pids)])``."""
        pids = torch.as_tensor(pids, dtype=torch.int64).reshape(-1)
        rows, _, lens = kernels.token_rows(self.doc_offsets, pids)
        if rows.numel() == 0:
            return torch.empty((0, self.dim)), lens
        return self.codec.decompress(self.codes[rows], self.residuals[rows]), lens

    # ------------------------------------------------------------------ derived, cached
    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once per snapshot under ``key`` (for layers above storage)."""
        found = self._cache.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

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
            self._close_files()

    def retire(self) -> None:
        """A newer snapshot replaced this one: close it now, or when its running searches end."""
        with self._lock:
            self._retired = True
            close = self._pins == 0 and not self._closed
            if close:
                self._closed = True
        if close:
            self._close_files()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._close_files()

    def _close_files(self) -> None:
        self.docs.close()
        pin, self._reader_lock = self._reader_lock, None
        unpin_generation(pin)

    # An Index dropped without close(): let writers remove the generation. unpin_generation is bound here
    # because at interpreter exit module globals may already be None when this runs.
    def __del__(self, _unpin: Callable[[int | None], None] = unpin_generation) -> None:
        pin = getattr(self, "_reader_lock", None)
        if pin is not None:
            self._reader_lock = None
            _unpin(pin)

    def __repr__(self) -> str:
        return (f"IndexSnapshot({str(self.generation)!r}, passages={self.num_passages}, "
                f"vectors={self.num_embeddings}, nbits={self.nbits})")
