"""``Index``: build, load and describe a compressed ColBERTv2 index (search lives in ``SearchMixin``).

>>> from colja import Index
>>> index = Index.build(["東京は日本の首都です。", "富士山は日本一高い山です。"], name="demo")
>>> index = Index.load("indexes/demo", mmap=True)
>>> index.stats()["vectors"]

Arrays for the search layer are CPU tensors (read-only views of the files
when loaded with ``mmap=True``): ``centroids`` float16 ``[C, dim]``,
``bucket_cutoffs`` / ``bucket_weights`` float32, ``codes`` int32 ``[N]``,
``residuals`` uint8 ``[N, dim*nbits/8]``, ``norms`` float32 ``[N]``,
``doclens`` int64 ``[n]``, ``doc_offsets`` int64 ``[n+1]``, ``ivf`` int32,
``ivf_lengths`` int64 ``[C]``, ``ivf_offsets`` int64 ``[C+1]``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from colja.errors import IndexFormatError, ModelLoadError
from colja.index.build import ListSource, ModelSource, build_index
from colja.index.codec import ResidualCodec, check_dims
from colja.index.collection import as_embedding_list, as_text_collection, check_doc_ids, check_texts_for, dump_all_metadata
from colja.index.docstore import DocStore
from colja.index.first_stages import FirstStagesMixin
from colja.index.settings import IndexSettings, resolve_settings
from colja.index.store import DOCSTORE, check_target, folder_bytes, open_generation
from colja.search.mixin import SearchMixin

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "answerdotai/JaColBERTv2.5"
INDEX_ROOT_ENV = "COLJA_INDEX_ROOT"


def default_root() -> Path:
    """Where indexes built without a path go: ``$COLJA_INDEX_ROOT`` or ``./indexes``."""
    return Path(os.environ.get(INDEX_ROOT_ENV) or "indexes")


def _default_name() -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = default_root()
    name, k = f"index-{stamp}", 1
    while (root / name).exists():
        k += 1
        name = f"index-{stamp}-{k}"
    return name


def _target(path: str | os.PathLike | None, name: str | None) -> Path:
    if path is not None and name is not None:
        raise ValueError("pass either path= or name= (a folder under the index root), not both")
    if path is not None:
        return Path(path)
    return default_root() / (name or _default_name())


def _load_model(model: Any) -> Any:
    """A model object from a name/path (loaded) or an object with ``encode_documents`` (as is)."""
    if model is None or hasattr(model, "encode_documents"):
        return model
    if isinstance(model, (str, os.PathLike)):
        from colja.model import ColBERT

        return ColBERT.from_pretrained(str(model))
    raise TypeError(f"model must be a name, a path or a ColBERT, got {type(model).__name__}")


def model_info(model: Any) -> dict[str, Any] | None:
    """What the manifest records about the model (None when there is none)."""
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        return {"name_or_path": str(model), "settings": None}
    settings = getattr(model, "settings", None)
    return {
        "name_or_path": getattr(model, "name_or_path", None),
        "settings": settings.to_dict() if hasattr(settings, "to_dict") else None,
        "dim": getattr(model, "dim", None),
    }


def _first_stage_specs(spec: Any) -> dict[str, dict[str, Any]]:
    """``first_stages=`` of ``build`` as ``{kind: add_first_stage keywords}`` (checked before building)."""
    from colja.firststage import first_stage_class

    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        out = {}
        for kind, options in spec.items():
            if options is not None and not isinstance(options, Mapping):
                raise TypeError(f"first_stages[{kind!r}] must be a dict of add_first_stage options, got {type(options).__name__}")
            out[kind] = dict(options or {})
    elif isinstance(spec, (list, tuple)):
        out = {kind: {} for kind in spec}
    else:
        raise TypeError(f"first_stages must be a name, a list of names or a dict, got {type(spec).__name__}")
    for kind in out:
        first_stage_class(kind)
    return out


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing memory with ``array`` (read-only memmaps included)."""
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


