"""The build pipeline: sample -> k-means -> codec fit -> chunked encode+compress -> IVF -> files.

Steps (in the order of colbert-ai's ``CollectionIndexer``):

1. encode a seeded passage sample (:func:`colja.index.planning.plan_sample`),
   spilled to a float16 scratch file (the reference keeps its sample in float16);
2. size the index from the sample (number of centroids, held-out split);
3. shuffle the sample vectors, hold out the codec's share, run k-means on at
   most ``max_points_per_centroid * k`` of the rest, L2-normalise;
4. fit the residual codec on the held-out vectors;
5. encode (reusing the sample's vectors where the encoder is a model) and
   compress the collection chunk by chunk, appending codes / residuals / norms
   to scratch files, the documents to SQLite, the (code, pid) pairs to the IVF;
6. assemble the final ``.npy`` files (plain writes, never a memory map) and return the manifest;
   the caller adds stored first stages and commits (:class:`colja.index.writes.IndexWriter`).

Only one chunk of float32 vectors is in memory at a time (plus the k-means
training vectors).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from colja._progress import progress_enabled
from colja.index.assign import TwoLevelAssigner
from colja.index.codec import ResidualCodec, check_dims
from colja.index.collection import TextCollection
from colja.index.docstore import DocStore
from colja.index.ivf import IVFBuilder
from colja.index.kmeans import train_centroids
from colja.index.planning import plan_centroids, plan_sample
from colja.index.settings import IndexSettings
from colja.index.store import DOCSTORE, GenerationWriter, NpyWriter, fault_point, new_manifest

logger = logging.getLogger(__name__)

_COPY_ROWS = 1 << 20


# --------------------------------------------------------------------------- vector sources


class EmbeddingSource:
    """Per-passage vectors by passage id."""

    #: True when computing vectors is costly (a model): the sample's vectors are reused
    expensive = False

    @property
    def num_passages(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """``(vectors float32 [sum n_i, dim], doclens int64 [len(pids)])`` in pid order."""
        raise NotImplementedError  # pragma: no cover


class ListSource(EmbeddingSource):
    """Precomputed vectors: a list of ``[n_i, dim]`` tensors."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        self._tensors = tensors

    @property
    def num_passages(self) -> int:
        return len(self._tensors)

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        parts = [self._tensors[int(p)] for p in pids]
        doclens = np.fromiter((t.shape[0] for t in parts), dtype=np.int64, count=len(parts))
        return torch.cat([t.float() for t in parts]) if parts else torch.empty(0), doclens


class ModelSource(EmbeddingSource):
    """Vectors computed by a ColBERT model's ``encode_documents`` from a text collection."""

    expensive = True

    def __init__(self, model: Any, collection: TextCollection, *, batch_size: int = 32):
        self.model = model
        self.collection = collection
        self.batch_size = batch_size

    @property
    def num_passages(self) -> int:
        return self.collection.num_passages

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        pids = np.asarray(pids, dtype=np.int64)
        if len(pids) == 0:
            return torch.empty(0), np.zeros(0, np.int64)
        contiguous = pids[-1] - pids[0] + 1 == len(pids) and bool(np.all(np.diff(pids) == 1))
        texts = self.collection.texts(int(pids[0]), int(pids[-1]) + 1) if contiguous else self.collection.texts_at(pids)
        flat, doclens = self.model.encode_documents(texts, batch_size=self.batch_size, show_progress=False, return_flat=True)
        return torch.as_tensor(flat).float(), np.asarray(doclens, dtype=np.int64)


