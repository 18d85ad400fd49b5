"""Convert a colbert-ai (Stanford) or RAGatouille index folder into a colja index.

Reads colbert-ai's index layout:
``metadata.json``, ``centroids.pt``, ``buckets.pt``, ``avg_residual.pt``,
``{i}.codes.pt``, ``{i}.residuals.pt``, ``doclens.{i}.json``,
``{i}.metadata.json`` and ``ivf.pid.pt`` (legacy ``ivf.pt`` or none: the IVF is
rebuilt from the codes). Every ``.pt`` file is read with
``torch.load(weights_only=True)``: tensors and tuples only, never arbitrary
pickled objects. Codes and residuals are copied bit for bit; ``norms`` are
computed; the IVF is taken as stored (its trailing padding dropped).

Doc ids and texts: RAGatouille keeps ``pid_docid_map.json``,
``collection.json`` and ``docid_metadata_map.json`` in (or beside) the index
folder; they are used when present. A RAGatouille document split into several
passages gets doc ids ``"<docid>#0"``, ``"<docid>#1"``, ... (doc ids are unique
per passage in colja). Otherwise doc ids are ``str(pid)`` unless ``doc_ids``
are given, and texts come from ``collection`` (a list, a ``datasets.Dataset``,
or a colbert-ai ``collection.tsv`` path: ``pid<TAB>text``), else are empty.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colja.errors import CollectionError, IndexFormatError, IndexNotFoundError
from colja.index.codec import ResidualCodec
from colja.index.collection import as_text_collection, check_doc_ids
from colja.index.docstore import DocStore, dump_metadata
from colja.index.ivf import build_ivf
from colja.index.settings import IndexSettings
from colja.index.snapshot import IndexSnapshot
from colja.index.store import DOCSTORE, NpyWriter, check_target, new_manifest
from colja.index.writes import IndexWriter

logger = logging.getLogger(__name__)


def _load_pt(path: Path) -> Any:
    if not path.is_file():
        raise IndexFormatError(f"{path} is missing: not a complete colbert-ai index")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything that is not plain tensors
        raise IndexFormatError(f"{path}: cannot be read as plain tensors (torch.load weights_only=True): {exc}") from None


def _load_json(path: Path, what: type | None = None) -> Any:
    """``path`` as JSON (of type ``what`` when given), or ``IndexFormatError`` naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: not a complete colbert-ai index") from None
    except UnicodeDecodeError:
        raise IndexFormatError(f"{path}: not JSON text (binary data, e.g. a pickle, which colja never loads); "
                               "write it as JSON") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise IndexFormatError(f"{path}: invalid JSON ({exc})") from None
    if what is not None and not isinstance(value, what):
        raise IndexFormatError(f"{path}: expected a JSON {'object' if what is dict else 'array'}, "
                               f"found {type(value).__name__}")
    return value


def _find(folder: Path, name: str) -> Path | None:
    """``name`` inside the index folder, else beside it (RAGatouille keeps its maps there)."""
    for candidate in (folder / name, folder.parent / name):
        if candidate.is_file():
            return candidate
    return None


