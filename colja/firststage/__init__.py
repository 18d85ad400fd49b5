"""First-stage (candidate generation) retrievers.

``BM25Retriever`` needs the optional dependency bm25s (``pip install "colja[bm25]"``),
imported only when an index is built or loaded.
"""

from __future__ import annotations

from colja.firststage.bm25 import METHODS, BM25Hits, BM25Retriever, passage_text

__all__ = ["METHODS", "BM25Hits", "BM25Retriever", "passage_text"]
