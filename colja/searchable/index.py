"""``Index``: a compressed ColBERTv2/PLAID index on disk — build, load, search, write.

>>> from colja import Index
>>> index = Index.build(["東京は日本の首都です。", "富士山は日本一高い山です。"], name="demo")
>>> index = Index.load("indexes/demo", mmap=True)
>>> index.search("日本一高い山は？", k=1)[0].doc_id
>>> index.add(["京都は古い都です。"]); index.delete(["0"])

``Index`` composes the layers below it and holds no logic of its own: one
immutable :class:`~colja.index.snapshot.IndexSnapshot` (the current
generation: arrays, documents, stored first stages), the search engine
(:mod:`colja.search.engine`, functions over that snapshot and the encoder),
and the one writer (:mod:`colja.index.writes`), whose commit hands back the
next snapshot. A search pins the snapshot it starts with, so it never sees a
write half-way; the arrays live on the snapshot (``with index.snapshot() as s: s.codes``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from colja.errors import CollectionError, ModelLoadError
from colja.index.build import ListSource, ModelSource
from colja.index.codec import check_dims
from colja.index.collection import (TextCollection, as_embedding_list, as_text_collection, check_doc_ids,
                                    check_split_doc_ids,
                                    check_texts_for, dump_all_metadata, split_collection)
from colja.index.documents import check_id_list, check_split_options, prepare_documents
from colja.index.retrievers import check_name, check_spec
from colja.index.settings import IndexSettings, resolve_settings
from colja._device import resolve_device
from colja.index.snapshot import IndexSnapshot
from colja.index.store import check_target, current_generation_name, folder_bytes
from colja.index.writes import (IndexWriter, live_pids, old_documents, warn_if_drifted, write_add, write_build,
                                write_delete, write_first_stages, write_rebuild, write_update)
from colja.model.encoder import DEFAULT_MODEL, Encoder, describe_model, is_encoder, resolve_model
from colja.search import engine
from colja.search.explain import Explanation, check_doc_id, explain_best
from colja.search.results import Hit, SearchResults

logger = logging.getLogger(__name__)

INDEX_ROOT_ENV = "COLJA_INDEX_ROOT"

#: ``first_stages=`` of ``build``, checked: name -> (kind, model, build settings)
StageSpecs = dict[str, tuple[str, "str | None", dict[str, Any]]]


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


def dataset_ids(collection: Any, doc_ids: Any, id_column: str | None) -> Any:
    """``doc_ids`` from a ``datasets.Dataset``'s ``id_column`` (or its ``id`` / ``_id`` column, said once)."""
    columns = getattr(collection, "column_names", None)
    if columns is None or not hasattr(collection, "features"):
        if id_column is not None:
            raise ValueError("id_column= applies to a datasets.Dataset; pass doc_ids= with a list")
        return doc_ids
    if id_column is not None:
        if doc_ids is not None:
            raise ValueError("pass either doc_ids= or id_column=, not both")
        if id_column not in columns:
            raise CollectionError(f"the dataset has no column {id_column!r} (columns: {columns})")
        return [str(v) for v in collection[id_column]]
    if doc_ids is None:
        found = next((c for c in ("id", "_id") if c in columns), None)
        if found is not None:
            logger.warning("using the dataset's %r column as doc ids (pass id_column= to choose another, "
                           "or doc_ids= to give them)", found)
            return [str(v) for v in collection[found]]
    return doc_ids


