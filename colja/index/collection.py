"""What a build is given: passages (texts or vectors), doc ids and metadata, checked up front.

Everything here runs before anything is written, so bad input changes nothing
on disk. Texts come from a list, any iterable (materialised once), or a
``datasets.Dataset`` column (read in chunks, never materialised).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any, Iterable

import numpy as np
import torch

from colja.errors import CollectionError
from colja.index.docstore import dump_metadata


class TextCollection:
    """Passages as texts, addressed by passage id (0..N-1)."""

    def __init__(self, texts: Sequence[str]):
        self._texts = texts

    @property
    def num_passages(self) -> int:
        return len(self._texts)

    def texts(self, start: int, stop: int) -> list[str]:
        return list(self._texts[start:stop])

    def texts_at(self, pids: Iterable[int]) -> list[str]:
        return [self._texts[int(p)] for p in pids]


class DatasetCollection(TextCollection):
    """Passages from one string column of a ``datasets.Dataset``."""

    def __init__(self, dataset: Any, column: str):
        self._ds = dataset
        self._column = column

    @property
    def num_passages(self) -> int:
        return len(self._ds)

    def texts(self, start: int, stop: int) -> list[str]:
        return list(self._ds[start:stop][self._column])

    def texts_at(self, pids: Iterable[int]) -> list[str]:
        pids = [int(p) for p in pids]
        return list(self._ds.select(pids)[self._column]) if pids else []


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "column_names") and hasattr(obj, "select") and hasattr(obj, "features")


def as_text_collection(collection: Any, *, text_column: str = "text") -> TextCollection:
    """Check ``collection`` and wrap it; raises :class:`CollectionError` on bad input."""
    if collection is None:
        raise CollectionError("the collection is None; pass a list of strings or a datasets.Dataset")
    if isinstance(collection, (str, bytes)):
        raise CollectionError(
            "the collection is a single string; pass a list of passages, e.g. Index.build([text], ...)"
        )
    if _is_dataset(collection):
        if text_column not in collection.column_names:
            raise CollectionError(
                f"the dataset has no column {text_column!r} (columns: {collection.column_names}); pass text_column=..."
            )
        feature = collection.features[text_column]
        if getattr(feature, "dtype", None) not in ("string", "large_string"):
            raise CollectionError(f"dataset column {text_column!r} must hold strings, it holds {feature}")
        nulls = collection.data.column(text_column).null_count
        if nulls:
            raise CollectionError(f"dataset column {text_column!r} has {nulls} missing (None) texts")
        if len(collection) == 0:
            raise CollectionError("the collection is empty: nothing to index")
        return DatasetCollection(collection, text_column)
    if isinstance(collection, dict):
        raise CollectionError("the collection is a dict; pass a list of texts (and doc_ids=list(d.keys()) if they are ids)")
    try:
        texts = collection if isinstance(collection, list) else list(collection)
    except TypeError:
        raise CollectionError(f"the collection must be a list of strings, got {type(collection).__name__}") from None
    if not texts:
        raise CollectionError("the collection is empty: nothing to index")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise CollectionError(f"collection[{i}] must be a str, got {type(text).__name__} ({text!r:.60})")
    return TextCollection(texts)


def check_doc_ids(doc_ids: Any, num_passages: int) -> list[str] | None:
    """Unique string ids, one per passage (None: ids are generated as ``str(pid)``)."""
    if doc_ids is None:
        return None
    if isinstance(doc_ids, (str, bytes)):
        raise CollectionError("doc_ids is a single string; pass one id per passage")
    try:
        ids = list(doc_ids)
    except TypeError:
        raise CollectionError(f"doc_ids must be a list of strings, got {type(doc_ids).__name__}") from None
    if len(ids) != num_passages:
        raise CollectionError(f"got {len(ids)} doc ids for {num_passages} passages; pass exactly one id per passage")
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str):
            raise CollectionError(
                f"doc_ids[{i}] must be a str, got {type(doc_id).__name__} ({doc_id!r:.40}); convert ids with str()"
            )
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dups = []
        for doc_id in ids:
            if doc_id in seen and doc_id not in dups:
                dups.append(doc_id)
            seen.add(doc_id)
        raise CollectionError(f"doc_ids must be unique; {len(dups)} repeated, e.g. {dups[:5]}")
    return ids


def dump_all_metadata(metadata: Any, num_passages: int) -> list[str | None] | None:
    """One JSON text (or None) per passage, checked now so a build never fails half-way."""
    if metadata is None:
        return None
    if isinstance(metadata, dict):
        raise CollectionError("metadata is a single dict; pass a list with one dict (or None) per passage")
    try:
        items = list(metadata)
    except TypeError:
        raise CollectionError(f"metadata must be a list of dicts, got {type(metadata).__name__}") from None
    if len(items) != num_passages:
        raise CollectionError(f"got {len(items)} metadata entries for {num_passages} passages; pass one per passage")
    out: list[str | None] = []
    for i, item in enumerate(items):
        try:
            out.append(dump_metadata(item))
        except (TypeError, ValueError) as exc:
            raise CollectionError(f"metadata[{i}] is not a JSON-serialisable dict: {exc}") from None
    return out


def check_texts_for(texts: Any, num_passages: int) -> list[str] | None:
    """Optional passage texts given beside precomputed vectors."""
    if texts is None:
        return None
    collection = as_text_collection(texts)
    if collection.num_passages != num_passages:
        raise CollectionError(f"got {collection.num_passages} texts for {num_passages} passages")
    return collection.texts(0, collection.num_passages)


def _as_tensor(item: Any) -> torch.Tensor:
    """A tensor view of an array (read-only memory maps included: the build never writes to them)."""
    array = np.asarray(item)
    if not array.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array) if array.dtype != object else torch.as_tensor(item)


def as_embedding_list(doc_embeddings: Any, *, allow_empty: bool = False) -> list[torch.Tensor]:
    """Per-passage vectors ``[n_i, dim]`` (arrays or tensors) as CPU tensors, checked.

    ``allow_empty``: an empty list gives ``[]`` (adding nothing) instead of an error (building nothing).
    """
    if doc_embeddings is None:
        raise CollectionError("doc_embeddings is None; pass a list of [n_i, dim] arrays")
    if isinstance(doc_embeddings, (np.ndarray, torch.Tensor)):
        raise CollectionError(
            "doc_embeddings must be a list with one [n_i, dim] array per passage, not one array; "
            "split a flat array with its doclens first"
        )
    items = list(doc_embeddings)
    if not items and allow_empty:
        return []
    if not items:
        raise CollectionError("the collection is empty: nothing to index")
    out: list[torch.Tensor] = []
    dim = None
    for i, item in enumerate(items):
        if item is None or isinstance(item, (str, bytes, dict)):
            raise CollectionError(f"doc_embeddings[{i}] is {type(item).__name__} ({item!r:.40}); "
                                  "every item must be a [n_i, dim] float array or tensor")
        try:
            tensor = item if isinstance(item, torch.Tensor) else _as_tensor(item)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CollectionError(f"doc_embeddings[{i}] is not a numeric [n_i, dim] array "
                                  f"({type(item).__name__}: {exc})") from None
        if tensor.dim() != 2:
            raise CollectionError(f"doc_embeddings[{i}] must be 2-D [n_i, dim], got shape {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise CollectionError(f"doc_embeddings[{i}] must hold floats, got {tensor.dtype}")
        if dim is None:
            dim = tensor.shape[1]
        elif tensor.shape[1] != dim:
            raise CollectionError(f"doc_embeddings[{i}] has dim {tensor.shape[1]}, the first passage has {dim}")
        if not bool(torch.isfinite(tensor).all()):
            raise CollectionError(f"doc_embeddings[{i}] contains NaN or infinite values")
        out.append(tensor.detach().cpu())
    if sum(t.shape[0] for t in out) == 0:
        raise CollectionError("the passages have no vectors at all: nothing to index")
    return out



SPLIT_ID_RE = re.compile(r"#\d+$")


def check_split_doc_ids(doc_ids: Sequence[str] | None) -> None:
    """With ``split=True`` passage ``j`` of document ``d`` is ``f"{d}#{j}"``: that form is reserved,
    so a document id ending in ``#<number>`` is refused (the same rule in build, add and update)."""
    for i, doc_id in enumerate(doc_ids or ()):
        if SPLIT_ID_RE.search(doc_id):
            raise CollectionError(
                f"doc_ids[{i}] = {doc_id!r} ends in '#<number>', the form of split passage ids "
                "('<document id>#<j>'); with split=True choose ids without that ending (e.g. replace '#' with '_')")


