"""``Index``: build, load and describe a compressed ColBERTv2 index (search lives in ``SearchMixin``).

>>> from colja import Index
>>> index = Index.build(["東京は日本の首都です。", "富士山は日本一高い山です。"], name="demo")
>>> index = Index.load("indexes/demo", mmap=True)
>>> index.stats()["vectors"]
>>> index.add(["京都は古い都です。"]); index.delete(["0"])   # see colja.index.update

Arrays for the search layer are CPU tensors (read-only views of the files
when loaded with ``mmap=True``): ``centroids`` float16 ``[C, dim]``,
``bucket_cutoffs`` / ``bucket_weights`` float32, ``codes`` int32 ``[N]``,
``residuals`` uint8 ``[N, dim*nbits/8]``, ``norms`` float32 ``[N]``,
``doclens`` int64 ``[n]``, ``doc_offsets`` int64 ``[n+1]``, ``ivf`` int32,
``ivf_lengths`` int64 ``[C]``, ``ivf_offsets`` int64 ``[C+1]``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from colja.errors import IndexFormatError, ModelLoadError
from colja.index.build import ListSource, ModelSource, build_index
from colja.index.codec import check_dims
from colja.index.collection import (as_embedding_list, as_text_collection, check_doc_ids, check_texts_for,
                                    dump_all_metadata, split_collection)
from colja.index.docstore import DocStore
from colja.index.first_stages import FirstStagesMixin
from colja.index.settings import IndexSettings, resolve_settings
from colja.index.snapshot import IndexSnapshot
from colja.index.store import DOCSTORE, check_target, folder_bytes, open_generation
from colja.search.mixin import SearchMixin
from colja.search.plaid import SearchArrays

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


def _check_split_options(split: bool, max_tokens: int | None, overlap: int) -> None:
    if not split and (max_tokens is not None or overlap):
        raise ValueError("max_tokens= and overlap= apply when splitting documents: pass split=True")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative int, got {overlap!r}")


class _FromSnapshot:
    """A read-only attribute of the index's snapshot in use (see :meth:`Index._view`)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, index: Any, owner: type | None = None) -> Any:
        if index is None:
            return self
        return getattr(index._view(), self.name)