def _stage_specs(spec: Any) -> StageSpecs:
    """``first_stages=`` of ``build`` as name -> ``(kind, model, settings)``, checked before any work."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        requested = []
        for kind, options in spec.items():
            if options is not None and not isinstance(options, Mapping):
                raise TypeError(f"first_stages[{kind!r}] must be a dict of add_first_stage options, got {type(options).__name__}")
            requested.append((kind, dict(options or {})))
    elif isinstance(spec, (list, tuple)):
        requested = [(kind, {}) for kind in spec]
    else:
        raise TypeError(f"first_stages must be a name, a list of names or a dict, got {type(spec).__name__}")
    out: StageSpecs = {}
    for kind, options in requested:
        name = check_name(options.pop("name", kind))
        options.pop("overwrite", None)
        options.pop("show_progress", None)
        model = options.pop("model", None)
        check_spec(kind, model, options)
        out[name] = (kind, model, options)
    return out


class Index:
    """A compressed ColBERTv2 index on disk: residual codec, IVF, document store, stored first stages.

    Satisfies :class:`~colja.searchable.contract.Searchable`. Searches are
    thread-safe (the arrays are read-only, the kernels release the GIL); a
    search running while the index is written sees the collection before or
    after the write, never a mix. Another ``Index`` object on the same folder
    keeps answering from its generation until :meth:`refresh`.
    """

    def __init__(self, path: str | os.PathLike, snapshot: IndexSnapshot, model: Any = None,
                 device: Any = None):
        self.path = Path(path)
        self._snapshot = snapshot
        self._device = resolve_device(device)
        self._local = threading.local()  # the snapshot pinned by a call running in this thread
        self._model: Encoder | None = None if isinstance(model, (str, os.PathLike)) else model
        self._model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        self._model_lock = threading.Lock()

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
        id_column: str | None = None,
        batch_size: int = 32,
        device: Any = None,
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
        ids; for a dataset, its ``id_column``, or else an ``id`` / ``_id``
        column when it has one, with a note). ``metadata``: one JSON-serialisable dict (or None) per passage.
        ``path``: the index folder (default: ``<root>/<name>``, root =
        ``$COLJA_INDEX_ROOT`` or ``./indexes``, name = ``index-<date>-<time>``).
        ``nbits`` (default 2) and any :class:`IndexSettings` field may be given
        as keywords. An existing index is only replaced with ``overwrite=True``;
        bad input raises before anything is written. ``first_stages``: first
        stages to store with the index, in the same generation (``"bm25"``,
        ``["bm25", "static"]``, or ``{"dense": {"model": "pkshatech/GLuCoSE-base-ja-v2"}}``;
        see :meth:`add_first_stage`).

        ``split=True`` splits each document into passages at Japanese sentence
        ends, at most ``max_tokens`` model tokens each (default: what fits the
        model's ``doc_maxlen``), with ``overlap`` tokens of whole sentences
        repeated (:class:`colja.text.splitter.PassageSplitter`). Passage ``j``
        of document ``d`` gets the id ``f"{d}#{j}"``, its metadata, and ``d``
        as ``parent_id`` with its character span in ``d`` (see ``Hit``);
        ``search(..., group_by_doc=True)`` returns the best passage per document.
        """
        check_split_options(split, max_tokens, overlap)
        stages = _stage_specs(first_stages)
        settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
        texts = as_text_collection(collection, text_column=text_column)
        doc_ids = dataset_ids(collection, doc_ids, id_column)
        ids = check_doc_ids(doc_ids, texts.num_passages)
        if split:
            check_split_doc_ids(ids)
        meta = dump_all_metadata(metadata, texts.num_passages)
        target = check_target(_target(path, name), overwrite=overwrite)
        if model is None:
            raise ValueError("Index.build needs a model to encode texts; use Index.from_embeddings for precomputed vectors")
        where = resolve_device(device)
        encoder = resolve_model(model)
        if where is not None and callable(getattr(encoder, "to_device", None)):
            encoder.to_device(where)
        dim = getattr(encoder, "dim", None)
        if dim is not None:
            check_dims(int(dim), settings.nbits)
        parents = spans = None
        if split:
            from colja.text.splitter import PassageSplitter

            splitter = PassageSplitter.for_model(encoder, max_tokens=max_tokens, overlap=overlap)
            texts, ids, meta, parents, spans = split_collection(splitter, texts, ids, meta)
        with IndexWriter(target, new_index=True) as w:
            snapshot = write_build(w, ModelSource(encoder, texts, batch_size=batch_size), settings=settings,
                                   texts=texts, first_stages=stages, show_progress=show_progress, doc_ids=ids,
                                   metadata=meta, model_info=describe_model(encoder),
                                   extra_manifest={"source": {"kind": "build", "split": bool(split)}},
                                   parent_ids=parents, spans=spans, device=where)
        return cls(target, snapshot, encoder, device=where)

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
        device: Any = None,
        **setting_overrides: Any,
    ) -> "Index":
        """Index precomputed per-passage vectors (a list of ``[n_i, dim]`` arrays or tensors).

        Same pipeline and checks as :meth:`build`. ``texts`` (optional) are
        stored with the passages; ``model`` (a name or a ColBERT, optional) is
        recorded so that text queries can be encoded later. ``device``: where
        compression and later searches run (as in :meth:`build`).
        """
        where = resolve_device(device)
        settings = resolve_settings(settings, nbits=nbits, **setting_overrides)
        tensors = as_embedding_list(doc_embeddings)
        n = len(tensors)
        ids = check_doc_ids(doc_ids, n)
        meta = dump_all_metadata(metadata, n)
        text_list = check_texts_for(texts, n)
        check_dims(int(tensors[0].shape[1]), settings.nbits)
        target = check_target(_target(path, name), overwrite=overwrite)
        _check_model_arg(model)
        with IndexWriter(target, new_index=True) as w:
            snapshot = write_build(w, ListSource(tensors), settings=settings,
                                   texts=TextCollection(text_list) if text_list is not None else None,
                                   show_progress=show_progress, doc_ids=ids, metadata=meta,
                                   model_info=describe_model(model),
                                   extra_manifest={"source": {"kind": "from_embeddings"}}, device=where)
        return cls(target, snapshot, model, device=where)

    @staticmethod
    def in_memory(collection: Any, *, model: Any = DEFAULT_MODEL, doc_ids: Any = None, metadata: Any = None,
                  batch_size: int = 32) -> Any:
        """An exact, uncompressed index held in memory (no files): a :class:`~colja.InMemoryIndex`
        with the same search / add / delete methods, for notebooks and small collections."""
        from colja.searchable.memory import InMemoryIndex

        return InMemoryIndex.build(collection, model=model, doc_ids=doc_ids, metadata=metadata, batch_size=batch_size)

    @classmethod
    def import_stanford(cls, source: str | os.PathLike, path: str | os.PathLike | None = None, *,
                        model: Any = None, collection: Any = None, doc_ids: Any = None,
                        overwrite: bool = False, name: str | None = None) -> "Index":
        """Convert a colbert-ai / RAGatouille index folder (see :mod:`colja.index.stanford`)."""
        from colja.index.stanford import import_stanford

        target = _target(path, name or (None if path is not None else Path(source).name))
        _check_model_arg(model)
        snapshot = import_stanford(source, target, model=model, collection=collection, doc_ids=doc_ids,
                                   overwrite=overwrite)
        return cls(target, snapshot, model)

    # ------------------------------------------------------------------ load

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: Any = None, mmap: bool = False, check_hashes: bool = True,
             device: Any = None, trust_remote_code: bool = False) -> "Index":
        """Open the index at ``path`` (a folder, or a name under the index root).

        ``model``: a ColBERT, or a name / path loaded on first use, to encode
        text queries with (default: the manifest's model, loaded on first use).
        ``mmap=True`` maps the arrays read-only instead of reading them.
        ``check_hashes=False`` skips the sha256 check of every file (sizes,
        array headers and values are still checked: :mod:`colja.index.validate`).
        ``device="cuda"`` searches on the GPU (the arrays are copied there once
        per generation; the files are the same whichever device built them);
        default: the CPU. ``trust_remote_code=True`` lets a stored first stage's
        model run its own Python code; without it (whatever the folder records)
        such a stage is refused with :class:`~colja.errors.UntrustedCodeError`
        when used. A folder that fails validation raises
        :class:`~colja.errors.IndexFormatError` naming the file and the broken invariant.
        """
        where = resolve_device(device)
        root = Path(path)
        if not root.exists() and not root.is_absolute() and (default_root() / root).exists():
            root = default_root() / root
        _check_model_arg(model)
        snapshot = IndexSnapshot.open(root, mmap=mmap, check_hashes=check_hashes, trust_remote_code=trust_remote_code)
        if model is not None and getattr(model, "dim", None) not in (None, snapshot.dim):
            snapshot.close()
            raise ValueError(f"the model makes {model.dim}-d vectors but the index holds {snapshot.dim}-d vectors")
        return cls(root if (root / "CURRENT").exists() else snapshot.generation, snapshot, model, device=where)

    @staticmethod
    def verify(path: str | os.PathLike, *, deep: bool = True) -> list[Any]:
        """Check the index at ``path`` and return every problem found (an empty list: it is sound).

        Runs every check of :meth:`load` (checksums included) without stopping at
        the first failure, and with ``deep=True`` also the ones too expensive for
        each load (IVF and norms recomputed, SQLite integrity check, duplicate
        doc ids, stored first stages opened). Each problem names the file and the
        invariant (:class:`colja.index.validate.Problem`). Runs no model code.
        """
        from colja.index.validate import verify

        return verify(path, deep=deep)

    # ------------------------------------------------------------------ snapshots

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[IndexSnapshot]:
        """Pin the current snapshot for this thread (re-entrant): the calls inside see one generation."""
        pinned = getattr(self._local, "state", None)
        if pinned is not None:
            yield pinned
            return
        state = self._snapshot
        while not state.acquire():  # replaced and closed between the read and the pin: take the newer one
            state = self._snapshot
        self._local.state = state
        try:
            yield state
        finally:
            self._local.state = None
            state.release()

    def snapshot(self) -> contextlib.AbstractContextManager[IndexSnapshot]:
        """Pin the current generation for this thread while the ``with`` block runs; yields it.

        Each call pins one generation by itself; pin explicitly to keep several
        calls on one generation while other threads write, e.g.
        ``with index.snapshot() as s: hits = index.hits(index.search_embeddings(Q, 10))``.
        The snapshot holds the arrays (``s.codes``, ``s.ivf``, …), the
        document store (``s.docs``) and the manifest.
        """
        return self._pinned()

    def _adopt(self, state: IndexSnapshot) -> None:
        """Make ``state`` current (one reference swap). The old snapshot closes its document store
        when the last search running on it ends (its arrays and memory maps stay valid meanwhile)."""
        old, self._snapshot = self._snapshot, state
        if old is not state:
            old.retire()

    def refresh(self) -> bool:
        """Switch to the index's newest generation if another writer committed one; True if it changed."""
        if current_generation_name(self.path) in (None, self._snapshot.generation.name):
            return False
        self._adopt(IndexSnapshot.open(self.path, mmap=self.mmap, check_hashes=False,
                                       trust_remote_code=self._snapshot.trust_remote_code))
        return True

    # ------------------------------------------------------------------ what it is
    @property
    def device(self) -> torch.device:
        """Where searches run (``Index.load(..., device=...)``; default the CPU)."""
        return self._device or torch.device("cpu")

    @property
    def mmap(self) -> bool:
        return self._snapshot.mmap

    @property
    def manifest(self) -> dict[str, Any]:
        return self._snapshot.manifest

    @property
    def generation(self) -> Path:
        return self._snapshot.generation

    @property
    def dim(self) -> int:
        return self._snapshot.dim

    @property
    def nbits(self) -> int:
        return self._snapshot.nbits

    @property
    def num_passages(self) -> int:
        """Passage ids in use (deleted passages included until a rebuild); ``len(index)`` counts the live ones."""
        return self._snapshot.num_passages

    @property
    def num_embeddings(self) -> int:
        return self._snapshot.num_embeddings

    # ------------------------------------------------------------------ model

    @property
    def model(self) -> Encoder:
        """The encoder of text queries: given at load, or the manifest's model (loaded now)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        _check_model_arg(model)
        if isinstance(model, (str, os.PathLike)):
            self._model, self._model_name = None, os.fspath(model)
        else:
            self._model, self._model_name = model, None

    def _load_model(self) -> Encoder:
        info = self.manifest.get("model") or {}
        name = self._model_name or info.get("name_or_path")
        if not name:
            raise ModelLoadError("this index records no model (built from precomputed vectors); "
                                 "pass one: Index.load(path, model=ColBERT.from_pretrained(...))")
        model = resolve_model(name)
        dim = getattr(model, "dim", None)
        if dim is not None and int(dim) != self.dim:
            raise ValueError(f"the model {name!r} makes {dim}-d vectors but the index holds {self.dim}-d vectors")
        return model

    def _encoder_for_writes(self) -> Encoder:
        try:
            return self.model
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc}; or pass precomputed vectors: index.add(texts, embeddings=[...])") from None

    # ------------------------------------------------------------------ search (the searchable contract)

    def search(self, query: str, k: int = 10, *, first_stage: str | Sequence[str] = "plaid",
               candidates: int | None = None, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
               **options: Any) -> list[Hit]:
        """The ``min(k, allowed passages)`` best passages for one text query, best first.

        ``first_stage``: ``"plaid"`` (default), a stored first stage's name
        (``"bm25"``, ``"dense"``, ``"static"``: see :meth:`add_first_stage`),
        ``"hybrid"`` (PLAID fused with every stored first stage) or a list of
        names to fuse; ``candidates`` (default ``max(100, 10*k)``) is how many
        each one passes to the exact MaxSim rerank (:mod:`colja.search.candidates`).
        ``where``: a metadata filter (:mod:`colja.index.filters`:
        ``{"source": "wiki", "year": {"$gte": 2020}}``); ``group_by_doc``: the
        best passage of each document (passages split from one document share
        its ``parent_id``). ``options`` are :class:`~colja.search.settings.SearchSettings`
        fields: ``ncells``, ``centroid_score_threshold``, ``ndocs``, ``nfinal``,
        ``exhaustive=True`` (score every passage exactly).
        """
        return self.search_batch([engine.check_query(query)], k, first_stage=first_stage, candidates=candidates,
                                 where=where, group_by_doc=group_by_doc, **options)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, first_stage: str | Sequence[str] = "plaid",
                     candidates: int | None = None, where: Mapping[str, Any] | None = None,
                     group_by_doc: bool = False, **options: Any) -> list[list[Hit]]:
        """``search`` for several queries (encoded together)."""
        with self._pinned() as snapshot:
            encoder = _LazyEncoder(self)
            return engine.search_texts(snapshot, encoder, queries, k, first_stage=first_stage, candidates=candidates,
                                       where=where, group_by_doc=group_by_doc, options=options, device=self._device)

    def search_embeddings(self, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                          group_by_doc: bool = False, **options: Any) -> SearchResults:
        """Search with precomputed query vectors ``Q`` (``[Lq, dim]`` or ``[n, Lq, dim]``, numpy or torch;
        all-zero rows are padding): :class:`SearchResults` ``[n, k]``, padded with ``-inf`` / ``-1``."""
        with self._pinned() as snapshot:
            return engine.search_vectors(snapshot, Q, k, where=where, group_by_doc=group_by_doc, options=options,
                                         device=self._device)

    def hits(self, results: SearchResults, i: int = 0, *, query_length: int | None = None) -> list[Hit]:
        """``Hit`` objects for query ``i`` of ``results`` (``query_length``: its vectors, for ``normalized_score``)."""
        with self._pinned() as snapshot:
            return engine.to_hits(snapshot, results, i, query_length=query_length)

    def explain(self, query: str, doc_id: str) -> Explanation:
        """Why ``doc_id`` matched ``query``: for each query token, the passage token it matched best
        (with its characters in the passage text) and the score; the scores add up to the exact
        MaxSim score over the stored (decompressed) vectors. See :class:`~colja.search.explain.Explanation`.
        Needs the model the index was built with; unknown ids raise :class:`~colja.errors.UnknownDocumentError`."""
        engine.check_query(query)
        check_doc_id(doc_id)
        with self._pinned() as snapshot:
            pids = live_pids(snapshot, [doc_id], "explained")
            records = snapshot.docs.records(pids)
            flat, lens = snapshot.passage_vectors(torch.tensor(pids, dtype=torch.long))
        parts = flat.split(lens.tolist())
        return explain_best(self.model, query, [(r.doc_id, r.text, v) for r, v in zip(records, parts)])

    # ------------------------------------------------------------------ write

    @contextlib.contextmanager
    def _writing(self) -> Iterator[IndexWriter]:
        """One write through the index's writer; the committed (or newer) generation becomes current."""
        w = IndexWriter(self.path, self._snapshot, mmap=self.mmap)
        try:
            with w:
                yield w
                if w.snapshot is not None:  # adopt, then remove what this object no longer pins (lock still held)
                    self._adopt(w.snapshot)
                    w.tidy()
        finally:
            newest = w.snapshot if w.snapshot is not None else (w.base if w.opened_base else None)
            if newest is not None:
                self._adopt(newest)

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
        check_split_options(split, max_tokens, overlap)
        docs = prepare_documents(self._encoder_for_writes, self.dim, texts, doc_ids, metadata, embeddings=embeddings,
                                 split=split, max_tokens=max_tokens, overlap=overlap, batch_size=batch_size,
                                 show_progress=show_progress, what="add")
        if docs.num_documents == 0:
            return []
        with self._writing() as w:
            ids, _ = write_add(w, docs)
        warn_if_drifted(self.manifest)
        return ids

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (an id of a split document deletes all its passages); returns the passages deleted.

        Unknown ids raise :class:`~colja.errors.UnknownDocumentError` (a ``KeyError``)
        and nothing is deleted. Deleted passages are never returned again; their
        space is reclaimed by :meth:`rebuild`.
        """
        if not check_id_list(doc_ids):
            return 0
        with self._writing() as w:
            count, _ = write_delete(w, doc_ids)
        return count

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
        check_split_options(bool(split), max_tokens, overlap)
        ids = check_id_list(doc_ids)
        if not ids:
            return
        state = self._snapshot
        live_pids(state, ids, "updated")  # fail before encoding
        if split is None and embeddings is not None:
            split = False  # vectors cannot be split
        if split is None:
            was_split = old_documents(state, ids)[1]
            if any(was_split) and not all(was_split):
                raise ValueError("these documents were indexed partly split and partly not; "
                                 "update them in two calls, or pass split=True / split=False")
            split = bool(was_split and was_split[0])
        docs = prepare_documents(self._encoder_for_writes, self.dim, texts, ids, metadata, embeddings=embeddings,
                                 split=split, max_tokens=max_tokens, overlap=overlap, batch_size=batch_size,
                                 show_progress=show_progress, what="update")
        docs.keep_metadata = metadata is None
        with self._writing() as w:
            write_update(w, ids, docs)
        warn_if_drifted(self.manifest)

    def rebuild(self, *, settings: IndexSettings | Mapping[str, Any] | None = None,
                show_progress: bool | None = None) -> None:
        """Re-cluster the index from its stored vectors (new centroids and codec) and drop deleted passages.

        Nothing is re-encoded: the live passages are decompressed and run
        through the build pipeline (with the index's settings, or ``settings``).
        Document ids, texts, metadata and stored first stages are kept;
        internal passage ids change.
        """
        with self._writing() as w:
            write_rebuild(w, settings=settings, show_progress=show_progress)

    # ------------------------------------------------------------------ stored first stages

    @property
    def first_stages(self) -> dict[str, dict[str, Any]]:
        """The stored first stages: name -> ``{"kind", "path", "passages", "settings"}``."""
        return self._snapshot.first_stages

    def first_stage(self, name: str) -> Any:
        """The stored first stage ``name`` (a :class:`~colja.firststage.FirstStage`), loaded on first use."""
        with self._pinned() as snapshot:
            return snapshot.first_stage(name)

    def add_first_stage(self, kind: str, model: str | None = None, *, name: str | None = None,
                        overwrite: bool = False, show_progress: bool | None = None, **settings: Any) -> Any:
        """Build a first stage over every passage and store it in the index (a new generation); returns it.

        ``kind``: ``"bm25"`` (``colja[bm25]``), ``"dense"`` or ``"static"``
        (``colja[dense]``). ``model``: for dense/static, a sentence-transformers
        hub id or folder (default: ``pkshatech/GLuCoSE-base-ja-v2`` /
        ``hotchpotch/static-embedding-japanese``). ``name`` (default: ``kind``)
        is what ``search(..., first_stage=name)`` selects. ``settings`` go to
        the retriever's ``build`` (e.g. ``k1=`` for BM25, ``truncate_dim=`` for
        static). An existing first stage of that name is only replaced with
        ``overwrite=True``.
        """
        name = check_name(kind if name is None else name)
        check_spec(kind, model, settings)
        if name in self.first_stages and not overwrite:
            raise ValueError(f"this index already has a first stage named {name!r}; "
                             "pass overwrite=True to replace it, or choose another name=")
        with self._writing() as w:
            built, _ = write_first_stages(w, {name: (kind, model, settings)}, overwrite=overwrite,
                                          show_progress=show_progress)
        return built[name]

    def remove_first_stage(self, name: str) -> None:
        """Delete a stored first stage (a new generation without its folder)."""
        if name not in self.first_stages:
            raise KeyError(f"this index has no first stage named {name!r}; it has {sorted(self.first_stages) or 'none'}")
        with self._writing() as w:
            write_first_stages(w, drop=(name,))

    # ------------------------------------------------------------------ inspection

    def passage_vectors(self, pids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Decompressed vectors of ``pids``: ``(float32 [sum doclens, dim], doclens int64 [len(pids)])``."""
        with self._pinned() as snapshot:
            return snapshot.passage_vectors(pids)

    def stats(self) -> dict[str, Any]:
        """Passages, vectors, centroids, nbits, bytes on disk and bytes per vector."""
        with self._pinned() as s:
            on_disk = folder_bytes(s.generation)
            vectors = s.num_embeddings
            return {
                "passages": s.num_passages,
                "live_passages": s.docs.count_live(),
                "vectors": vectors,
                "centroids": int(s.centroids.shape[0]),
                "nbits": s.nbits,
                "dim": s.dim,
                "avg_doclen": vectors / max(1, s.num_passages),
                "bytes_on_disk": on_disk,
                "bytes_per_vector": on_disk / max(1, vectors),
                "compressed_bytes_per_vector": 4 + s.dim * s.nbits // 8 + 4,
                "path": str(self.path),
                "generation": s.generation.name,
            }

    def __len__(self) -> int:
        """Live passages (deleted ones excluded)."""
        with self._pinned() as snapshot:
            return snapshot.docs.count_live()

    def close(self) -> None:
        self._snapshot.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._snapshot
        return (f"Index({str(self.path)!r}, passages={s.num_passages}, vectors={s.num_embeddings}, "
                f"centroids={int(s.centroids.shape[0])}, nbits={s.nbits})")


class _LazyEncoder:
    """The index's encoder, loaded only when a query is encoded (bad input fails before loading a model)."""

    def __init__(self, index: Index):
        self._index = index

    def encode_queries(self, queries: Sequence[str], **kwargs: Any) -> torch.Tensor:
        return self._index.model.encode_queries(queries, **kwargs)


def _check_model_arg(model: Any) -> None:
    if model is not None and not isinstance(model, (str, os.PathLike)) and not is_encoder(model):
        raise TypeError(f"model must be a name, a path or a ColBERT, got {type(model).__name__}")


__all__ = ["Index", "default_root", "INDEX_ROOT_ENV", "DEFAULT_MODEL"]