def split_collection(splitter: Any, texts: TextCollection, doc_ids: list[str] | None,
                     metadata: list[str | None] | None) -> tuple[TextCollection, list[str], list[str | None] | None,
                                                                 list[str | None], list[tuple[int, int] | None]]:
    """Split every document into passages: ``(passage texts, passage ids, metadata, parent ids, spans)``.

    Passage ``j`` of document ``d`` is ``f"{d}#{j}"`` (``d`` defaults to the
    document's position as a string) and carries ``d``'s metadata.
    """
    check_split_doc_ids(doc_ids)
    ids: list[str] = []
    out_texts: list[str] = []
    parents: list[str | None] = []
    spans: list[tuple[int, int] | None] = []
    meta: list[str | None] | None = [] if metadata is not None else None
    n = texts.num_passages
    for start in range(0, n, 1024):
        for offset, text in enumerate(texts.texts(start, min(n, start + 1024))):
            i = start + offset
            parent = doc_ids[i] if doc_ids is not None else str(i)
            for j, passage in enumerate(splitter.split(text)):
                ids.append(f"{parent}#{j}")
                out_texts.append(passage.text)
                parents.append(parent)
                spans.append((passage.start, passage.end))
                if meta is not None:
                    meta.append(metadata[i])
    clash = sorted(set(ids) & set(parents))
    if clash:
        raise CollectionError(f"after splitting, {len(clash)} passage id(s) equal a document id, e.g. {clash[:5]}; "
                              "document ids must not look like '<another id>#<number>'")
    return TextCollection(out_texts), ids, meta, parents, spans
