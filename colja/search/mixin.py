"""Search methods of :class:`colja.Index` (filled in by the search layer)."""

from __future__ import annotations


class SearchMixin:
    """Adds ``search``, ``search_batch`` and ``search_embeddings`` to ``Index``."""
