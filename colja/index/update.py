"""Writes to an existing index: ``add``, ``delete``, ``update`` and ``rebuild``.

Each write is one new generation (:class:`~colja.index.store.GenerationWriter`),
switched atomically, so a crash leaves the index before or after the write:

* **add**: new passages are encoded (or given as vectors), compressed with the
  index's codec (its centroids and bucket cutoffs are kept) and appended: they
  get the next passage ids, their ``(centroid, pid)`` pairs are merged into the
  IVF lists, the document store (a copy of the previous one) gains their rows.
  Centroids and codec files are hard-linked from the previous generation.
* **delete**: the passages become tombstones in the document store (their
  pids keep their place and are never returned again); every array is linked.
* **update**: delete + add in one generation, under the same document ids.
* **rebuild**: decompress the live passages and run the build pipeline on
  them (new centroids, new codec, tombstones dropped: passage ids change,
  document ids do not). ``add`` warns (:class:`~colja.errors.StaleIndexWarning`)
  once the live collection has more than doubled since the centroids were trained.

Stored first stages (``manifest["first_stages"]``) follow: ``add``/``update``
extend each one (BM25 is rebuilt over every passage text), ``delete`` links
them unchanged (tombstones are filtered at search time), ``rebuild`` builds
them again over the live passages.

Input is checked before anything is written; ids are checked again against
the newest generation once the writer's lock is held (another process may
have written meanwhile), and a failed check removes the unfinished generation.
"""

from __future__ import annotations

import datetime as _dt
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from colja.errors import CollectionError, ModelLoadError, StaleIndexWarning, UnknownDocumentError
from colja.index.collection import as_embedding_list, check_doc_ids, dump_all_metadata
from colja.index.build import EmbeddingSource
from colja.index.docstore import DocStore
from colja.index.ivf import chunk_pairs
from colja.index.snapshot import IndexSnapshot
from colja.index.store import ARRAYS, DOCSTORE, GenerationWriter, fault_point

if TYPE_CHECKING:  # pragma: no cover
    from colja.index.index import Index

logger = logging.getLogger(__name__)

#: the live collection may grow to this multiple of what the centroids were trained on before ``add`` warns
DRIFT_FACTOR = 2.0
_COPY_ROWS = 1 << 20
FIRST_STAGE_FOLDER = "firststage"


# --------------------------------------------------------------------------- new passages


@dataclass
class NewDocuments:
    """Documents to add, checked, split and encoded; ids are assigned under the writer's lock.

    ``pieces[i]``: the passages of document ``i`` as ``(text, span or None)``;
    ``vectors`` / ``doclens``: every passage's vectors, documents in order.
    """

    ids: list[str] | None
    metadata: list[str | None]
    pieces: list[list[tuple[str, tuple[int, int] | None]]]
    split: bool
    vectors: torch.Tensor
    doclens: np.ndarray
    #: update only: take each document's metadata from the version it replaces
    keep_metadata: bool = False
    # filled by assign_ids
    passage_ids: list[str] = field(default_factory=list)
    parent_ids: list[str | None] = field(default_factory=list)

    @property
    def num_documents(self) -> int:
        return len(self.pieces)

    @property
    def num_passages(self) -> int:
        return int(len(self.doclens))

    def texts(self) -> list[str]:
        return [text for doc in self.pieces for text, _ in doc]

    def spans(self) -> list[tuple[int, int] | None]:
        return [span for doc in self.pieces for _, span in doc]

    def passage_metadata(self) -> list[str | None]:
        return [m for doc, m in zip(self.pieces, self.metadata) for _ in doc]

    def assign_ids(self, first_default: int) -> list[str]:
        """Document ids (default: consecutive numbers from ``first_default``, as strings) and passage ids."""
        ids = self.ids
        if ids is None:
            ids = [str(first_default + i) for i in range(len(self.pieces))]
        self.passage_ids, self.parent_ids = [], []
        for doc_id, doc in zip(ids, self.pieces):
            if self.split:
                self.passage_ids.extend(f"{doc_id}#{j}" for j in range(len(doc)))
                self.parent_ids.extend([doc_id] * len(doc))
            else:
                self.passage_ids.append(doc_id)
                self.parent_ids.append(None)
        return ids


