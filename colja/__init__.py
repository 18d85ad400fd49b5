"""colja — Japanese late-interaction (ColBERT) retrieval.

>>> from colja import ColBERT
>>> model = ColBERT.from_pretrained("answerdotai/JaColBERTv2.5")
>>> Q = model.encode_queries(["日本の首都は？"])          # [1, 32, 128]
>>> D = model.encode_documents(["東京は日本の首都です。"])  # [[n, 128]]

Heavy modules (torch, transformers) load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

from colja.errors import (
    ColjaError,
    IndexExistsError,
    IndexFormatError,
    IndexNotFoundError,
    KernelFallbackWarning,
    MissingDependencyError,
    ModelLoadError,
    StaleIndexWarning,
    TruncationWarning,
)

__version__ = "0.1.0"

_LAZY = {
    "ColBERT": "colja.model.colbert",
    "ColBERTSettings": "colja.model.settings",
    "Index": "colja.index.index",
    "Hit": "colja.search.results",
    "SearchResults": "colja.search.results",
    "rerank": "colja.search.rerank",
    "rerank_batch": "colja.search.rerank",
    "RerankHit": "colja.search.rerank",
    "InMemoryIndex": "colja.search.in_memory",
}

__all__ = [
    "ColBERT",
    "ColBERTSettings",
    "Index",
    "Hit",
    "SearchResults",
    "rerank",
    "rerank_batch",
    "RerankHit",
    "InMemoryIndex",
    "ColjaError",
    "IndexExistsError",
    "IndexFormatError",
    "IndexNotFoundError",
    "KernelFallbackWarning",
    "MissingDependencyError",
    "ModelLoadError",
    "StaleIndexWarning",
    "TruncationWarning",
    "__version__",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from colja.index.index import Index
    from colja.model.colbert import ColBERT
    from colja.model.settings import ColBERTSettings
    from colja.search.results import Hit, SearchResults
