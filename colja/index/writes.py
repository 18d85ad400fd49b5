"""Every change to an index folder, through one writer: build, add, delete, update, rebuild,
stored first stages added or removed.

:class:`IndexWriter` is the one way colja changes an index: it holds the
index's lock, knows the newest committed generation (``base``, re-read when
another process wrote meanwhile), gives the next generation's folder
(``files``) and commits it atomically, returning the new generation as an
:class:`~colja.index.snapshot.IndexSnapshot`. A crash at any moment leaves
the index before or after the write (:mod:`colja.index.store`).

The write kinds, each one generation:

* **build** (:func:`write_build`): the build pipeline (:mod:`colja.index.build`)
  plus any stored first stages, committed together.
* **add**: new passages are compressed with the index's codec (centroids and
  bucket cutoffs kept) and appended: they get the next passage ids, their
  ``(centroid, pid)`` pairs are merged into the IVF lists, the document store
  (a copy of the previous one) gains their rows; centroids and codec files are
  hard-linked from the previous generation.
* **delete**: the passages become tombstones in the document store (their
  pids keep their place and are never returned again); every array is linked.
* **update**: delete + add in one generation, under the same document ids.
* **rebuild**: the live passages are decompressed and run through the build
  pipeline (new centroids and codec, tombstones dropped: passage ids change,
  document ids do not). ``add`` warns (:class:`~colja.errors.StaleIndexWarning`)
  once the live collection has more than doubled since the centroids were trained.
* **first stages** (:func:`write_first_stages`): stored retrievers added,
  replaced or removed, every other file linked.

Stored first stages follow every write (:mod:`colja.index.retrievers`):
``add``/``update`` extend each one (BM25 is rebuilt over every passage text),
``delete`` links them unchanged (tombstones are filtered at search time),
``rebuild`` builds them again over the live passages.

Input is checked before anything is written (:mod:`colja.index.documents`);
ids are checked again against ``base`` once the lock is held, and a failed
check removes the unfinished generation.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from colja.errors import CollectionError, StaleIndexWarning, UnknownDocumentError
from colja.index.build import EmbeddingSource, write_index_files
from colja.index.collection import TextCollection
from colja.index.docstore import DocStore
from colja.index.documents import NewDocuments, check_id_list
from colja.index.ivf import chunk_pairs
from colja.index.retrievers import FOLDER, build_stored, load_stored, rebuild_stored, reusable_encoder
from colja.index.settings import IndexSettings, resolve_settings
from colja.index.snapshot import IndexSnapshot
from colja._warnings import warn_at_caller
from colja.index.store import ARRAYS, DOCSTORE, GenerationWriter, NpyWriter, cleanup, fault_point

logger = logging.getLogger(__name__)

#: the live collection may grow to this multiple of what the centroids were trained on before ``add`` warns
DRIFT_FACTOR = 2.0
_COPY_ROWS = 1 << 20
_CODEC_FILES = ("centroids.npy", "bucket_cutoffs.npy", "bucket_weights.npy")
_PASSAGE_FILES = ("codes.npy", "residuals.npy", "norms.npy", "doclens.npy", "ivf.npy", "ivf_lengths.npy")


# --------------------------------------------------------------------------- the writer


class IndexWriter:
    """One write to the index at ``root``: lock, newest generation, next generation, commit.

    ``base``: the snapshot the caller holds (None: open the newest one; ignored
    with ``new_index=True``, which writes a whole new index there). Use as a
    context manager; leaving it without :meth:`commit` (or with an exception)
    removes the unfinished generation.
    """

    def __init__(self, root: str | Path, base: IndexSnapshot | None = None, *, mmap: bool = False,
                 new_index: bool = False):
        self.root = Path(root)
        if not new_index and base is not None and self.root.resolve() == base.generation.resolve():
            raise ValueError(f"{self.root} was opened as a generation folder; open the index folder "
                             f"({self.root.parent}) to change it")
        self.mmap = mmap
        self.new_index = new_index
        self.base: IndexSnapshot | None = None if new_index else base
        self.opened_base = False  # True when base was (re)opened here: the caller should adopt it
        self.files: GenerationWriter | None = None
        self.snapshot: IndexSnapshot | None = None  # the committed generation

    def __enter__(self) -> "IndexWriter":
        self.files = GenerationWriter(self.root)
        try:
            if not self.new_index and (self.base is None or self.files.previous != self.base.generation.name):
                if self.base is not None:  # another writer committed meanwhile
                    logger.info("index %s changed on disk (%s); writing on top of the newest generation",
                                self.root, self.files.previous)
                trust = self.base is not None and self.base.trust_remote_code
                self.base = IndexSnapshot.open(self.root, mmap=self.mmap, check_hashes=False, trust_remote_code=trust)
                self.opened_base = True
        except BaseException:
            self.files.abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.files is not None
        self.files.__exit__(exc_type, exc, tb)

    def tidy(self) -> None:
        """Remove generations no reader needs any more (call after the caller released the old snapshot)."""
        cleanup(self.root)

    def link(self, names: Sequence[str]) -> None:
        """Hard-link unchanged files of ``base`` into the next generation."""
        assert self.base is not None and self.files is not None
        entries = self.base.manifest["files"]
        for name in names:
            self.files.link(name, self.base.generation, entries.get(name))

    def carried_manifest(self) -> dict[str, Any]:
        """``base``'s manifest without what every commit writes anew."""
        assert self.base is not None
        return {k: v for k, v in self.base.manifest.items() if k not in ("files", "generation")}

    def commit(self, manifest: dict[str, Any], *, retrievers: Mapping[str, Any] | None = None) -> IndexSnapshot:
        """Make the next generation current; returns it opened, holding ``retrievers`` (already loaded)."""
        assert self.files is not None
        fault_point("before_commit")
        generation = self.files.commit(manifest, keep_lock=True)
        self.snapshot = IndexSnapshot.open(generation, mmap=self.mmap, check_hashes=False, written_here=True,
                                           trust_remote_code=self.base is not None and self.base.trust_remote_code)
        for name, retriever in (retrievers or {}).items():
            self.snapshot.keep_first_stage(name, retriever)
        return self.snapshot