class Index(FirstStagesMixin, SearchMixin):
    """A compressed ColBERTv2 index on disk: residual codec, IVF and document store."""

    def __init__(self, root: Path, generation: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                 docs: DocStore, model: Any = None, *, mmap: bool = False):
        self.path = Path(root)
        self.mmap = mmap
        # everything that changes with a write, swapped as one reference (see colja.index.snapshot)
        self._state = IndexSnapshot(generation, manifest, arrays, docs)
        self._local = threading.local()  # the snapshot pinned by a search running in this thread
        self._model = None if isinstance(model, (str, os.PathLike)) else model
        self._model_name = str(model) if isinstance(model, (str, os.PathLike)) else None

    # the arrays, manifest, codec and document store of the snapshot in use (pinned or current)
    generation = _FromSnapshot("generation")
    manifest = _FromSnapshot("manifest")
    docs = _FromSnapshot("docs")
    _arrays = _FromSnapshot("arrays")
    nbits = _FromSnapshot("nbits")
    dim = _FromSnapshot("dim")
    avg_residual = _FromSnapshot("avg_residual")
    centroids = _FromSnapshot("centroids")
    bucket_cutoffs = _FromSnapshot("bucket_cutoffs")
    bucket_weights = _FromSnapshot("bucket_weights")
    codes = _FromSnapshot("codes")
    residuals = _FromSnapshot("residuals")
    norms = _FromSnapshot("norms")
    doclens = _FromSnapshot("doclens")
    doc_offsets = _FromSnapshot("doc_offsets")
    ivf = _FromSnapshot("ivf")
    ivf_lengths = _FromSnapshot("ivf_lengths")
    ivf_offsets = _FromSnapshot("ivf_offsets")
    num_passages = _FromSnapshot("num_passages")
    num_embeddings = _FromSnapshot("num_embeddings")
    codec = _FromSnapshot("codec")

    # ------------------------------------------------------------------ snapshots

    def _view(self) -> IndexSnapshot:
        """The snapshot pinned by this thread's running search, else the current one."""
        pinned = getattr(self._local, "state", None)
        return pinned if pinned is not None else self._state

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[IndexSnapshot]:
        """Pin the current snapshot for this thread (re-entrant): a search sees one generation throughout."""
        pinned = getattr(self._local, "state", None)
        if pinned is not None:
            yield pinned
            return
        state = self._state
        while not state.acquire():  # replaced and closed between the read and the pin: take the newer one
            state = self._state
        self._local.state = state
        try:
            yield state
        finally:
            self._local.state = None
            state.release()

    def snapshot(self) -> contextlib.AbstractContextManager[IndexSnapshot]:
        """Pin the current generation for this thread while the ``with`` block runs.

        Each search call pins one generation by itself; pin explicitly to keep
        several calls on one generation while other threads write, e.g.
        ``with index.snapshot(): hits = index.hits(index.search_embeddings(Q, 10))``.
        """
        return self._pinned()

    def _adopt(self, state: IndexSnapshot) -> None:
        """Make ``state`` current (one reference swap). The old snapshot closes its document store
        when the last search running on it ends (its arrays and memory maps stay valid meanwhile)."""
        old, self._state = self._state, state
        if old is not state:
            old.retire()

    def refresh(self) -> bool:
        """Switch to the index's newest generation if another writer committed one; True if it changed."""
        from colja.index.store import current_generation_name

        if current_generation_name(self.path) in (None, self.generation.name):
            return False
        self._reload()
        return True

    def _search_arrays(self) -> SearchArrays:
        return self._view().search_arrays()

    def _allowed_mask(self, where: Mapping[str, Any] | None = None) -> torch.Tensor | None:
        return self._view().allowed(where)

    def _group_keys(self) -> torch.Tensor:
        return self._view().group_keys()

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
        split: bool = False,
        max_tokens: int | None = None,
        overlap: int = 0,
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

        ``split=True`` splits each document into passages at Japanese sentence
        ends, at most ``max_tokens`` model tokens each (default: what fits the
        model's ``doc_maxlen``), with ``overlap`` tokens of whole sentences
        repeated (:class:`colja.text.splitter.PassageSplitter`). Passage ``j``
        of document ``d`` gets the id ``f"{d}#{j}"``, its metadata, and ``d``
        as ``parent_id`` with its character span in ``d`` (see ``Hit``);
        ``search(..., group_by_doc=True)`` returns the best passage per document.
        """
        _check_split_options(split, max_tokens, overlap)
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
        parents = spans = None
        if split:
            from colja.text.splitter import PassageSplitter

            splitter = PassageSplitter.for_model(model, max_tokens=max_tokens, overlap=overlap)
            texts, ids, meta, parents, spans = split_collection(splitter, texts, ids, meta)
        source = ModelSource(model, texts, batch_size=batch_size)
        build_index(target, source, settings=settings, texts=texts, doc_ids=ids, metadata=meta,
                    model_info=model_info(model), show_progress=show_progress,
                    extra_manifest={"source": {"kind": "build", "split": bool(split)}},
                    parent_ids=parents, spans=spans)
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

    @staticmethod
    def in_memory(collection: Any, *, model: Any = DEFAULT_MODEL, doc_ids: Any = None, metadata: Any = None,
                  batch_size: int = 32) -> Any:
        """An exact, uncompressed index held in memory (no files): a :class:`~colja.search.in_memory.InMemoryIndex`
        with ``add`` and ``search``, for notebooks and small collections."""
        from colja.search.in_memory import InMemoryIndex

        return InMemoryIndex.build(collection, model=model, doc_ids=doc_ids, metadata=metadata, batch_size=batch_size)

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

    # ------------------------------------------------------------------ write

    def add(self, texts: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, *, embeddings: Any = None, split: bool = False,
            max_tokens: int | None = None, overlap: int = 0, batch_size: int = 32,
            show_progress: bool | None = None) -> list[str]:
        """Add documents without rebuilding; returns their ids.

        The texts are encoded with the index's model (or given as vectors:
        ``embeddings=``, a list of ``[n_i, dim]`` arrays), compressed with the
        existing centroids and appended in a new generation (crash-safe). ``doc_ids``
        default to consecutive numbers as strings, after every number id used
        so far (so, until a rebuild, the new passage ids); an id already in the
        index is an error (use :meth:`update`). ``split``, ``max_tokens``,
        ``overlap``: as for :meth:`build`. Warns with
        :class:`~colja.errors.StaleIndexWarning` once the live collection is more
        than twice what the centroids were trained on: then call :meth:`rebuild`.
        """
        from colja.index.update import add_documents, prepare_documents

        _check_split_options(split, max_tokens, overlap)
        docs = prepare_documents(self, texts, doc_ids, metadata, embeddings=embeddings, split=split,
                                 max_tokens=max_tokens, overlap=overlap, batch_size=batch_size,
                                 show_progress=show_progress, what="add")
        return add_documents(self, docs)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (an id of a split document deletes all its passages); returns the passages deleted.

        Unknown ids raise :class:`~colja.errors.UnknownDocumentError` (a ``KeyError``)
        and nothing is deleted. Deleted passages are never returned again; their
        space is reclaimed by :meth:`rebuild`.
        """
        from colja.index.update import delete_documents

        return delete_documents(self, doc_ids)

    def update(self, doc_ids: Sequence[str], texts: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, *, embeddings: Any = None, split: bool | None = None,
               max_tokens: int | None = None, overlap: int = 0, batch_size: int = 32,
               show_progress: bool | None = None) -> None:
        """Replace documents by new texts (or vectors), keeping their ids, in one crash-safe write.

        ``metadata=None`` keeps each document's metadata; pass a list (``{}``
        to clear) to replace it. ``split=None`` splits a document again if it
        was split before (the id of a single passage ``"d#j"`` replaces that
        passage alone, which then stands as its own document). Unknown ids raise
        :class:`~colja.errors.UnknownDocumentError` and nothing is written.
        """
        from colja.index.update import check_id_list, live_pids, old_documents, prepare_documents, update_documents

        _check_split_options(bool(split), max_tokens, overlap)
        ids = check_id_list(doc_ids)
        if not ids:
            return
        state = self._state
        live_pids(state, ids, "updated")  # fail before encoding
        if split is None and embeddings is not None:
            split = False  # vectors cannot be split
        if split is None:
            was_split = old_documents(state, ids)[1]
            if any(was_split) and not all(was_split):
                raise ValueError("these documents were indexed partly split and partly not; "
                                 "update them in two calls, or pass split=True / split=False")
            split = bool(was_split and was_split[0])
        docs = prepare_documents(self, texts, ids, metadata, embeddings=embeddings, split=split,
                                 max_tokens=max_tokens, overlap=overlap, batch_size=batch_size,
                                 show_progress=show_progress, what="update")
        docs.keep_metadata = metadata is None
        update_documents(self, ids, docs)

    def rebuild(self, *, settings: IndexSettings | Mapping[str, Any] | None = None,
                show_progress: bool | None = None) -> None:
        """Re-cluster the index from its stored vectors (new centroids and codec) and drop deleted passages.

        Nothing is re-encoded: the live passages are decompressed and run
        through the build pipeline (with the index's settings, or ``settings``).
        Document ids, texts, metadata and stored first stages are kept;
        internal passage ids change.
        """
        from colja.index.update import rebuild_index

        rebuild_index(self, settings=settings, show_progress=show_progress)

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
        """Adopt the index's current generation (after a write through this object or another)."""
        self._adopt(self._load_state(self.path, mmap=self.mmap))

    @staticmethod
    def _load_state(path: Path, *, mmap: bool, check_hashes: bool = False) -> IndexSnapshot:
        """The current generation of the index folder ``path`` as a snapshot."""
        gen, manifest, arrays = open_generation(path, mmap=mmap, check_hashes=check_hashes)
        return IndexSnapshot(gen, manifest, arrays, DocStore.open(gen / DOCSTORE))

    def stats(self) -> dict[str, Any]:
        """Passages, vectors, centroids, nbits, bytes on disk and bytes per vector."""
        with self._pinned():
            return self._stats()

    def _stats(self) -> dict[str, Any]:
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
        self._state.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Index({str(self.path)!r}, passages={self.num_passages}, vectors={self.num_embeddings}, "
                f"centroids={int(self.centroids.shape[0])}, nbits={self.nbits})")