class CompressedSource(EmbeddingSource):
    """Passages encoded and compressed elsewhere (a distributed build's workers) with the codec
    given to :func:`write_index_files`; the build only assembles them."""

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        raise TypeError("a CompressedSource holds compressed passages only: build it with codec=")

    def compressed(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(codes int32 [V], residuals uint8 [V, packed], norms float32 [V], doclens int64 [len(pids)])``."""
        raise NotImplementedError  # pragma: no cover - interface


def compress_vectors(codec: ResidualCodec, vectors: torch.Tensor, settings: IndexSettings,
                     assign: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a build stores for ``vectors``: ``(codes int32, residuals uint8, norms float32)`` numpy arrays."""
    vectors = vectors.float()
    if settings.round_to_fp16:
        vectors = vectors.half().float()
    codes, residuals = codec.compress(vectors.to(codec.centroids.device), assign=assign)
    norms = codec.norms(codes, residuals).cpu()
    return (codes.cpu().numpy().astype(np.int32, copy=False), residuals.cpu().numpy(),
            norms.numpy().astype(np.float32, copy=False))


# --------------------------------------------------------------------------- small helpers


class _Bar:
    """A tqdm bar, or nothing."""

    def __init__(self, total: int, desc: str, show: bool | None, unit: str = "passage"):
        self._bar = None
        if progress_enabled(show, 10 if total >= 1000 else 0):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _assemble(out_path: Path, raw_path: Path, dtype: Any, shape: tuple[int, ...]) -> None:
    """Copy a raw scratch file into a ``.npy`` file of ``shape`` (block by block, plain writes)."""
    with NpyWriter(out_path, dtype, shape) as out:
        if shape[0]:
            src = np.memmap(raw_path, dtype=dtype, mode="r", shape=shape)
            for start in range(0, shape[0], _COPY_ROWS):
                out.write(src[start : start + _COPY_ROWS])
            del src


@dataclass
class BuildReport:
    """What a build did and how long each step took (also written to the manifest)."""

    num_passages: int = 0
    num_embeddings: int = 0
    num_centroids: int = 0
    sample_passages: int = 0
    sample_vectors: int = 0
    kmeans_vectors: int = 0
    heldout_vectors: int = 0
    avg_doclen_est: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------- the pipeline


def write_index_files(
    files: GenerationWriter,
    source: EmbeddingSource,
    *,
    settings: IndexSettings,
    texts: TextCollection | None = None,
    doc_ids: list[str] | None = None,
    metadata: list[str | None] | None = None,
    model_info: dict[str, Any] | None = None,
    extra_manifest: dict[str, Any] | None = None,
    show_progress: bool | None = None,
    parent_ids: list[str | None] | None = None,
    spans: list[tuple[int, int] | None] | None = None,
    device: torch.device | None = None,
    codec: ResidualCodec | None = None,
) -> tuple[dict[str, Any], BuildReport]:
    """Write every array and the document store of a new index into ``files`` (inputs already
    validated): ``(manifest without files, report)``. The caller commits (:mod:`colja.index.writes`).

    ``metadata`` are JSON texts (see :func:`colja.index.collection.dump_all_metadata`);
    ``parent_ids`` / ``spans``: per passage, for passages split from longer documents.
    ``device``: where the vectors are compressed (e.g. a GPU; k-means stays with faiss on the CPU).
    The files are the same whichever device compressed them. ``codec``: centroids and
    codec trained already (steps 1-4 are skipped), e.g. once for every shard of a
    distributed build; ``source`` may then be a :class:`CompressedSource`.
    """
    started = time.perf_counter()
    n = source.num_passages
    report = BuildReport(num_passages=n)
    writer = files
    work = writer.path(".work")
    work.mkdir()

    if codec is None:  # 1.-4. sample, k-means, codec
        trained = fit_codec(source, settings, work, report, show_progress)
    else:  # trained elsewhere (a distributed build): no sample to reuse
        trained = TrainedCodec(codec, np.zeros(0, np.int64), np.zeros((0, codec.dim), np.float32),
                               np.zeros(0, np.int64))
        report.num_centroids = codec.num_centroids
    codec, sample_vectors, sample_doclens = trained.codec, trained.sample_vectors, trained.sample_doclens
    assign = None
    if settings.assignment == "two_level":
        assign = TwoLevelAssigner(codec.centroids, probe=settings.assignment_probe, seed=settings.seed)

    # 5. encode + compress, chunk by chunk
    clock = time.perf_counter()
    compressor = codec if device is None or device.type == "cpu" else codec.to(device)
    doclens, ivf, ivf_lengths = _index_chunks(writer, work, source, compressor, assign, trained.sample_pids, sample_vectors,
                                              sample_doclens, texts, doc_ids, metadata, settings, show_progress,
                                              parent_ids, spans)
    del sample_vectors
    report.num_embeddings = int(doclens.sum())
    report.seconds["compress"] = time.perf_counter() - clock

    # 6. files
    clock = time.perf_counter()
    total = report.num_embeddings
    _assemble(writer.path("codes.npy"), work / "codes.bin", np.int32, (total,))
    _assemble(writer.path("residuals.npy"), work / "residuals.bin", np.uint8, (total, codec.packed_dim))
    _assemble(writer.path("norms.npy"), work / "norms.bin", np.float32, (total,))
    writer.save_array("ivf.npy", ivf)
    writer.save_array("ivf_lengths.npy", ivf_lengths)
    writer.save_array("doclens.npy", doclens.astype(np.int64))
    writer.save_array("centroids.npy", codec.centroids.numpy().astype(np.float16))
    writer.save_array("bucket_cutoffs.npy", codec.bucket_cutoffs.numpy())
    writer.save_array("bucket_weights.npy", codec.bucket_weights.numpy())
    shutil.rmtree(work)
    report.seconds["write"] = time.perf_counter() - clock
    report.seconds["total"] = time.perf_counter() - started
    manifest = new_manifest(
        model=model_info,
        codec=codec_entry(codec),
        settings=settings.to_dict(),
        counts={"passages": n, "live_passages": n, "embeddings": total},
        trained_passages=n,  # passages the centroids were trained on (add warns once this doubles)
        build=report.to_dict(),
        **(extra_manifest or {}),
    )
    logger.info("wrote %d passages, %d vectors, %d centroids in %.1f s",
                n, total, codec.num_centroids, report.seconds["total"])
    return manifest, report


@dataclass
class TrainedCodec:
    """Steps 1-4 of a build: the codec, and the sample passages' vectors (reused when encoding is costly)."""

    codec: ResidualCodec
    sample_pids: np.ndarray
    sample_vectors: np.ndarray
    sample_doclens: np.ndarray


def fit_codec(source: EmbeddingSource, settings: IndexSettings, work: Path, report: BuildReport | None = None,
              show_progress: bool | None = None, *, sample_pids: np.ndarray | None = None) -> TrainedCodec:
    """Encode the seeded passage sample (spilled to ``work``), run k-means and fit the residual codec."""
    report = report if report is not None else BuildReport(num_passages=source.num_passages)
    n = source.num_passages
    if sample_pids is None:
        sample_pids = plan_sample(n, settings).pids
    sample_dtype = np.float16 if settings.round_to_fp16 else np.float32

    # 1. the sample
    clock = time.perf_counter()
    sample_vectors, sample_doclens = _embed_sample(source, sample_pids, work, sample_dtype, settings, show_progress)
    dim = sample_vectors.shape[1]
    check_dims(dim, settings.nbits)
    report.sample_passages, report.sample_vectors = len(sample_pids), int(sample_vectors.shape[0])
    report.seconds["sample"] = time.perf_counter() - clock
    fault_point("after_sample")

    # 2.-3. sizes, split, k-means
    clock = time.perf_counter()
    plan = plan_centroids(n, sample_doclens, settings)
    rng = np.random.default_rng(settings.seed)
    perm = rng.permutation(report.sample_vectors)
    train_idx, held_idx = perm[: plan.num_train], perm[plan.num_train :]
    if plan.num_heldout == 0:
        held_idx = perm
    limit = settings.max_points_per_centroid * plan.num_centroids
    train_idx = np.sort(train_idx[:limit])
    x = np.asarray(sample_vectors[train_idx], dtype=np.float32)
    report.kmeans_vectors, report.num_centroids = int(x.shape[0]), plan.num_centroids
    report.avg_doclen_est = plan.avg_doclen_est
    logger.info("k-means: %d centroids from %d of %d sample vectors (%d passages)",
                plan.num_centroids, x.shape[0], report.sample_vectors, len(sample_pids))
    centroids = train_centroids(x, plan.num_centroids, niters=settings.kmeans_niters, seed=settings.seed,
                                method=settings.kmeans, cells=settings.kmeans_cells,
                                refine_iters=settings.kmeans_refine_iters, show_progress=show_progress)
    del x
    report.seconds["kmeans"] = time.perf_counter() - clock
    fault_point("after_kmeans")

    # 4. the codec
    clock = time.perf_counter()
    heldout = torch.from_numpy(np.asarray(sample_vectors[np.sort(held_idx)], dtype=np.float32))
    report.heldout_vectors = int(heldout.shape[0])
    codec = ResidualCodec.fit(torch.from_numpy(centroids), heldout, settings.nbits)
    del heldout
    report.seconds["codec"] = time.perf_counter() - clock
    return TrainedCodec(codec, sample_pids, sample_vectors, sample_doclens)


def codec_entry(codec: ResidualCodec) -> dict[str, Any]:
    return {
        "nbits": codec.nbits,
        "dim": codec.dim,
        "num_centroids": codec.num_centroids,
        "avg_residual": codec.avg_residual,
    }


def _embed_sample(source: EmbeddingSource, pids: np.ndarray, work: Path, dtype: Any, settings: IndexSettings,
                  show_progress: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the sample passages, spilled to ``work/sample.bin``: ``(memmap [S, dim], doclens)``."""
    raw = work / "sample.bin"
    doclens = np.zeros(len(pids), dtype=np.int64)
    dim = None
    bar = _Bar(len(pids), "Encoding sample", show_progress) if source.expensive else _Bar(0, "", False)
    with open(raw, "wb") as f:
        for start in range(0, len(pids), settings.chunk_passages):
            block = pids[start : start + settings.chunk_passages]
            vectors, lens = source.embed(block)
            if vectors.numel():
                dim = vectors.shape[1]
                f.write(vectors.to(torch.float16 if dtype == np.float16 else torch.float32).numpy().tobytes())
            doclens[start : start + len(block)] = lens
            bar.update(len(block))
    bar.close()
    total = int(doclens.sum())
    if total == 0 or dim is None:
        from colja.errors import CollectionError

        raise CollectionError("the sampled passages have no vectors: nothing to index")
    return np.memmap(raw, dtype=dtype, mode="r", shape=(total, dim)), doclens


def _chunk_vectors(source: EmbeddingSource, pids: np.ndarray, sample_pids: np.ndarray, sample_vectors: np.ndarray,
                   sample_offsets: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Vectors of a chunk, taking sample passages from the sample file when the source is expensive."""
    if not source.expensive or len(sample_pids) == 0:
        return source.embed(pids)
    where = np.searchsorted(sample_pids, pids)
    in_sample = (where < len(sample_pids)) & (sample_pids[np.minimum(where, len(sample_pids) - 1)] == pids)
    if not in_sample.any():
        return source.embed(pids)
    fresh_vectors, fresh_lens = source.embed(pids[~in_sample]) if (~in_sample).any() else (None, np.zeros(0, np.int64))
    doclens = np.zeros(len(pids), dtype=np.int64)
    rows = where[in_sample]
    doclens[in_sample] = sample_offsets[rows + 1] - sample_offsets[rows]
    doclens[~in_sample] = fresh_lens
    dim = sample_vectors.shape[1]
    out = torch.empty((int(doclens.sum()), dim), dtype=torch.float32)
    offsets = np.concatenate([[0], np.cumsum(doclens)])
    fresh_at = 0
    for i in range(len(pids)):
        a, b = offsets[i], offsets[i + 1]
        if in_sample[i]:
            s = sample_offsets[where[i]]
            out[a:b] = torch.from_numpy(np.asarray(sample_vectors[s : s + (b - a)], dtype=np.float32))
        else:
            out[a:b] = fresh_vectors[fresh_at : fresh_at + (b - a)]
            fresh_at += b - a
    return out, doclens


def _index_chunks(writer: GenerationWriter, work: Path, source: EmbeddingSource, codec: ResidualCodec, assign: Any,
                  sample_pids: np.ndarray, sample_vectors: np.ndarray, sample_doclens: np.ndarray,
                  texts: TextCollection | None, doc_ids: list[str] | None, metadata: list[str | None] | None,
                  settings: IndexSettings, show_progress: bool | None, parent_ids: list[str | None] | None = None,
                  spans: list[tuple[int, int] | None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode and compress every passage: ``(doclens int64 [n], ivf int32, ivf_lengths int64 [C])``."""
    n = source.num_passages
    doclens = np.zeros(n, dtype=np.int64)
    sample_offsets = np.concatenate([[0], np.cumsum(sample_doclens)])
    ivf = IVFBuilder(codec.num_centroids)
    docs = DocStore.create(writer.path(DOCSTORE))
    bar = _Bar(n, "Indexing", show_progress)
    try:
        with open(work / "codes.bin", "wb") as f_codes, open(work / "residuals.bin", "wb") as f_res, \
                open(work / "norms.bin", "wb") as f_norms:
            for start in range(0, n, settings.chunk_passages):
                stop = min(n, start + settings.chunk_passages)
                pids = np.arange(start, stop, dtype=np.int64)
                if isinstance(source, CompressedSource):
                    codes, residuals, norms, lens = (torch.from_numpy(a) for a in source.compressed(pids))
                else:
                    vectors, lens = _chunk_vectors(source, pids, sample_pids, sample_vectors, sample_offsets)
                    if settings.round_to_fp16:
                        vectors = vectors.half().float()
                    codes, residuals = codec.compress(vectors.to(codec.centroids.device), assign=assign)
                    norms = codec.norms(codes, residuals).cpu()
                    codes, residuals = codes.cpu(), residuals.cpu()
                lens = np.asarray(lens, dtype=np.int64)
                f_codes.write(codes.numpy().tobytes())
                f_res.write(residuals.numpy().tobytes())
                f_norms.write(norms.numpy().astype(np.float32, copy=False).tobytes())
                ivf.add(codes.numpy(), lens, start)
                doclens[start:stop] = lens
                ids = doc_ids[start:stop] if doc_ids is not None else [str(p) for p in range(start, stop)]
                chunk_texts = texts.texts(start, stop) if texts is not None else [""] * (stop - start)
                meta = metadata[start:stop] if metadata is not None else [None] * (stop - start)
                docs.add(pids.tolist(), ids, chunk_texts, meta,
                         parent_ids[start:stop] if parent_ids is not None else None,
                         spans[start:stop] if spans is not None else None)
                bar.update(stop - start)
                if start == 0:
                    fault_point("after_first_chunk")
        docs.finish()
    finally:
        bar.close()
        docs.close()
    ivf_pids, ivf_lengths = ivf.finish()
    return doclens, ivf_pids, ivf_lengths


__all__ = ["write_index_files", "fit_codec", "TrainedCodec", "CompressedSource", "compress_vectors", "EmbeddingSource", "ListSource", "ModelSource", "BuildReport", "codec_entry"]
