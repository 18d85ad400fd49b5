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
    AuthenticationError,
    BuildWorkerError,
    CheckpointError,
    CollectionError,
    ColjaError,
    DiskFullError,
    FilterError,
    IndexExistsError,
    IndexFormatError,
    IndexNotFoundError,
    KernelBuildError,
    KernelFallbackWarning,
    MiningError,
    MissingDependencyError,
    ModelLoadError,
    ServerError,
    ShardError,
    StaleIndexWarning,
    TrainingDataError,
    TruncationWarning,
    UnknownDocumentError,
    UntrustedCodeError,
)

from colja._version import __version__

_LAZY = {
    "ColBERT": "colja.model.colbert",
    "ColBERTSettings": "colja.model.settings",
    "DEFAULT_MODEL": "colja.model.encoder",
    "Encoder": "colja.model.encoder",
    "Index": "colja.searchable.index",
    "InMemoryIndex": "colja.searchable.memory",
    "Searchable": "colja.searchable.contract",
    "Hit": "colja.search.results",
    "SearchResults": "colja.search.results",
    "rerank": "colja.search.rerank",
    "rerank_batch": "colja.search.rerank",
    "Client": "colja.server.client",
    "ShardedIndex": "colja.distributed.sharded",
}

__all__ = [
    *_LAZY,
    "AuthenticationError",
    "BuildWorkerError",
    "CheckpointError",
    "CollectionError",
    "ColjaError",
    "DiskFullError",
    "FilterError",
    "IndexExistsError",
    "IndexFormatError",
    "IndexNotFoundError",
    "KernelBuildError",
    "KernelFallbackWarning",
    "MiningError",
    "MissingDependencyError",
    "ModelLoadError",
    "ServerError",
    "ShardError",
    "StaleIndexWarning",
    "TrainingDataError",
    "TruncationWarning",
    "UnknownDocumentError",
    "UntrustedCodeError",
    "__version__",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from colja.model.colbert import ColBERT
    from colja.model.encoder import DEFAULT_MODEL, Encoder
    from colja.model.settings import ColBERTSettings
    from colja.search.rerank import rerank, rerank_batch
    from colja.search.results import Hit, SearchResults
    from colja.searchable.contract import Searchable
    from colja.searchable.index import Index
    from colja.searchable.memory import InMemoryIndex