class StanfordIndex:
    """The parts of a colbert-ai index folder, read lazily chunk by chunk."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise IndexNotFoundError(f"no colbert-ai index at {self.folder}")
        self.metadata = _load_json(self.folder / "metadata.json")
        self.config = self.metadata.get("config", {})
        self.num_chunks = int(self.metadata.get("num_chunks", 0))
        self.nbits = int(self.config.get("nbits", 1))
        centroids = _load_pt(self.folder / "centroids.pt")
        buckets = _load_pt(self.folder / "buckets.pt")
        avg = _load_pt(self.folder / "avg_residual.pt")
        if not isinstance(centroids, torch.Tensor) or centroids.dim() != 2:
            raise IndexFormatError(f"{self.folder / 'centroids.pt'}: expected a [C, dim] tensor")
        if not (isinstance(buckets, (tuple, list)) and len(buckets) == 2):
            raise IndexFormatError(f"{self.folder / 'buckets.pt'}: expected (bucket_cutoffs, bucket_weights)")
        self.centroids = centroids
        self.bucket_cutoffs, self.bucket_weights = (torch.as_tensor(b).float().reshape(-1) for b in buckets)
        self.avg_residual = float(torch.as_tensor(avg).float().mean())
        self.dim = int(centroids.shape[1])
        if int(self.config.get("dim", self.dim)) != self.dim:
            raise IndexFormatError(f"{self.folder}: config dim {self.config.get('dim')} but centroids are {self.dim}-d")
        if self.bucket_weights.numel() != 2**self.nbits:
            raise IndexFormatError(f"{self.folder / 'buckets.pt'}: {self.bucket_weights.numel()} weights for nbits={self.nbits}")
        self.chunk_meta = [_load_json(self.folder / f"{i}.metadata.json") for i in range(self.num_chunks)]
        self.doclens = [np.asarray(_load_json(self.folder / f"doclens.{i}.json"), dtype=np.int64) for i in range(self.num_chunks)]
        if self.num_chunks == 0:
            raise IndexFormatError(f"{self.folder / 'metadata.json'}: num_chunks is 0 (empty or unfinished index)")

    @property
    def num_passages(self) -> int:
        return int(sum(len(d) for d in self.doclens))

    @property
    def num_embeddings(self) -> int:
        return int(sum(int(d.sum()) for d in self.doclens))

    def chunk(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes int32 [n_i], residuals uint8 [n_i, P])`` of chunk ``i``, checked."""
        codes = _load_pt(self.folder / f"{i}.codes.pt")
        residuals = _load_pt(self.folder / f"{i}.residuals.pt")
        n = int(self.doclens[i].sum())
        packed = self.dim * self.nbits // 8
        if not isinstance(codes, torch.Tensor) or codes.shape != (n,):
            raise IndexFormatError(f"{self.folder / f'{i}.codes.pt'}: expected {n} codes (doclens.{i}.json), found {getattr(codes, 'shape', None)}")
        if not isinstance(residuals, torch.Tensor) or residuals.shape != (n, packed) or residuals.dtype != torch.uint8:
            raise IndexFormatError(f"{self.folder / f'{i}.residuals.pt'}: expected uint8 [{n}, {packed}], found {getattr(residuals, 'dtype', None)} {getattr(residuals, 'shape', None)}")
        return codes.to(torch.int32), residuals

    def ivf(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored pid IVF, or None when there is only a legacy / no IVF."""
        path = self.folder / "ivf.pid.pt"
        if not path.is_file():
            return None
        data = _load_pt(path)
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise IndexFormatError(f"{path}: expected (ivf, ivf_lengths)")
        ivf, lengths = (torch.as_tensor(t) for t in data)
        lengths = lengths.to(torch.int64).numpy()
        total = int(lengths.sum())
        if lengths.shape != (self.centroids.shape[0],) or ivf.numel() < total:
            raise IndexFormatError(f"{path}: {ivf.numel()} entries / {lengths.shape[0]} lengths do not fit {self.centroids.shape[0]} centroids")
        return ivf[:total].to(torch.int32).numpy(), lengths


def _read_collection(collection: Any, n: int) -> list[str]:
    if isinstance(collection, (str, Path)) and Path(collection).is_file():
        texts = []
        with open(collection, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                texts.append(parts[1] if len(parts) > 1 else parts[0])
    else:
        c = as_text_collection(collection)
        texts = c.texts(0, c.num_passages)
    if len(texts) != n:
        raise CollectionError(f"the collection has {len(texts)} passages, the index has {n}")
    return texts


def _ragatouille_rows(folder: Path, n: int) -> tuple[list[str] | None, list[str] | None, list[str | None] | None]:
    """(doc ids, texts, metadata JSON) from RAGatouille's files, where present."""
    ids = texts = meta = None
    pid_map_file = _find(folder, "pid_docid_map.json")
    if pid_map_file is not None:
        raw_map = _load_json(pid_map_file, dict)
        try:
            pid_map = {int(k): str(v) for k, v in raw_map.items()}
        except ValueError as exc:  # a key that is not a passage number
            raise IndexFormatError(f"{pid_map_file}: keys must be passage numbers ({exc})") from None
        docids = [pid_map.get(p, str(p)) for p in range(n)]
        counts: dict[str, int] = {}
        for d in docids:
            counts[d] = counts.get(d, 0) + 1
        seen: dict[str, int] = {}
        ids = []
        for d in docids:
            if counts[d] == 1:
                ids.append(d)
            else:
                k = seen.get(d, 0)
                seen[d] = k + 1
                ids.append(f"{d}#{k}")
        if len(set(ids)) != len(ids):  # "#k" collided with a real id: fall back to pids
            ids = [str(p) for p in range(n)]
        meta_file = _find(folder, "docid_metadata_map.json")
        if meta_file is not None:
            meta_map = _load_json(meta_file, dict)
            meta = [dump_metadata(meta_map.get(d)) if isinstance(meta_map.get(d), dict) else None for d in docids]
    coll_file = _find(folder, "collection.json")
    if coll_file is not None:
        data = _load_json(coll_file)
        if isinstance(data, list) and len(data) == n:
            texts = [t if isinstance(t, str) else json.dumps(t, ensure_ascii=False) for t in data]
    return ids, texts, meta


def import_stanford(source: str | Path, target: str | Path, *, model: Any = None, collection: Any = None,
                    doc_ids: Any = None, overwrite: bool = False) -> "IndexSnapshot":
    """Write a colja index at ``target`` from the colbert-ai index at ``source``; returns it opened."""
    stanford = StanfordIndex(source)
    n = stanford.num_passages
    rag_ids, rag_texts, rag_meta = _ragatouille_rows(stanford.folder, n)
    ids = check_doc_ids(doc_ids, n) if doc_ids is not None else rag_ids
    texts = _read_collection(collection, n) if collection is not None else rag_texts
    target = check_target(target, overwrite=overwrite)
    centroids16 = stanford.centroids.to(torch.float16)
    codec = ResidualCodec(centroids16.float(), stanford.bucket_cutoffs, stanford.bucket_weights, stanford.avg_residual, stanford.nbits)
    total = stanford.num_embeddings
    with IndexWriter(target, new_index=True) as w:
        writer = w.files
        with NpyWriter(writer.path("codes.npy"), np.int32, (total,)) as codes_out, \
                NpyWriter(writer.path("residuals.npy"), np.uint8, (total, codec.packed_dim)) as res_out, \
                NpyWriter(writer.path("norms.npy"), np.float32, (total,)) as norms_out:
            for i in range(stanford.num_chunks):
                codes, residuals = stanford.chunk(i)
                if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codec.num_centroids):
                    raise IndexFormatError(f"{stanford.folder / f'{i}.codes.pt'}: codes outside [0, {codec.num_centroids})")
                codes_out.write(codes.numpy())
                res_out.write(residuals.numpy())
                norms_out.write(codec.norms(codes, residuals).numpy())
        doclens = np.concatenate(stanford.doclens).astype(np.int64)
        stored = stanford.ivf()
        if stored is None:
            codes_all = np.load(writer.path("codes.npy"), mmap_mode="r", allow_pickle=False)
            stored = build_ivf(np.asarray(codes_all), doclens, codec.num_centroids)
            del codes_all
        ivf, ivf_lengths = stored
        writer.save_array("centroids.npy", centroids16.numpy())
        writer.save_array("bucket_cutoffs.npy", codec.bucket_cutoffs.numpy())
        writer.save_array("bucket_weights.npy", codec.bucket_weights.numpy())
        writer.save_array("doclens.npy", doclens)
        writer.save_array("ivf.npy", ivf)
        writer.save_array("ivf_lengths.npy", ivf_lengths)
        docs = DocStore.create(writer.path(DOCSTORE))
        try:
            for start in range(0, n, 10_000):
                stop = min(n, start + 10_000)
                docs.add(
                    list(range(start, stop)),
                    ids[start:stop] if ids is not None else [str(p) for p in range(start, stop)],
                    texts[start:stop] if texts is not None else [""] * (stop - start),
                    rag_meta[start:stop] if rag_meta is not None else [None] * (stop - start),
                )
            docs.finish()
        finally:
            docs.close()
        model_name = model if isinstance(model, str) else getattr(model, "name_or_path", None) if model is not None else stanford.config.get("checkpoint")
        settings = IndexSettings.reference(nbits=stanford.nbits, kmeans_niters=int(stanford.config.get("kmeans_niters", 4)),
                                           num_centroids=codec.num_centroids)
        manifest = new_manifest(
            model={"name_or_path": model_name, "settings": None} if model_name else None,
            codec={"nbits": codec.nbits, "dim": codec.dim, "num_centroids": codec.num_centroids, "avg_residual": codec.avg_residual},
            settings=settings.to_dict(),
            counts={"passages": n, "live_passages": n, "embeddings": total},
            source={"kind": "import_stanford", "path": str(Path(source).resolve()),
                    "colbert_config": {k: stanford.config.get(k) for k in ("checkpoint", "nbits", "dim", "doc_maxlen", "query_maxlen", "kmeans_niters")},
                    "ragatouille": "RAGatouille" in stanford.metadata},
        )
        snapshot = w.commit(manifest)
    logger.info("imported colbert-ai index %s -> %s (%d passages, %d vectors)", source, target, n, total)
    return snapshot