def check_id_list(doc_ids: Any, what: str = "doc_ids") -> list[str]:
    """A list of unique string ids (a single string is refused)."""
    if doc_ids is None or isinstance(doc_ids, (str, bytes)):
        raise CollectionError(f"{what} must be a list of document ids (strings), got "
                              f"{'a single string; wrap it in a list' if doc_ids is not None else 'None'}")
    ids = list(doc_ids)
    return check_doc_ids(ids, len(ids)) or []


def prepare_documents(index: "Index", texts: Any, doc_ids: Any, metadata: Any, *, embeddings: Any = None,
                      split: bool = False, max_tokens: int | None = None, overlap: int = 0, batch_size: int = 32,
                      show_progress: bool | None = None, what: str = "add") -> NewDocuments:
    """Check, split and encode documents (nothing is written); raises on bad input."""
    if embeddings is not None:
        vectors = as_embedding_list(embeddings, allow_empty=True)
        n = len(vectors)
        if split:
            raise CollectionError("split=True needs texts to split; it cannot split precomputed embeddings")
        if texts is None:
            text_list = [""] * n
        else:
            text_list = _check_texts(texts)
            if len(text_list) != n:
                raise CollectionError(f"got {len(text_list)} texts for {n} embeddings; pass one text per passage")
    else:
        if texts is None:
            raise CollectionError(f"{what} needs texts (or embeddings= for an index without a model)")
        text_list = _check_texts(texts)
        n = len(text_list)
    if doc_ids is not None and not isinstance(doc_ids, (str, bytes)):
        doc_ids = list(doc_ids)
        if len(doc_ids) != n:
            raise CollectionError(f"got {len(doc_ids)} doc ids for {n} {'embeddings' if embeddings is not None else 'texts'}; "
                                  "pass exactly one id per document")
    ids = check_doc_ids(doc_ids, n)
    meta = dump_all_metadata(metadata, n) or [None] * n
    if embeddings is not None:
        dim = int(vectors[0].shape[1]) if n else index.dim
        if dim != index.dim:
            raise CollectionError(f"the embeddings are {dim}-d but the index holds {index.dim}-d vectors")
        pieces = [[(t, None)] for t in text_list]
        flat = torch.cat([v.float() for v in vectors]) if n else torch.empty((0, index.dim))
        doclens = np.array([v.shape[0] for v in vectors], dtype=np.int64)
        return NewDocuments(ids, meta, pieces, False, flat, doclens)
    if n == 0:
        return NewDocuments(ids, meta, [], bool(split), torch.empty((0, index.dim)), np.zeros(0, np.int64))
    model = _model_of(index)
    if split:
        from colja.text.splitter import PassageSplitter

        splitter = PassageSplitter.for_model(model, max_tokens=max_tokens, overlap=overlap)
        pieces = [[(p.text, (p.start, p.end)) for p in splitter.split(t)] for t in text_list]
    else:
        pieces = [[(t, None)] for t in text_list]
    flat_texts = [t for doc in pieces for t, _ in doc]
    flat, doclens = model.encode_documents(flat_texts, batch_size=batch_size, show_progress=show_progress,
                                           return_flat=True)
    flat = torch.as_tensor(flat).float()
    if flat.shape[1] != index.dim:
        raise CollectionError(f"the model makes {flat.shape[1]}-d vectors but the index holds {index.dim}-d vectors")
    return NewDocuments(ids, meta, pieces, bool(split), flat, np.asarray(doclens, dtype=np.int64))


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise CollectionError("texts is a single string; pass a list of texts, e.g. index.add([text])")
    try:
        out = list(texts)
    except TypeError:
        raise CollectionError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise CollectionError(f"texts[{i}] must be a str, got {type(t).__name__} ({t!r:.60})")
    return out