# --------------------------------------------------------------------------- build and rebuild


def write_build(w: IndexWriter, source: EmbeddingSource, *, settings: IndexSettings, texts: TextCollection | None,
                first_stages: Mapping[str, tuple[str, str | None, dict[str, Any]]] | None = None,
                show_progress: bool | None = None, **pipeline: Any) -> IndexSnapshot:
    """Build a whole index into ``w`` and commit it, stored first stages included (one generation).

    ``first_stages``: name -> ``(kind, model, settings)`` (checked by the caller).
    ``pipeline``: the rest of :func:`~colja.index.build.write_index_files`'s keywords.
    """
    assert w.files is not None
    manifest, _ = write_index_files(w.files, source, settings=settings, texts=texts, show_progress=show_progress,
                                    **pipeline)
    built: dict[str, Any] = {}
    if first_stages:
        all_texts = texts.texts(0, texts.num_passages) if texts is not None else [""] * source.num_passages
        entries = {}
        for name, (kind, model, options) in first_stages.items():
            built[name], entries[name] = build_stored(kind, name, all_texts, model=model,
                                                      show_progress=show_progress, **options)
            built[name].save(w.files.path(entries[name]["path"]))
        manifest["first_stages"] = entries
    return w.commit(manifest, retrievers=built)


class _StoredSource(EmbeddingSource):
    """Decompressed vectors of the live passages of a snapshot, renumbered 0.. (for a rebuild)."""

    expensive = False

    def __init__(self, state: IndexSnapshot, live: np.ndarray):
        self.state = state
        self.live = live

    @property
    def num_passages(self) -> int:
        return len(self.live)

    def embed(self, pids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        vectors, doclens = self.state.passage_vectors(self.live[np.asarray(pids, dtype=np.int64)])
        return vectors, doclens.numpy()


def write_rebuild(w: IndexWriter, *, settings: Any = None, show_progress: bool | None = None) -> IndexSnapshot:
    """Re-cluster ``base``'s live passages from their stored vectors (tombstones dropped) and commit."""
    state = w.base
    assert state is not None
    live = np.flatnonzero(~state.docs.deleted_mask())
    if len(live) == 0:
        raise CollectionError("every passage of this index is deleted: nothing to rebuild from; "
                              "add documents first, or build a new index")
    rows = state.docs.raw_rows(live.tolist())
    stored = state.manifest.get("settings") or {}
    base = IndexSettings.from_dict({k: v for k, v in stored.items() if k in IndexSettings.field_names()})
    build_settings = resolve_settings(settings if settings is not None else base)
    texts = [r[1] for r in rows]
    extra: dict[str, Any] = {"source": state.manifest.get("source") or {"kind": "rebuild"},
                             "next_default_id": next_default_id(state),
                             "rebuilt": {"from_generation": state.manifest.get("generation"),
                                         "dropped_passages": int(state.num_passages - len(live))}}
    manifest, _ = write_index_files(w.files, _StoredSource(state, live), settings=build_settings,
                                    texts=TextCollection(texts), doc_ids=[r[0] for r in rows],
                                    metadata=[r[2] for r in rows], model_info=state.manifest.get("model"),
                                    extra_manifest=extra, show_progress=show_progress,
                                    parent_ids=[r[3] for r in rows], spans=[r[4] for r in rows])
    built: dict[str, Any] = {}
    if state.first_stages:
        entries = {}
        for name, entry in state.first_stages.items():
            built[name] = rebuild_stored(entry, texts, show_progress=show_progress,
                                         trust_remote_code=state.trust_remote_code)
            built[name].save(w.files.path(entry["path"]))
            entries[name] = dict(entry, passages=len(texts))
        manifest["first_stages"] = entries
    return w.commit(manifest, retrievers=built)


# --------------------------------------------------------------------------- add, delete, update


def write_add(w: IndexWriter, docs: NewDocuments) -> tuple[list[str], IndexSnapshot | None]:
    """Append ``docs`` and commit: ``(their document ids, the new snapshot)`` (no commit when empty)."""
    if docs.num_documents == 0:
        return [], None
    state = w.base
    ids = docs.assign_ids(next_default_id(state))
    taken = state.docs.live_pids_by_id(list(ids) + docs.passage_ids)
    if taken:
        found = sorted(taken)
        raise CollectionError(f"{len(found)} document id(s) are already in the index, e.g. {found[:5]}; "
                              "use index.update(...) to replace documents (nothing was written)")
    return ids, _write_changes(w, new=docs, tombstones=[], op="add")


def write_delete(w: IndexWriter, doc_ids: Any) -> tuple[int, IndexSnapshot | None]:
    """Tombstone every live passage of ``doc_ids`` (passage ids or parents of split passages) and commit."""
    ids = check_id_list(doc_ids)
    if not ids:
        return 0, None
    pids = live_pids(w.base, ids, "deleted")
    return len(pids), _write_changes(w, new=None, tombstones=pids, op="delete")


def write_update(w: IndexWriter, ids: list[str], docs: NewDocuments) -> IndexSnapshot | None:
    """Replace documents ``ids`` by ``docs`` (one each, in order) in one generation."""
    if not ids:
        return None
    state = w.base
    old = live_pids(state, ids, "updated")
    if docs.keep_metadata:
        docs.metadata = old_documents(state, ids)[0]
    docs.ids = list(ids)
    docs.assign_ids(0)
    taken = state.docs.live_pids_by_id(docs.passage_ids)
    clash = sorted(k for k, v in taken.items() if not set(v) <= set(old))
    if clash:
        raise CollectionError(f"{len(clash)} new passage id(s) are already in the index, e.g. {clash[:5]} "
                              "(nothing was written)")
    return _write_changes(w, new=docs, tombstones=old, op="update")


def _write_changes(w: IndexWriter, *, new: NewDocuments | None, tombstones: Sequence[int], op: str) -> IndexSnapshot:
    files, state = w.files, w.base
    assert files is not None and state is not None
    n_old = state.num_passages
    w.link(_CODEC_FILES)
    if new is None or new.num_passages == 0:
        w.link(_PASSAGE_FILES)
        n_new_vectors = 0
    else:
        n_new_vectors = _append_passages(files, state, new)
    fault_point("update_after_arrays")

    docs = DocStore.copy_for_update(state.generation / DOCSTORE, files.path(DOCSTORE))
    try:
        if tombstones:
            docs.tombstone(tombstones)
        if new is not None and new.num_passages:
            pids = range(n_old, n_old + new.num_passages)
            docs.add(pids, new.passage_ids, new.texts(), new.passage_metadata(), new.parent_ids, new.spans())
        live = docs.count_live()
        docs.finish()
    finally:
        docs.close()
    fault_point("update_after_docs")

    stages, retrievers = _carry_first_stages(w, new)
    manifest = w.carried_manifest()
    manifest["counts"] = {"passages": n_old + (new.num_passages if new is not None else 0),
                          "live_passages": live,
                          "embeddings": state.num_embeddings + n_new_vectors}
    manifest["trained_passages"] = trained_passages(state.manifest)
    if new is not None and new.ids is None and new.num_documents:  # default ids were given out
        manifest["next_default_id"] = next_default_id(state) + new.num_documents
    manifest["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest["last_write"] = {"op": op, "added_passages": new.num_passages if new is not None else 0,
                              "deleted_passages": len(tombstones)}
    if stages is not None:
        manifest["first_stages"] = stages
    return w.commit(manifest, retrievers=retrievers)


def _carry_first_stages(w: IndexWriter, new: NewDocuments | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Carry ``base``'s stored first stages into the next generation, extended by ``new``:
    ``(their manifest entries, the retrievers loaded or extended here)``."""
    state = w.base
    stages = state.first_stages
    if not stages:
        return None, {}
    out: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    loaded = state.loaded_first_stages()
    existing: list[str] | None = None
    for name, entry in stages.items():
        folder = entry["path"]
        if new is None or new.num_passages == 0:
            w.files.link_tree(folder, state.generation, state.manifest["files"])
            out[name] = dict(entry)
            if name in loaded:
                kept[name] = loaded[name]
            continue
        options = reusable_encoder(loaded[name]) if name in loaded else {}
        stage = load_stored(state.generation, entry, trust_remote_code=state.trust_remote_code, **options)
        if getattr(stage, "rebuilds_on_add", False):
            if existing is None:
                existing = state.docs.all_texts()
            stage.add(new.texts(), existing_texts=existing)
        else:
            stage.add(new.texts())
        stage.save(w.files.path(folder))
        out[name] = dict(entry, passages=len(stage))
        kept[name] = stage
    return out, kept


# --------------------------------------------------------------------------- stored first stages


def write_first_stages(w: IndexWriter, add: Mapping[str, tuple[str, str | None, dict[str, Any]]] | None = None,
                       drop: Sequence[str] = (), *, overwrite: bool = False,
                       show_progress: bool | None = None) -> tuple[dict[str, Any], IndexSnapshot]:
    """Add (name -> ``(kind, model, settings)``), replace or remove stored first stages and commit:
    ``(the retrievers built, the new snapshot)``. They are built over ``base``'s passage texts."""
    state = w.base
    add = dict(add or {})
    stages = state.first_stages
    for name in drop:
        if name not in stages:
            raise KeyError(f"this index has no first stage named {name!r}; it has {sorted(stages) or 'none'}")
    for name in add:
        if name in stages and not overwrite:
            raise ValueError(f"this index already has a first stage named {name!r}; "
                             "pass overwrite=True to replace it, or choose another name=")
    replaced = set(add) | set(drop)
    for rel, entry in state.manifest["files"].items():
        if not any(rel.startswith(f"{FOLDER}/{n}/") for n in replaced):
            w.files.link(rel, state.generation, entry)
    texts = state.docs.all_texts() if add else []
    built: dict[str, Any] = {}
    entries = {k: v for k, v in stages.items() if k not in replaced}
    for name, (kind, model, options) in add.items():
        built[name], entries[name] = build_stored(kind, name, texts, model=model, show_progress=show_progress,
                                                  **options)
        built[name].save(w.files.path(entries[name]["path"]))
    manifest = w.carried_manifest()
    manifest["first_stages"] = entries
    kept = {k: v for k, v in state.loaded_first_stages().items() if k not in replaced}
    return built, w.commit(manifest, retrievers={**kept, **built})


# --------------------------------------------------------------------------- helpers


def next_default_id(state: IndexSnapshot) -> int:
    """The first number free for default ids: past every pid, every number id ever used, and the manifest's mark."""
    return max(state.num_passages, int(state.manifest.get("next_default_id", 0)), state.docs.max_numeric_id() + 1)


def old_documents(state: IndexSnapshot, ids: list[str]) -> tuple[list[str | None], list[bool]]:
    """Metadata (JSON text of the first passage) and whether each live document was split."""
    live = state.docs.live_pids_by_id(ids)
    firsts = [live[i][0] for i in ids]
    rows = state.docs.raw_rows(firsts)
    return [r[2] for r in rows], [r[3] is not None and r[3] == i for r, i in zip(rows, ids)]


def live_pids(state: IndexSnapshot, ids: list[str], verb: str) -> list[int]:
    """Every live pid of ``ids``; :class:`UnknownDocumentError` naming the missing ones."""
    live = state.docs.live_pids_by_id(ids)
    lost = [i for i in ids if i not in live]
    if lost:
        raise UnknownDocumentError(f"{len(lost)} document id(s) not in the index (or already deleted), "
                                   f"e.g. {lost[:5]}; nothing was {verb}")
    return sorted({p for i in ids for p in live[i]})


def warn_if_drifted(manifest: dict[str, Any]) -> None:
    """:class:`StaleIndexWarning` once the live collection outgrew what the centroids were trained on."""
    trained = trained_passages(manifest)
    live = int(manifest["counts"].get("live_passages", manifest["counts"]["passages"]))
    if trained and live > DRIFT_FACTOR * trained:
        warn_at_caller(
            f"the index now holds {live} live passages, more than {DRIFT_FACTOR:g}x the {trained} its centroids "
            "were trained on; search quality and speed degrade as it drifts: call index.rebuild() to re-cluster",
            StaleIndexWarning)


def trained_passages(manifest: dict[str, Any]) -> int:
    """How many passages the index's centroids were trained on (recorded at build, else the first count seen)."""
    value = manifest.get("trained_passages")
    if value is None:
        value = (manifest.get("build") or {}).get("num_passages") or manifest["counts"]["passages"]
    return int(value)


def _append_passages(files: GenerationWriter, state: IndexSnapshot, new: NewDocuments) -> int:
    """Compress ``new`` with the index's codec and write the appended arrays; returns the new vector count."""
    settings = state.manifest.get("settings") or {}
    vectors = new.vectors.float()
    if settings.get("round_to_fp16", True):
        vectors = vectors.half().float()
    codes, residuals = state.codec.compress(vectors)
    norms = state.codec.norms(codes, residuals)
    arrays = state.arrays
    _write_appended(files.path("codes.npy"), arrays["codes"], codes.numpy().astype(np.int32, copy=False))
    _write_appended(files.path("residuals.npy"), arrays["residuals"], residuals.numpy())
    _write_appended(files.path("norms.npy"), arrays["norms"], norms.numpy().astype(np.float32, copy=False))
    _write_appended(files.path("doclens.npy"), arrays["doclens"], new.doclens.astype(np.int64))
    ivf, lengths = merge_ivf(arrays["ivf"], arrays["ivf_lengths"], codes.numpy(), new.doclens, state.num_passages)
    files.save_array("ivf.npy", ivf)
    files.save_array("ivf_lengths.npy", lengths)
    return int(codes.shape[0])


def _write_appended(path: Path, old: np.ndarray, new: np.ndarray) -> None:
    """``old`` followed by ``new`` as one ``.npy`` file (copied block by block)."""
    dtype, tail = ARRAYS[path.name][0], old.shape[1:]
    if new.shape[1:] != tail:
        raise ValueError(f"{path.name}: appending rows of shape {new.shape[1:]} to rows of shape {tail}")
    with NpyWriter(path, dtype, (old.shape[0] + new.shape[0], *tail)) as out:  # no memory map: see NpyWriter
        for start in range(0, old.shape[0], _COPY_ROWS):
            out.write(old[start : start + _COPY_ROWS])
        out.write(new)


def merge_ivf(ivf: np.ndarray, lengths: np.ndarray, codes: np.ndarray, doclens: np.ndarray,
              first_pid: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the passages ``first_pid..`` (codes per vector, doclens per passage) to the IVF lists.

    The new pids are larger than every old one, so each list stays sorted and unique
    when they go at its end.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    new_codes, new_pids = chunk_pairs(codes, doclens, first_pid)
    if new_codes.size and (new_codes.min() < 0 or new_codes.max() >= len(lengths)):
        raise ValueError(f"codes must be in [0, {len(lengths)})")
    ends = np.cumsum(lengths)
    merged = np.insert(np.asarray(ivf, dtype=np.int32), ends[new_codes.astype(np.int64)] if new_codes.size else [],
                       new_pids.astype(np.int32))
    return merged.astype(np.int32, copy=False), lengths + np.bincount(new_codes, minlength=len(lengths)).astype(np.int64)


__all__ = ["IndexWriter", "write_build", "write_rebuild", "write_add", "write_delete", "write_update",
           "write_first_stages", "merge_ivf", "trained_passages", "warn_if_drifted", "live_pids", "old_documents",
           "next_default_id", "DRIFT_FACTOR"]
