"""Building an index on a Ray cluster (:func:`build`), or a sharded index locally (:func:`build_local`).

:func:`build`, step by step:

1. the collection (a list, a ``datasets.Dataset``, a JSONL file) is read and
   checked on the driver, as ``Index.build`` checks it;
2. a pool of model actors (one per worker, ``num_gpus_per_worker`` GPUs
   each) encodes the seeded k-means sample; the driver trains the centroids
   and the residual codec once (the same code and seed as a local build, so
   the same centroids) and keeps them, and the sample's vectors, in the work folder;
3. the passages are cut into batches; the actors encode each batch (taking
   the sample passages' vectors from the sample file, as a local build does),
   compress it and write its codes, residuals and norms as ``.npy`` files; the driver records
   each finished batch in a JSON ledger, so a re-run after a worker or driver
   failure skips the batches already written (:mod:`colja.distributed.work`);
4. the driver assembles either one ordinary index (``shards=1``) or ``N``
   shard indexes plus ``sharded.json`` (documents assigned by
   ``blake2b(id) mod N``), each through the one write path
   (:class:`~colja.index.writes.IndexWriter`, with the codec given).

The batch files travel through the file system: the work folder must be on
storage every node reaches (one machine, or a shared file system).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from colja._jsonl import iter_jsonl_objects
from colja._progress import progress_enabled
from colja.distributed.layout import MANIFEST, shard_name, write_manifest
from colja.distributed.routing import shards_of
from colja.distributed.work import BatchSource, Ledger, fingerprint, work_folder, write_batch
from colja.errors import BuildWorkerError, CollectionError, IndexExistsError
from colja.index.build import BuildReport, EmbeddingSource, ModelSource, compress_vectors, fit_codec
from colja.index.codec import ResidualCodec, check_dims
from colja.index.collection import TextCollection, as_text_collection, check_doc_ids, dump_all_metadata
from colja.index.planning import plan_sample
from colja.index.settings import IndexSettings, resolve_settings
from colja.index.store import FAULT_ENV, check_target, is_index_folder
from colja.index.writes import IndexWriter, write_build
from colja.model.encoder import DEFAULT_MODEL, describe_model, resolve_model

logger = logging.getLogger(__name__)

#: $COLJA_FAULT_AT value that makes each build worker kill itself (SIGKILL) after writing its second batch
WORKER_FAULT = "distributed_worker_after_batch"


# --------------------------------------------------------------------------- input


def read_collection(collection: Any, doc_ids: Any, metadata: Any, text_column: str
                    ) -> tuple[TextCollection, list[str] | None, list[str | None] | None]:
    """Texts, ids and metadata (JSON texts) of a list, a ``datasets.Dataset``, or a ``.jsonl`` /
    ``.parquet`` file (``text_column``, ``_id`` / ``id`` / ``doc_id``, other fields as metadata)."""
    if isinstance(collection, (str, os.PathLike)) and str(collection).endswith((".jsonl", ".ndjson", ".parquet")):
        path = Path(collection)
        if not path.is_file():
            raise CollectionError(f"collection file {path} does not exist")
        rows = _parquet_rows(path) if path.suffix == ".parquet" else [r for _, r in iter_jsonl_objects(path, CollectionError)]
        key = next((k for k in ("_id", "id", "doc_id") if rows and k in rows[0]), None)
        missing = [i for i, row in enumerate(rows) if text_column not in row]
        if missing:
            raise CollectionError(f"{path}: row {missing[0] + 1} has no {text_column!r} field; pass text_column=...")
        texts = [row[text_column] for row in rows]
        if doc_ids is None and key is not None:
            doc_ids = [str(row[key]) for row in rows]
        if metadata is None:
            metadata = [{k: v for k, v in row.items() if k not in (text_column, key)} or None for row in rows]
        collection = texts
    texts = as_text_collection(collection, text_column=text_column)
    return texts, check_doc_ids(doc_ids, texts.num_passages), dump_all_metadata(metadata, texts.num_passages)


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with colja[ray]
        from colja.errors import MissingDependencyError

        raise MissingDependencyError('reading .parquet needs pyarrow: pip install "colja[ray]"') from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors are many
        raise CollectionError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None


def _prepare_target(path: Path, shards: int, overwrite: bool) -> Path:
    path = Path(path)
    if shards == 1:
        if (path / MANIFEST).is_file():
            if not overwrite:
                raise IndexExistsError(f"a sharded index already exists at {path}; pass overwrite=True to replace it")
            _clear_sharded(path)
        return check_target(path, overwrite=overwrite)
    if path.exists():
        if (path / MANIFEST).is_file() or is_index_folder(path):
            if not overwrite:
                raise IndexExistsError(f"an index already exists at {path}; pass overwrite=True to replace it, "
                                       "or choose another path")
        foreign = [p.name for p in path.iterdir()
                   if not (p.name == MANIFEST or p.name.startswith("shard-") or p.name.startswith("."))]
        if foreign and not is_index_folder(path):
            raise IndexExistsError(f"{path} exists and is not a colja index (it holds {sorted(foreign)[:5]}); "
                                   "choose an empty or new folder")
        if is_index_folder(path):
            raise IndexExistsError(f"{path} holds an ordinary index; remove it or choose another path for {shards} shards")
        _clear_sharded(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clear_sharded(path: Path) -> None:
    """Remove ``sharded.json`` first (an interrupted overwrite never looks complete), then the shards."""
    (path / MANIFEST).unlink(missing_ok=True)
    for p in path.glob("shard-*"):
        shutil.rmtree(p)


# --------------------------------------------------------------------------- assembly (shared)


def _assemble(target: Path, shards: int, positions_of: list[np.ndarray], source_of: Any, codec: ResidualCodec,
              settings: IndexSettings, texts: TextCollection, ids: list[str] | None,
              meta: list[str | None] | None, model_info: Any, extra: dict[str, Any],
              show_progress: bool | None) -> None:
    """Write each shard (or the one index) through :class:`IndexWriter` with the given codec."""
    for s in range(shards):
        pos = positions_of[s]
        folder = target if shards == 1 else target / shard_name(s)
        shard_texts = texts if shards == 1 else TextCollection(texts.texts_at(pos.tolist()) if len(pos) else [])
        shard_ids = ids if shards == 1 else [ids[p] for p in pos] if ids is not None else [str(p) for p in pos]
        shard_meta = meta if shards == 1 or meta is None else [meta[p] for p in pos]
        with IndexWriter(folder, new_index=True) as w:
            snapshot = write_build(w, source_of(pos, shard_texts), settings=settings, texts=shard_texts,
                                   show_progress=show_progress, doc_ids=shard_ids, metadata=shard_meta,
                                   model_info=model_info, codec=codec,
                                   extra_manifest={"source": dict(extra, shard=s, shards=shards)})
            snapshot.close()
    if shards > 1:
        write_manifest(target, shards, passages=texts.num_passages, model=model_info,
                       settings=settings.to_dict(), source=extra)


def _positions(ids: list[str] | None, n: int, shards: int) -> list[np.ndarray]:
    """Each shard's collection positions (in order); an error, before any work, if one would be empty."""
    if shards == 1:
        return [np.arange(n, dtype=np.int64)]
    owner = shards_of(ids if ids is not None else [str(p) for p in range(n)], shards)
    out = [np.flatnonzero(owner == s).astype(np.int64) for s in range(shards)]
    empty = [s for s in range(shards) if len(out[s]) == 0]
    if empty:
        raise CollectionError(f"shard {empty[0]} of {shards} would be empty ({n} passages routed by the hash "
                              "of their ids): use fewer shards")
    return out


