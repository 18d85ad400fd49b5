"""Encoders: the ColBERT model, its tokenization, and the :class:`Encoder` contract.

Submodules load on first use: ``from colja.model.encoder import DEFAULT_MODEL`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "ColBERT": "colja.model.colbert",
    "ColBERTSettings": "colja.model.settings",
    "DEFAULT_MODEL": "colja.model.encoder",
    "Encoder": "colja.model.encoder",
    "describe_model": "colja.model.encoder",
    "is_encoder": "colja.model.encoder",
    "resolve_model": "colja.model.encoder",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

if TYPE_CHECKING:  # pragma: no cover
    from colja.model.colbert import ColBERT
    from colja.model.encoder import DEFAULT_MODEL, Encoder, describe_model, is_encoder, resolve_model
    from colja.model.settings import ColBERTSettings
