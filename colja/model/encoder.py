"""What colja needs of an encoder, the default model, and turning a name into one.

Every layer that encodes (index builds and writes, search, reranking, first
stages' MaxSim rerank) takes an :class:`Encoder`: :class:`~colja.model.ColBERT`
is one, and so is any object with the same methods (a remote encoder, a test
double). :func:`resolve_model` is the one place a model name becomes an encoder.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: the model colja uses when none is named
DEFAULT_MODEL = "answerdotai/JaColBERTv2.5"


@runtime_checkable
class Encoder(Protocol):
    """Token-level ColBERT encoding.

    * ``dim``: width of the vectors.
    * ``encode_queries(texts, *, batch_size=32)`` -> float32 ``[n, Lq, dim]``
      (all-zero rows are padding and score nothing).
    * ``encode_documents(texts, *, batch_size=32, show_progress=None,
      return_flat=False)`` -> a list of float32 ``[n_i, dim]``, or with
      ``return_flat=True`` ``(vectors [sum n_i, dim], doclens int64 [n])``.

    Splitting documents into passages (``split=True``) also needs
    ``tokenizer`` (with ``tokenize``) and ``doc_maxlen``.
    """

    @property
    def dim(self) -> int: ...

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 32) -> "torch.Tensor": ...

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool | None = None,
                         return_flat: bool = False) -> Any: ...


def is_encoder(obj: Any) -> bool:
    """True when ``obj`` has the encoding methods colja calls (see :class:`Encoder`)."""
    return callable(getattr(obj, "encode_queries", None)) and callable(getattr(obj, "encode_documents", None))


def resolve_model(model: Encoder | str | os.PathLike | None, *, default: str | None = DEFAULT_MODEL) -> Encoder:
    """An encoder from ``model``: an :class:`Encoder` as it is, a hub id or folder loaded
    with :meth:`ColBERT.from_pretrained`, ``None`` -> ``default`` (an error when that is None)."""
    if model is None:
        if default is None:
            raise TypeError("a model is required: pass a ColBERT, a folder or a hub id")
        model = default
    if is_encoder(model):
        return model
    if isinstance(model, (str, os.PathLike)):
        from colja.model.colbert import ColBERT

        return ColBERT.from_pretrained(os.fspath(model))
    raise TypeError(f"model must be a ColBERT (or an object with encode_queries / encode_documents), "
                    f"a folder or a hub id; got {type(model).__name__}")


def describe_model(model: Encoder | str | os.PathLike | None) -> dict[str, Any] | None:
    """What an index manifest records about the model (None when there is none)."""
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        return {"name_or_path": os.fspath(model), "settings": None}
    settings = getattr(model, "settings", None)
    return {
        "name_or_path": getattr(model, "name_or_path", None),
        "settings": settings.to_dict() if hasattr(settings, "to_dict") else None,
        "dim": getattr(model, "dim", None),
        "precision": getattr(model, "precision", None),
    }


__all__ = ["DEFAULT_MODEL", "Encoder", "is_encoder", "resolve_model", "describe_model"]
