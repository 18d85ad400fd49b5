"""Documents on their way into an index: checked, split into passages and encoded, before any write.

:func:`prepare_documents` does everything that may fail or take long
(validation, splitting, encoding) with no lock held and nothing written;
:mod:`colja.index.writes` then assigns ids and commits under the writer's lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from colja.errors import CollectionError
from colja.index.collection import as_embedding_list, check_doc_ids, check_split_doc_ids, dump_all_metadata


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
        if self.split:
            check_split_doc_ids(ids)
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


def check_split_options(split: bool, max_tokens: int | None, overlap: int) -> None:
    if not split and (max_tokens is not None or overlap):
        raise ValueError("max_tokens= and overlap= apply when splitting documents: pass split=True")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative int, got {overlap!r}")


def prepare_documents(encoder: Any, dim: int, texts: Any, doc_ids: Any, metadata: Any, *, embeddings: Any = None,
                      split: bool = False, max_tokens: int | None = None, overlap: int = 0, batch_size: int = 32,
                      show_progress: bool | None = None, what: str = "add") -> NewDocuments:
    """Check, split and encode documents for an index of ``dim``-d vectors (nothing is written).

    ``encoder``: a callable returning the index's encoder (called only when
    texts must be encoded). Raises on bad input.
    """
    if embeddings is not None:
        vectors = as_embedding_list(embeddings, allow_empty=True)
        n = len(vectors)
        if split:
            raise CollectionError("split=True needs texts to split; it cannot split precomputed embeddings")
        if texts is None:
            text_list = [""] * n
        else:
            text_list = check_text_list(texts)
            if len(text_list) != n:
                raise CollectionError(f"got {len(text_list)} texts for {n} embeddings; pass one text per passage")
    else:
        if texts is None:
            raise CollectionError(f"{what} needs texts (or embeddings= for an index without a model)")
        text_list = check_text_list(texts)
        n = len(text_list)
    if doc_ids is not None and not isinstance(doc_ids, (str, bytes)):
        doc_ids = list(doc_ids)
        if len(doc_ids) != n:
            raise CollectionError(f"got {len(doc_ids)} doc ids for {n} {'embeddings' if embeddings is not None else 'texts'}; "
                                  "pass exactly one id per document")
    ids = check_doc_ids(doc_ids, n)
    meta = dump_all_metadata(metadata, n) or [None] * n
    if embeddings is not None:
        got = int(vectors[0].shape[1]) if n else dim
        if got != dim:
            raise CollectionError(f"the embeddings are {got}-d but the index holds {dim}-d vectors")
        pieces = [[(t, None)] for t in text_list]
        flat = torch.cat([v.float() for v in vectors]) if n else torch.empty((0, dim))
        doclens = np.array([v.shape[0] for v in vectors], dtype=np.int64)
        return NewDocuments(ids, meta, pieces, False, flat, doclens)
    if n == 0:
        return NewDocuments(ids, meta, [], bool(split), torch.empty((0, dim)), np.zeros(0, np.int64))
    model = encoder()
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
    if flat.shape[1] != dim:
        raise CollectionError(f"the model makes {flat.shape[1]}-d vectors but the index holds {dim}-d vectors")
    return NewDocuments(ids, meta, pieces, bool(split), flat, np.asarray(doclens, dtype=np.int64))


def check_text_list(texts: Any) -> list[str]:
    """A list of str (a single string is refused, with the fix)."""
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


__all__ = ["NewDocuments", "check_id_list", "check_split_options", "check_text_list", "prepare_documents"]