def _check_shards(shards: Any) -> int:
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be a positive int, got {shards!r}")
    return shards


# --------------------------------------------------------------------------- local


def build_local(collection: Any, path: str | os.PathLike, *, shards: int = 2, model: Any = DEFAULT_MODEL,
                doc_ids: Any = None, metadata: Any = None, nbits: int | None = None, overwrite: bool = False,
                settings: IndexSettings | Mapping[str, Any] | None = None, text_column: str = "text",
                batch_size: int = 32, show_progress: bool | None = None, **setting_overrides: Any) -> Path:
    """A sharded index built in this process: centroids trained once, each shard encoded and written."""
    shards = _check_shards(shards)
    settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
    texts, ids, meta = read_collection(collection, doc_ids, metadata, text_column)
    positions = _positions(ids, texts.num_passages, shards)
    encoder = resolve_model(model)
    target = _prepare_target(Path(path), shards, overwrite)
    scratch = target.parent / f".{target.name}.colja-sample"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        trained = fit_codec(ModelSource(encoder, texts, batch_size=batch_size), settings, scratch,
                            show_progress=show_progress)
        codec = trained.codec
        del trained
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _assemble(target, shards, positions,
              lambda pos, shard_texts: ModelSource(encoder, shard_texts, batch_size=batch_size), codec, settings,
              texts, ids, meta, describe_model(encoder), {"kind": "sharded-local"}, show_progress)
    return target