def _model_of(index: "Index") -> Any:
    try:
        return index.model
    except ModelLoadError as exc:
        raise ModelLoadError(f"{exc}; or pass precomputed vectors: index.add(texts, embeddings=[...])") from None


# --------------------------------------------------------------------------- the writes


def add_documents(index: "Index", docs: NewDocuments) -> list[str]:
    """Append ``docs`` in a new generation; returns their document ids."""
    if docs.num_documents == 0:
        return []
    with _Writer(index) as w:
        ids = docs.assign_ids(next_default_id(w.state))
        taken = w.state.docs.live_pids_by_id(list(ids) + docs.passage_ids)
        if taken:
            found = sorted(taken)
            raise CollectionError(f"{len(found)} document id(s) are already in the index, e.g. {found[:5]}; "
                                  "use index.update(...) to replace documents (nothing was written)")
        w.write(new=docs, tombstones=[], op="add")
    _warn_if_drifted(index)
    return ids


def delete_documents(index: "Index", doc_ids: Any) -> int:
    """Tombstone every live passage of ``doc_ids`` (passage ids or parents of split passages); returns their number."""
    ids = check_id_list(doc_ids)
    if not ids:
        return 0
    with _Writer(index) as w:
        pids = live_pids(w.state, ids, "deleted")
        w.write(new=None, tombstones=pids, op="delete")
    return len(pids)


def update_documents(index: "Index", ids: list[str], docs: NewDocuments) -> None:
    """Replace documents ``ids`` by ``docs`` (one each, in order): tombstone their passages and add
    the new ones under the same ids, in one generation."""
    if not ids:
        return
    with _Writer(index) as w:
        old = live_pids(w.state, ids, "updated")
        if docs.keep_metadata:
            docs.metadata = old_documents(w.state, ids)[0]
        docs.ids = list(ids)
        docs.assign_ids(0)
        taken = w.state.docs.live_pids_by_id(docs.passage_ids)
        clash = sorted(k for k, v in taken.items() if not set(v) <= set(old))
        if clash:
            raise CollectionError(f"{len(clash)} new passage id(s) are already in the index, e.g. {clash[:5]} "
                                  "(nothing was written)")
        w.write(new=docs, tombstones=old, op="update")
    _warn_if_drifted(index)


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
    live = state.docs.live_pids_by_id(ids)
    lost = [i for i in ids if i not in live]
    if lost:
        raise UnknownDocumentError(f"{len(lost)} document id(s) not in the index (or already deleted), "
                                   f"e.g. {lost[:5]}; nothing was {verb}")
    return sorted({p for i in ids for p in live[i]})


def _warn_if_drifted(index: "Index") -> None:
    manifest = index.manifest
    trained = trained_passages(manifest)
    live = int(manifest["counts"].get("live_passages", manifest["counts"]["passages"]))
    if trained and live > DRIFT_FACTOR * trained:
        warnings.warn(StaleIndexWarning(
            f"the index now holds {live} live passages, more than {DRIFT_FACTOR:g}x the {trained} its centroids "
            "were trained on; search quality and speed degrade as it drifts: call index.rebuild() to re-cluster"),
            stacklevel=4)


def trained_passages(manifest: dict[str, Any]) -> int:
    """How many passages the index's centroids were trained on (recorded at build, else the first count seen)."""
    value = manifest.get("trained_passages")
    if value is None:
        value = (manifest.get("build") or {}).get("num_passages") or manifest["counts"]["passages"]
    return int(value)


# --------------------------------------------------------------------------- one generation