def _offsets(lengths: np.ndarray) -> torch.Tensor:
    out = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    if len(lengths):
        torch.cumsum(torch.as_tensor(np.asarray(lengths, dtype=np.int64)), 0, out=out[1:])
    return out


class Index(FirstStagesMixin, SearchMixin):
    """A compressed ColBERTv2 index on disk: residual codec, IVF and document store."""

    def __init__(self, root: Path, generation: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                 docs: DocStore, model: Any = None, *, mmap: bool = False):
        self.path = Path(root)
        self.generation = Path(generation)
        self.manifest = manifest
        self.mmap = mmap
        self.docs = docs
        self._arrays = arrays  # the numpy arrays (memmaps with mmap=True) the tensors view
        codec = manifest["codec"]
        self.nbits = int(codec["nbits"])
        self.dim = int(codec["dim"])
        self.avg_residual = float(codec.get("avg_residual", 0.0))
        self.centroids = _tensor(arrays["centroids"])
        self.bucket_cutoffs = _tensor(arrays["bucket_cutoffs"])
        self.bucket_weights = _tensor(arrays["bucket_weights"])
        self.codes = _tensor(arrays["codes"])
        self.residuals = _tensor(arrays["residuals"])
        self.norms = _tensor(arrays["norms"])
        self.doclens = _tensor(arrays["doclens"])
        self.doc_offsets = _offsets(arrays["doclens"])
        self.ivf = _tensor(arrays["ivf"])
        self.ivf_lengths = _tensor(arrays["ivf_lengths"])
        self.ivf_offsets = _offsets(arrays["ivf_lengths"])
        self.num_passages = int(self.doclens.shape[0])
        self.num_embeddings = int(self.codes.shape[0])
        self.codec = ResidualCodec(self.centroids.float(), self.bucket_cutoffs, self.bucket_weights, self.avg_residual, self.nbits)
        self._model = None if isinstance(model, (str, os.PathLike)) else model
        self._model_name = str(model) if isinstance(model, (str, os.PathLike)) else None

    # ------------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        collection: Any,
        path: str | os.PathLike | None = None,
        *,
        model: Any = DEFAULT_MODEL,
        doc_ids: Any = None,
        metadata: Any = None,
        nbits: int | None = None,
        overwrite: bool = False,
        name: str | None = None,
        settings: IndexSettings | Mapping[str, Any] | None = None,
        text_column: str = "text",
        batch_size: int = 32,
        show_progress: bool | None = None,
        first_stages: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
        **setting_overrides: Any,
    ) -> "Index":
        """Encode ``collection`` with ``model`` and write a compressed index; returns it loaded.

        ``collection``: a list (or any iterable) of passage texts, or a
        ``datasets.Dataset`` with a ``text_column``. ``doc_ids``: unique
        strings, one per passage (default: ``"0"``, ``"1"``, ... = the passage
        ids). ``metadata``: one JSON-serialisable dict (or None) per passage.
        ``path``: the index folder (default: ``<root>/<name>``, root =
        ``$COLJA_INDEX_ROOT`` or ``./indexes``, name = ``index-<date>-<time>``).
        ``nbits`` (default 2) and any :class:`IndexSettings` field may be given
        as keywords. An existing index is only replaced with ``overwrite=True``;
        bad input raises before anything is written. ``first_stages``: first
        stages to store with the index (``"bm25"``, ``["bm25", "static"]``, or
        ``{"dense": {"model": "pkshatech/GLuCoSE-base-ja-v2"}}``; see
        :meth:`add_first_stage`).
        """
        stage_specs = _first_stage_specs(first_stages)
        settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
        texts = as_text_collection(collection, text_column=text_column)
        ids = check_doc_ids(doc_ids, texts.num_passages)
        meta = dump_all_metadata(metadata, texts.num_passages)
        target = check_target(_target(path, name), overwrite=overwrite)
        model = _load_model(model)
        if model is None:
            raise ValueError("Index.build needs a model to encode texts; use Index.from_embeddings for precomputed vectors")
        dim = getattr(model, "dim", None)
        if dim is not None:
            check_dims(int(dim), settings.nbits)
        source = ModelSource(model, texts, batch_size=batch_size)
        build_index(target, source, settings=settings, texts=texts, doc_ids=ids, metadata=meta,
                    model_info=model_info(model), show_progress=show_progress,
                    extra_manifest={"source": {"kind": "build"}})
        index = cls.load(target, model=model)
        for kind, options in stage_specs.items():
            index.add_first_stage(kind, show_progress=show_progress, **options)
        return index

    @classmethod
    def from_embeddings(
        cls,
        doc_embeddings: Any,
        path: str | os.PathLike | None = None,
        *,
        doc_ids: Any = None,
        metadata: Any = None,
        texts: Any = None,
        nbits: int | None = None,
        overwrite: bool = False,
        name: str | None = None,
        model: Any = None,
        settings: IndexSettings | Mapping[str, Any] | None = None,
        show_progress: bool | None = None,
        **setting_overrides: Any,
    ) -> "Index":
        """Index precomputed per-passage vectors (a list of ``[n_i, dim]`` arrays or tensors).

        Same pipeline and checks as :meth:`build`. ``texts`` (optional) are
        stored with the passages; ``model`` (a name or a ColBERT, optional) is
        recorded so that text queries can be encoded later.
        """
        settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
        tensors = as_embedding_list(doc_embeddings)
        n = len(tensors)
        ids = check_doc_ids(doc_ids, n)
        meta = dump_all_metadata(metadata, n)
        text_list = check_texts_for(texts, n)
        check_dims(int(tensors[0].shape[1]), settings.nbits)
        target = check_target(_target(path, name), overwrite=overwrite)
        from colja.index.collection import TextCollection

        build_index(target, ListSource(tensors), settings=settings,
                    texts=TextCollection(text_list) if text_list is not None else None,
                    doc_ids=ids, metadata=meta, model_info=model_info(model), show_progress=show_progress,
                    extra_manifest={"source": {"kind": "from_embeddings"}})
        return cls.load(target, model=model)

    @classmethod
    def import_stanford(cls, source: str | os.PathLike, path: str | os.PathLike | None = None, *,
                        model: Any = None, collection: Any = None, doc_ids: Any = None,
                        overwrite: bool = False, name: str | None = None) -> "Index":
        """Convert a colbert-ai / RAGatouille index folder (see :mod:`colja.index.stanford`)."""
        from colja.index.stanford import import_stanford

        target = _target(path, name or (None if path is not None else Path(source).name))
        import_stanford(source, target, model=model, collection=collection, doc_ids=doc_ids, overwrite=overwrite)
        return cls.load(target, model=model)

    # ------------------------------------------------------------------ load

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: Any = None, mmap: bool = False, check_hashes: bool = True) -> "Index":
        """Open the index at ``path`` (a folder, or a name under the index root).

        ``model``: a ColBERT, or a name / path loaded on first use, to encode
        text queries with (default: the manifest's model, loaded on first use). ``mmap=True`` maps the arrays
        read-only instead of reading them. ``check_hashes=False`` skips the
        sha256 check of every file (sizes and array headers are still checked).
        """
        root = Path(path)
        if not root.exists() and not root.is_absolute() and (default_root() / root).exists():
            root = default_root() / root
        gen, manifest, arrays = open_generation(root, mmap=mmap, check_hashes=check_hashes)
        try:
            docs = DocStore.open(gen / DOCSTORE)
            count = docs.count()
        except Exception as exc:  # sqlite3.DatabaseError, ValueError
            raise IndexFormatError(f"{gen / DOCSTORE}: unreadable document store ({exc})") from exc
        if count != int(manifest["counts"]["passages"]):
            docs.close()
            raise IndexFormatError(f"{gen / DOCSTORE}: {count} passages, the manifest says {manifest['counts']['passages']}")
        if model is not None and not isinstance(model, (str, os.PathLike)) and not hasattr(model, "encode_documents"):
            docs.close()
            raise TypeError(f"model must be a name, a path or a ColBERT, got {type(model).__name__}")
        if model is not None and getattr(model, "dim", None) not in (None, int(manifest["codec"]["dim"])):
            docs.close()
            raise ValueError(f"the model makes {model.dim}-d vectors but the index holds {manifest['codec']['dim']}-d vectors")
        return cls(root if (root / "CURRENT").exists() else gen, gen, manifest, arrays, docs, model, mmap=mmap)

    # ------------------------------------------------------------------ model

    @property
    def model(self) -> Any:
        """The ColBERT that encodes queries: given at load, or the manifest's model (loaded now)."""
        if self._model is None:
            info = self.manifest.get("model") or {}
            name = self._model_name or info.get("name_or_path")
            if not name:
                raise ModelLoadError(
                    "this index records no model (built from precomputed vectors); "
                    "pass one: Index.load(path, model=ColBERT.from_pretrained(...))"
                )
            self._model = _load_model(name)
            dim = getattr(self._model, "dim", None)
            if dim is not None and int(dim) != self.dim:
                bad, self._model = self._model, None
                raise ValueError(f"the model {name!r} makes {bad.dim}-d vectors but the index holds {self.dim}-d vectors")
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        if isinstance(model, (str, os.PathLike)):
            self._model, self._model_name = None, str(model)
        else:
            self._model, self._model_name = _load_model(model), None

    # ------------------------------------------------------------------ access

    def passage_vectors(self, pids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Decompressed vectors of ``pids``: ``(float32 [sum doclens, dim], doclens int64 [len(pids)])``."""
        pids = torch.as_tensor(pids, dtype=torch.int64).reshape(-1)
        starts, ends = self.doc_offsets[pids], self.doc_offsets[pids + 1]
        lens = ends - starts
        if len(pids) == 0 or int(lens.sum()) == 0:
            return torch.empty((0, self.dim)), lens
        rows = torch.cat([torch.arange(int(a), int(b)) for a, b in zip(starts, ends)])
        return self.codec.decompress(self.codes[rows], self.residuals[rows]), lens

    def _reload(self) -> None:
        """Adopt the index's current generation (after a write through this object)."""
        model = self._model if self._model is not None else self._model_name
        fresh = type(self).load(self.path, model=model, mmap=self.mmap, check_hashes=False)
        self.__dict__.pop("_search_arrays_cache", None)
        self.__dict__.update(fresh.__dict__)

    def stats(self) -> dict[str, Any]:
        """Passages, vectors, centroids, nbits, bytes on disk and bytes per vector."""
        on_disk = folder_bytes(self.generation)
        vectors = self.num_embeddings
        packed = self.dim * self.nbits // 8
        return {
            "passages": self.num_passages,
            "live_passages": self.docs.count_live(),
            "vectors": vectors,
            "centroids": int(self.centroids.shape[0]),
            "nbits": self.nbits,
            "dim": self.dim,
            "avg_doclen": vectors / max(1, self.num_passages),
            "bytes_on_disk": on_disk,
            "bytes_per_vector": on_disk / max(1, vectors),
            "compressed_bytes_per_vector": 4 + packed + 4,
            "path": str(self.path),
            "generation": self.generation.name,
        }

    def __len__(self) -> int:
        return self.num_passages

    def close(self) -> None:
        self.docs.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Index({str(self.path)!r}, passages={self.num_passages}, vectors={self.num_embeddings}, "
                f"centroids={int(self.centroids.shape[0])}, nbits={self.nbits})")