# --------------------------------------------------------------------------- Ray


class _BuildWorker:
    """A Ray actor holding one model: encodes and compresses batches, writes them as ``.npy`` files."""

    def __init__(self, model: Any, use_gpu: bool, die_after: int | None):
        from colja.model.encoder import resolve_model as _resolve

        self.model = _resolve(model)
        if use_gpu and callable(getattr(self.model, "to_device", None)):
            self.model.to_device(torch.device("cuda"))
        self.die_after = die_after
        self.written = 0
        self._codec: tuple[int, ResidualCodec, Any] | None = None

    def embed(self, texts: list[str], fp16: bool, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of ``texts`` (flat, float16 when the build rounds to it) and their lengths."""
        flat, doclens = self.model.encode_documents(texts, batch_size=batch_size, show_progress=False,
                                                    return_flat=True)
        flat = torch.as_tensor(flat)
        return (flat.half() if fp16 else flat.float()).numpy(), np.asarray(doclens, dtype=np.int64)

    def run(self, b: int, texts: list[str], reuse: dict[str, Any] | None, codec_arrays: dict[str, Any],
            settings: dict[str, Any], folder: str, batch_size: int) -> dict[str, int]:
        """Encode ``texts`` (the batch's passages not in the k-means sample: ``reuse`` says where
        the others' vectors are in the sample file), compress, write the batch's files."""
        s = IndexSettings.from_dict(settings)
        key = id(codec_arrays["centroids"])
        if self._codec is None or self._codec[0] != key:
            codec = ResidualCodec(centroids=torch.from_numpy(np.array(codec_arrays["centroids"])),
                                  bucket_cutoffs=torch.from_numpy(np.array(codec_arrays["bucket_cutoffs"])),
                                  bucket_weights=torch.from_numpy(np.array(codec_arrays["bucket_weights"])),
                                  avg_residual=codec_arrays["avg_residual"], nbits=codec_arrays["nbits"])
            assign = None
            if s.assignment == "two_level":
                from colja.index.assign import TwoLevelAssigner

                assign = TwoLevelAssigner(codec.centroids, probe=s.assignment_probe, seed=s.seed)
            self._codec = (key, codec, assign)
        _, codec, assign = self._codec
        if texts:
            flat, doclens = self.model.encode_documents(texts, batch_size=batch_size, show_progress=False,
                                                        return_flat=True)
            flat, doclens = torch.as_tensor(flat).float(), np.asarray(doclens, dtype=np.int64)
        else:
            flat, doclens = torch.zeros((0, codec.dim)), np.zeros(0, np.int64)
        if reuse is not None:
            flat, doclens = _with_sample(flat, doclens, reuse, codec.dim)
        codes, residuals, norms = compress_vectors(codec, flat, s, assign)
        write_batch(Path(folder), {"codes": codes, "residuals": residuals, "norms": norms, "doclens": doclens})
        self.written += 1
        if self.die_after is not None and self.written >= self.die_after:  # test hook: a worker dies mid-build
            os.kill(os.getpid(), signal.SIGKILL)
        return {"batch": b, "passages": len(doclens), "vectors": int(codes.shape[0])}


def _with_sample(fresh: torch.Tensor, fresh_lens: np.ndarray, reuse: dict[str, Any], dim: int
                 ) -> tuple[torch.Tensor, np.ndarray]:
    """A batch's vectors in passage order: sample passages from the sample file, the others from ``fresh``."""
    mask = np.asarray(reuse["in_sample"], dtype=bool)
    starts, lens = np.asarray(reuse["starts"], np.int64), np.asarray(reuse["lens"], np.int64)
    sample = np.memmap(reuse["path"], dtype=np.dtype(reuse["dtype"]), mode="r", shape=(reuse["rows"], dim))
    doclens = np.zeros(len(mask), np.int64)
    doclens[mask], doclens[~mask] = lens, fresh_lens
    out = torch.empty((int(doclens.sum()), dim), dtype=torch.float32)
    offsets = np.concatenate([[0], np.cumsum(doclens)])
    fresh_offsets = np.concatenate([[0], np.cumsum(fresh_lens)])
    si = fi = 0
    for i, in_sample in enumerate(mask):
        a, z = offsets[i], offsets[i + 1]
        if in_sample:
            out[a:z] = torch.from_numpy(np.asarray(sample[starts[si] : starts[si] + lens[si]], dtype=np.float32))
            si += 1
        else:
            out[a:z] = fresh[fresh_offsets[fi] : fresh_offsets[fi + 1]]
            fi += 1
    return out, doclens


class _RaySource(EmbeddingSource):
    """The k-means sample encoded by the build's workers.

    The sample is encoded block by block (``settings.chunk_passages``), each
    block by one worker in one call, exactly as a local build groups it (so the
    same vectors, the same centroids); the next blocks are submitted ahead, a
    few per worker, so the workers run in parallel while the driver spills.
    """

    expensive = True

    def __init__(self, ray: Any, workers: list[Any], texts: TextCollection, blocks: list[np.ndarray], fp16: bool,
                 batch_size: int):
        self.ray, self.workers, self.texts = ray, workers, texts
        self.fp16, self.batch_size = fp16, batch_size
        self._blocks = [np.asarray(b, dtype=np.int64) for b in blocks]
        self._next = 0
        self._running: dict[int, Any] = {}

    @property
    def num_passages(self) -> int:
        return self.texts.num_passages

    def _submit_ahead(self) -> None:
        while self._next < len(self._blocks) and len(self._running) < 2 * len(self.workers):
            block = self._blocks[self._next]
            worker = self.workers[self._next % len(self.workers)]
            self._running[int(block[0])] = (block, worker.embed.remote(self.texts.texts_at(block.tolist()),
                                                                       self.fp16, self.batch_size))
            self._next += 1

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        pids = np.asarray(pids, dtype=np.int64)
        if len(pids) == 0:
            return torch.empty(0), np.zeros(0, np.int64)
        self._submit_ahead()
        block, ref = self._running.pop(int(pids[0]), (None, None))
        if block is None or not np.array_equal(block, pids):  # not a planned block: encode it on its own
            ref = self.workers[0].embed.remote(self.texts.texts_at(pids.tolist()), self.fp16, self.batch_size)
        try:
            flat, lens = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a worker died while encoding the sample
            raise BuildWorkerError(f"a build worker failed while encoding the k-means sample ({type(exc).__name__}); "
                                   "run the same build again") from None
        self._submit_ahead()
        return torch.from_numpy(np.array(flat)).float(), np.asarray(lens, dtype=np.int64)


def build(collection: Any, path: str | os.PathLike, *, model: Any = DEFAULT_MODEL, shards: int = 1,
          ray_address: str | None = None, num_workers: int | None = None, num_gpus_per_worker: float = 0,
          batch_size: int = 32, batch_passages: int = 1024, doc_ids: Any = None, metadata: Any = None,
          text_column: str = "text", nbits: int | None = None,
          settings: IndexSettings | Mapping[str, Any] | None = None, overwrite: bool = False,
          show_progress: bool | None = None, keep_work: bool = False, **setting_overrides: Any) -> Any:
    """Encode and compress ``collection`` on a Ray cluster; returns the index loaded
    (an :class:`~colja.Index` for ``shards=1``, else a :class:`~colja.distributed.ShardedIndex`).

    ``collection``: a list of texts, a ``datasets.Dataset`` (``text_column``) or
    a ``.jsonl`` file. ``model``: a hub id or folder every worker can load (or a
    ColBERT object, shipped to the workers). ``ray_address``: the cluster
    (``"auto"``, ``"ray://head:10001"``; None: the connected one, else a new
    local Ray). ``num_workers`` model actors (default: one per CPU of the
    cluster, or per ``num_gpus_per_worker`` GPUs) encode ``batch_passages``
    passages per task, ``batch_size`` per forward pass. A re-run with the same
    arguments after a failure skips the batches already written (the work
    folder ``.<name>.colja-build`` beside ``path`` is removed on success unless
    ``keep_work``). Other options are those of ``Index.build``.
    """
    from colja.distributed.shards import connect

    shards = _check_shards(shards)
    if not isinstance(batch_passages, int) or batch_passages < 1:
        raise ValueError(f"batch_passages must be a positive int, got {batch_passages!r}")
    settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
    texts, ids, meta = read_collection(collection, doc_ids, metadata, text_column)
    n = texts.num_passages
    positions = _positions(ids, n, shards)
    target = Path(path)
    _prepare_target(target, shards, overwrite)  # checks only; written at the end
    encoder = resolve_model(model)
    dim = getattr(encoder, "dim", None)
    if dim is not None:
        check_dims(int(dim), settings.nbits)
    model_info = describe_model(encoder)
    num_batches = (n + batch_passages - 1) // batch_passages
    digest = fingerprint(_all_texts(texts), ids, meta, settings.to_dict(), model_info, shards, batch_passages)
    ledger = Ledger(work_folder(target), digest, batch_passages, num_batches)
    resumed = ledger.resumed
    report: dict[str, Any] = {}
    started = time.perf_counter()

    ray = connect(ray_address)
    workers = _start_workers(ray, encoder, model, num_workers, num_gpus_per_worker,
                             len([x for x in range(num_batches) if x not in ledger.done]) or 1)
    fp16 = settings.round_to_fp16
    try:
        # 2. the codec, once (kept across re-runs): the sample encoded by the workers, k-means here
        loaded = ledger.load_codec()
        if loaded is None:
            scratch = ledger.folder / "sample"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            fit_report = BuildReport(num_passages=n)
            sample_pids = plan_sample(n, settings).pids
            blocks = [sample_pids[i : i + settings.chunk_passages]
                      for i in range(0, len(sample_pids), settings.chunk_passages)]
            trained = fit_codec(_RaySource(ray, workers, texts, blocks, fp16, batch_size), settings, scratch,
                                fit_report, show_progress, sample_pids=sample_pids)
            codec = trained.codec
            np.save(scratch / "sample_pids.npy", trained.sample_pids, allow_pickle=False)
            np.save(scratch / "sample_doclens.npy", trained.sample_doclens, allow_pickle=False)
            del trained
            report = fit_report.to_dict()
            ledger.save_codec(codec, report)  # written last: a codec means a complete sample
        else:
            codec, report = loaded
        seconds: dict[str, float] = dict(report.get("seconds") or {})

        # 3. encode (passages outside the sample) + compress, on the cluster
        clock = time.perf_counter()
        pending = [x for x in range(num_batches) if x not in ledger.done]
        if pending:
            _run_batches(ray, workers, ledger, pending, texts, codec, settings, _sample_file(ledger, codec.dim, fp16),
                         batch_size, batch_passages, show_progress)
        seconds["encode_compress"] = time.perf_counter() - clock
    finally:
        for wk in workers:
            ray.kill(wk, no_restart=True)

    # 4. the index (or the shards and sharded.json)
    clock = time.perf_counter()
    target = _prepare_target(target, shards, overwrite)
    extra = {"kind": "distributed", "batches": num_batches, "batch_passages": batch_passages,
             "resumed_batches": resumed}
    _assemble(target, shards, positions,
              lambda pos, shard_texts: BatchSource(ledger, batch_passages, pos), codec, settings, texts, ids,
              meta, model_info, extra, show_progress)
    seconds["assemble"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - started
    logger.info("distributed build of %d passages into %s: %s", n, target, seconds)
    if not keep_work:
        ledger.remove()
    if shards == 1:
        from colja.searchable.index import Index

        return Index.load(target, model=encoder)
    from colja.distributed.sharded import ShardedIndex

    return ShardedIndex.load(target, model=encoder)


def _all_texts(texts: TextCollection):
    for start in range(0, texts.num_passages, 4096):
        yield from texts.texts(start, min(texts.num_passages, start + 4096))


def _start_workers(ray: Any, encoder: Any, model: Any, num_workers: int | None, num_gpus: float,
                   most: int) -> list[Any]:
    """The pool of model actors (one per CPU of the cluster, or per ``num_gpus`` GPUs, by default)."""
    resources = ray.cluster_resources()
    if num_workers is None:
        num_workers = int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1))
    num_workers = max(1, min(num_workers, most))
    shipped = os.fspath(model) if isinstance(model, (str, os.PathLike)) else encoder
    die_after = 2 if os.environ.get(FAULT_ENV) == WORKER_FAULT else None
    actor = ray.remote(_BuildWorker).options(num_cpus=1 if not num_gpus else 0, num_gpus=num_gpus or 0,
                                             max_restarts=0, scheduling_strategy="SPREAD")
    return [actor.remote(shipped, bool(num_gpus), die_after) for _ in range(num_workers)]


def _sample_file(ledger: Ledger, dim: int, fp16: bool) -> dict[str, Any] | None:
    """Where the k-means sample's vectors are (reused instead of encoding those passages again), or None."""
    folder = ledger.folder / "sample"
    if not all((folder / f).is_file() for f in ("sample.bin", "sample_pids.npy", "sample_doclens.npy")):
        return None
    pids = np.load(folder / "sample_pids.npy")
    doclens = np.load(folder / "sample_doclens.npy")
    dtype = np.float16 if fp16 else np.float32
    rows = int(doclens.sum())
    if (folder / "sample.bin").stat().st_size != rows * dim * np.dtype(dtype).itemsize:
        return None
    return {"path": os.fspath(folder / "sample.bin"), "dtype": np.dtype(dtype).name, "rows": rows, "pids": pids,
            "offsets": np.concatenate([[0], np.cumsum(doclens)])}


def _reuse_for(sample: dict[str, Any] | None, start: int, stop: int) -> tuple[dict[str, Any] | None, np.ndarray]:
    """What a batch reuses from the sample, and the positions it must encode."""
    pids = np.arange(start, stop, dtype=np.int64)
    if sample is None:
        return None, pids
    where = np.searchsorted(sample["pids"], pids)
    capped = np.minimum(where, len(sample["pids"]) - 1)
    mask = (where < len(sample["pids"])) & (sample["pids"][capped] == pids)
    rows = where[mask]
    offsets = sample["offsets"]
    reuse = {"path": sample["path"], "dtype": sample["dtype"], "rows": sample["rows"], "in_sample": mask.tolist(),
             "starts": offsets[rows].tolist(), "lens": (offsets[rows + 1] - offsets[rows]).tolist()}
    return reuse, pids[~mask]


def _run_batches(ray: Any, workers: list[Any], ledger: Ledger, pending: list[int], texts: TextCollection,
                 codec: ResidualCodec, settings: IndexSettings, sample: dict[str, Any] | None, batch_size: int,
                 batch_passages: int, show_progress: bool | None) -> None:
    n = texts.num_passages
    codec_ref = ray.put({"centroids": codec.centroids.numpy(), "bucket_cutoffs": codec.bucket_cutoffs.numpy(),
                         "bucket_weights": codec.bucket_weights.numpy(), "avg_residual": codec.avg_residual,
                         "nbits": codec.nbits})
    bar = None
    if progress_enabled(show_progress, 0):
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=n - sum(min(batch_passages, n - b * batch_passages) for b in pending),
                   desc=f"Encoding on Ray ({len(workers)} workers)", unit="passage", dynamic_ncols=True)
    clock, encoded = time.perf_counter(), 0
    todo = list(pending)
    running: dict[Any, tuple[int, int]] = {}

    def submit(w: int) -> None:
        b = todo.pop(0)
        reuse, fresh = _reuse_for(sample, b * batch_passages, min(n, (b + 1) * batch_passages))
        ref = workers[w].run.remote(b, texts.texts_at(fresh.tolist()) if len(fresh) else [], reuse, codec_ref,
                                    settings.to_dict(), os.fspath(ledger.batch_path(b)), batch_size)
        running[ref] = (w, b)

    try:
        for w in range(len(workers)):
            if todo:
                submit(w)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            w, b = running.pop(ready[0])
            try:
                done = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a worker died: the batches written so far stay
                raise BuildWorkerError(f"build worker {w} failed on batch {b} ({type(exc).__name__}); "
                                       f"{len(ledger.done)} of {ledger.state['num_batches']} batches are written: "
                                       "run the same build again to resume") from None
            ledger.mark(b)
            encoded += done["passages"]
            if bar is not None:
                bar.update(done["passages"])
                bar.set_postfix(passages_per_s=f"{encoded / max(1e-9, time.perf_counter() - clock):.0f}")
            if todo:
                submit(w)
    finally:
        if bar is not None:
            bar.close()


__all__ = ["build", "build_local", "read_collection", "WORKER_FAULT"]