class _Writer:
    """Hold the index's writer lock, bring ``state`` up to date, write one generation, adopt it."""

    def __init__(self, index: "Index"):
        if Path(index.path).resolve() == Path(index.generation).resolve():
            raise ValueError(f"{index.path} was opened as a generation folder; open the index folder "
                             f"({Path(index.path).parent}) to change it")
        self.index = index
        self.writer: GenerationWriter | None = None
        self.state = index._state

    def __enter__(self) -> "_Writer":
        self.writer = GenerationWriter(self.index.path)
        try:
            if self.writer.previous != self.state.generation.name:  # another writer committed meanwhile
                logger.info("index %s changed on disk (%s); writing on top of the newest generation",
                            self.index.path, self.writer.previous)
                self.state = type(self.index)._load_state(self.index.path, mmap=self.index.mmap)
                self.index._adopt(self.state)
        except BaseException:
            self.writer.abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.writer is not None
        self.writer.__exit__(exc_type, exc, tb)
        if exc_type is None and self.writer.committed:
            self.index._reload()

    def write(self, *, new: NewDocuments | None, tombstones: Sequence[int], op: str) -> None:
        writer, state = self.writer, self.state
        assert writer is not None
        old_dir, files = state.generation, state.manifest["files"]
        n_old = state.num_passages
        for name in ("centroids.npy", "bucket_cutoffs.npy", "bucket_weights.npy"):
            writer.link(name, old_dir, files.get(name))
        if new is None or new.num_passages == 0:
            for name in ("codes.npy", "residuals.npy", "norms.npy", "doclens.npy", "ivf.npy", "ivf_lengths.npy"):
                writer.link(name, old_dir, files.get(name))
            n_new_vectors = 0
        else:
            n_new_vectors = _append_passages(writer, state, new)
        fault_point("update_after_arrays")

        docs = DocStore.copy_for_update(old_dir / DOCSTORE, writer.path(DOCSTORE))
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

        stages = _update_first_stages(self.index, writer, state, new)
        manifest = {k: v for k, v in state.manifest.items() if k not in ("files", "generation")}
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
        fault_point("update_before_commit")
        writer.commit(manifest)


def _append_passages(writer: GenerationWriter, state: IndexSnapshot, new: NewDocuments) -> int:
    """Compress ``new`` with the index's codec and write the appended arrays; returns the new vector count."""
    settings = state.manifest.get("settings") or {}
    vectors = new.vectors.float()
    if settings.get("round_to_fp16", True):
        vectors = vectors.half().float()
    codes, residuals = state.codec.compress(vectors)
    norms = state.codec.norms(codes, residuals)
    arrays = state.arrays
    _write_appended(writer.path("codes.npy"), arrays["codes"], codes.numpy().astype(np.int32, copy=False))
    _write_appended(writer.path("residuals.npy"), arrays["residuals"], residuals.numpy())
    _write_appended(writer.path("norms.npy"), arrays["norms"], norms.numpy().astype(np.float32, copy=False))
    _write_appended(writer.path("doclens.npy"), arrays["doclens"], new.doclens.astype(np.int64))
    ivf, lengths = merge_ivf(arrays["ivf"], arrays["ivf_lengths"], codes.numpy(), new.doclens, state.num_passages)
    writer.save_array("ivf.npy", ivf)
    writer.save_array("ivf_lengths.npy", lengths)
    return int(codes.shape[0])


def _write_appended(path: Path, old: np.ndarray, new: np.ndarray) -> None:
    """``old`` followed by ``new`` as one ``.npy`` file (copied block by block)."""
    dtype, tail = ARRAYS[path.name][0], old.shape[1:]
    if new.shape[1:] != tail:
        raise ValueError(f"{path.name}: appending rows of shape {new.shape[1:]} to rows of shape {tail}")
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(old.shape[0] + new.shape[0], *tail))
    for start in range(0, old.shape[0], _COPY_ROWS):
        stop = min(old.shape[0], start + _COPY_ROWS)
        out[start:stop] = old[start:stop]
    out[old.shape[0] :] = new
    out.flush()
    del out


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


