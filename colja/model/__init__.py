"""Encoders: the ColBERT model and its tokenization."""

from colja.model.colbert import ColBERT
from colja.model.settings import ColBERTSettings

__all__ = ["ColBERT", "ColBERTSettings"]
