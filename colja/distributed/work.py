"""The work folder of a resumable distributed build: the codec trained once, each batch's
compressed passages as ``.npy`` files, and a JSON ledger of the batches done.

::

    .<index>.colja-build/
      ledger.json            {"fingerprint": ..., "batch_passages": 256, "num_batches": 40, "done": [0, 1, 5, ...]}
      codec/                 centroids.npy, bucket_cutoffs.npy, bucket_weights.npy, codec.json
      batches/b-000000/      codes.npy, residuals.npy, norms.npy, doclens.npy

A re-run with the same inputs (same fingerprint) reuses the codec and skips
the batches in ``done``; anything else starts afresh. Every file is written
under a temporary name and renamed (:mod:`colja._atomic`); no pickle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from colja._atomic import atomic_folder, write_json
from colja.index.build import CompressedSource
from colja.index.codec import ResidualCodec

BATCH_FILES = ("codes", "residuals", "norms", "doclens")


def work_folder(target: Path) -> Path:
    return target.parent / f".{target.name}.colja-build"


def fingerprint(texts: Iterable[str], ids: list[str] | None, metadata: list[str | None] | None,
                settings: dict[str, Any], model: Any, shards: int, batch_passages: int) -> str:
    """A digest of everything a batch's contents depend on."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"settings": settings, "model": model, "batch_passages": batch_passages},
                        sort_keys=True, default=str).encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    h.update(json.dumps([ids, metadata, shards], ensure_ascii=False).encode())
    return h.hexdigest()


class Ledger:
    """Which batches of a build are written (``ledger.json``), and the files they live in."""

    def __init__(self, folder: Path, fingerprint: str, batch_passages: int, num_batches: int):
        self.folder = folder
        self.file = folder / "ledger.json"
        state = None
        if self.file.is_file():
            try:
                state = json.loads(self.file.read_text(encoding="utf-8"))
            except ValueError:
                state = None
        if not state or state.get("fingerprint") != fingerprint:
            shutil.rmtree(folder, ignore_errors=True)  # another build's (or a broken) work: start afresh
            state = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "batches").mkdir(exist_ok=True)
        self.state = state or {"fingerprint": fingerprint, "batch_passages": batch_passages,
                               "num_batches": num_batches, "done": []}
        done = [b for b in self.state["done"] if self.batch_path(b).is_dir()]
        self.done: set[int] = set(done)
        self.save()

    @property
    def resumed(self) -> int:
        return len(self.done)

    def batch_path(self, b: int) -> Path:
        return self.folder / "batches" / f"b-{b:06d}"

    def mark(self, b: int) -> None:
        self.done.add(b)
        self.save()

    def save(self) -> None:
        self.state["done"] = sorted(self.done)
        write_json(self.file, self.state)

    # ---------------------------------------------------------------- the codec, trained once

    def load_codec(self) -> tuple[ResidualCodec, dict[str, Any]] | None:
        folder = self.folder / "codec"
        if not (folder / "codec.json").is_file():
            return None
        meta = json.loads((folder / "codec.json").read_text(encoding="utf-8"))
        codec = ResidualCodec(centroids=torch.from_numpy(np.load(folder / "centroids.npy")),
                              bucket_cutoffs=torch.from_numpy(np.load(folder / "bucket_cutoffs.npy")),
                              bucket_weights=torch.from_numpy(np.load(folder / "bucket_weights.npy")),
                              avg_residual=meta["avg_residual"], nbits=meta["nbits"])
        return codec, meta.get("report", {})

    def save_codec(self, codec: ResidualCodec, report: dict[str, Any]) -> None:
        with atomic_folder(self.folder / "codec") as tmp:
            np.save(tmp / "centroids.npy", codec.centroids.numpy(), allow_pickle=False)
            np.save(tmp / "bucket_cutoffs.npy", codec.bucket_cutoffs.numpy(), allow_pickle=False)
            np.save(tmp / "bucket_weights.npy", codec.bucket_weights.numpy(), allow_pickle=False)
            write_json(tmp / "codec.json", {"avg_residual": codec.avg_residual, "nbits": codec.nbits,
                                            "report": report})

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_batch(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """One batch's arrays as ``.npy`` files in ``folder``, all or nothing."""
    with atomic_folder(folder) as tmp:
        for name in BATCH_FILES:
            np.save(tmp / f"{name}.npy", arrays[name], allow_pickle=False)


class BatchSource(CompressedSource):
    """The compressed passages ``positions`` (collection positions, in order) of a build, read
    from its batch files: what one shard's :func:`~colja.index.build.write_index_files` assembles."""

    def __init__(self, ledger: Ledger, batch_passages: int, positions: np.ndarray):
        self.ledger = ledger
        self.batch_passages = batch_passages
        self.positions = np.asarray(positions, dtype=np.int64)
        self._cache: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}

    @property
    def num_passages(self) -> int:
        return len(self.positions)

    def _batch(self, b: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if b not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            folder = self.ledger.batch_path(b)
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in BATCH_FILES}
            self._cache[b] = (arrays, np.concatenate([[0], np.cumsum(arrays["doclens"])]))
        return self._cache[b]

    def compressed(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        where = self.positions[np.asarray(pids, dtype=np.int64)]
        codes, residuals, norms, doclens = [], [], [], []
        for b in np.unique(where // self.batch_passages):
            rows = where[where // self.batch_passages == b] - b * self.batch_passages
            arrays, offsets = self._batch(int(b))
            starts, stops = offsets[rows], offsets[rows + 1]
            take = np.concatenate([np.arange(a, z) for a, z in zip(starts, stops)]) if len(rows) else np.zeros(0, np.int64)
            codes.append(np.asarray(arrays["codes"][take]))
            residuals.append(np.asarray(arrays["residuals"][take]))
            norms.append(np.asarray(arrays["norms"][take]))
            doclens.append(stops - starts)
        return (np.concatenate(codes).astype(np.int32, copy=False), np.concatenate(residuals),
                np.concatenate(norms).astype(np.float32, copy=False), np.concatenate(doclens).astype(np.int64))


__all__ = ["Ledger", "BatchSource", "work_folder", "fingerprint", "write_batch"]