def _update_first_stages(index: "Index", writer: GenerationWriter, state: IndexSnapshot,
                         new: NewDocuments | None) -> dict[str, Any] | None:
    """Carry the stored first stages into the new generation (extended by ``new``); their manifest entries."""
    stages = state.manifest.get("first_stages")
    if not stages:
        return None
    from colja.firststage import load_first_stage

    out: dict[str, Any] = {}
    files = state.manifest["files"]
    existing: list[str] | None = None
    for name, entry in stages.items():
        folder = entry["path"]
        if new is None or new.num_passages == 0:
            writer.link_tree(folder, state.generation, files)
            out[name] = dict(entry)
            continue
        stage = load_first_stage(state.generation / folder, **_stage_model(index, name, entry))
        if getattr(stage, "rebuilds_on_add", False):
            if existing is None:
                existing = state.docs.all_texts()
            stage.add(new.texts(), existing_texts=existing)
        else:
            stage.add(new.texts())
        stage.save(writer.path(folder))
        out[name] = dict(entry, passages=len(stage))
    return out


def _stage_model(index: "Index", name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Reuse an already loaded encoder of a dense / static first stage (loading one is slow)."""
    if entry.get("kind") not in ("dense", "static"):
        return {}
    for (gen, cached_name), stage in (index.__dict__.get("_first_stage_cache") or {}).items():
        model = getattr(stage, "_model", None)
        if cached_name == name and model is not None:
            return {"model": model}
    return {}


# --------------------------------------------------------------------------- rebuild


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
        old = self.live[np.asarray(pids, dtype=np.int64)]
        offsets = self.state.doc_offsets.numpy()
        starts, ends = offsets[old], offsets[old + 1]
        doclens = (ends - starts).astype(np.int64)
        if doclens.sum() == 0:
            return torch.empty((0, self.state.dim)), doclens
        rows = torch.from_numpy(np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]))
        return self.state.codec.decompress(self.state.codes[rows], self.state.residuals[rows]), doclens


def rebuild_index(index: "Index", *, settings: Any = None, show_progress: bool | None = None) -> None:
    """Re-cluster the live passages from their stored vectors into a new generation (tombstones dropped)."""
    from colja.index.build import build_index
    from colja.index.collection import TextCollection
    from colja.index.settings import IndexSettings, resolve_settings

    with _Writer(index) as w:
        state = w.state
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
        stages = _rebuild_first_stages(w.writer, state, texts, show_progress)
        if stages is not None:
            extra["first_stages"] = stages
        build_index(index.path, _StoredSource(state, live), settings=build_settings, texts=TextCollection(texts),
                    doc_ids=[r[0] for r in rows], metadata=[r[2] for r in rows],
                    model_info=state.manifest.get("model"), extra_manifest=extra, show_progress=show_progress,
                    parent_ids=[r[3] for r in rows], spans=[r[4] for r in rows], writer=w.writer)


def _rebuild_first_stages(writer: GenerationWriter, state: IndexSnapshot, texts: list[str],
                          show_progress: bool | None) -> dict[str, Any] | None:
    """Build each stored first stage again over ``texts`` (the live passages, in their new pid order)."""
    stages = state.manifest.get("first_stages")
    if not stages:
        return None
    from colja.firststage import first_stage_class

    out = {}
    for name, entry in stages.items():
        cls = first_stage_class(entry["kind"])
        stage = cls.build(texts, show_progress=show_progress, **(entry.get("settings") or {}))
        stage.save(writer.path(entry["path"]))
        out[name] = dict(entry, passages=len(texts))
    return out


__all__ = ["NewDocuments", "prepare_documents", "add_documents", "delete_documents", "update_documents",
           "rebuild_index", "merge_ivf", "trained_passages", "DRIFT_FACTOR"]
