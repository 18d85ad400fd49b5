"""Static first stage: non-contextual embeddings (a mean of per-token vectors), fast on CPU.

Two families load through ``sentence_transformers.SentenceTransformer``:

* ``hotchpotch/static-embedding-japanese``: sentence-transformers'
  ``StaticEmbedding`` (an ``EmbeddingBag`` mean over token ids; the repo
  ships its own ``0_StaticEmbedding/tokenizer.json`` and weights). No custom
  code runs.
* ``RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja`` (SSE): an
  ``EmbeddingBag`` mean followed by Separable Dynamic Tanh, trained with a
  Matryoshka loss so the first 256 / 128 / 64 / 32 of its 512 dimensions are
  usable on their own (``truncate_dim``). Its module class lives in the
  model repository, so loading it runs that code: colja refuses unless you
  pass ``trust_remote_code=True``.

Everything else (prefixes, the faiss store, save/load) is shared with
:class:`~colja.firststage.dense.DenseRetriever`; the folder holds
``colja_static.json`` and ``vectors.faiss``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from colja.firststage.dense import DenseRetriever

logger = logging.getLogger(__name__)

# Hub ids whose modules.json names a class from the repository itself (checked before any download).
REMOTE_CODE_MODELS: dict[str, str] = {
    "RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja":
        "SSE: EmbeddingBag mean + Separable Dynamic Tanh, defined in the repository",
    "RikkaBotan/quantized-stable-static-embedding-fast-retrieval-mrl-ja":
        "quantized SSE, defined in the repository",
}

# Matryoshka dimensions a model was trained for (its full dimension first).
MATRYOSHKA_DIMS: dict[str, tuple[int, ...]] = {
    "RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja": (512, 256, 128, 64, 32),
    "RikkaBotan/quantized-stable-static-embedding-fast-retrieval-mrl-ja": (512, 256, 128, 64, 32),
}


class StaticRetriever(DenseRetriever):
    """Cosine search over static (token-average) sentence embeddings; CPU by default.

    >>> static = StaticRetriever.build(["東京は日本の首都です。", "大阪は食の都です。"])
    >>> static.search("日本の首都は？", k=1).pids
    array([0])

    >>> sse = StaticRetriever("RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja",
    ...                       trust_remote_code=True, truncate_dim=128)

    Takes the settings of :class:`~colja.firststage.dense.DenseRetriever`;
    ``truncate_dim`` keeps the first dimensions and renormalises (for the
    Matryoshka models in :data:`MATRYOSHKA_DIMS`, pick one they were trained
    for). A query made only of tokens the model does not know gets an
    all-zero vector and no hits.
    """

    name: ClassVar[str] = "static"
    FORMAT: ClassVar[str] = "colja-static"
    MANIFEST: ClassVar[str] = "colja_static.json"
    DEFAULT_MODEL: ClassVar[str] = "hotchpotch/static-embedding-japanese"
    DEFAULT_BATCH_SIZE: ClassVar[int] = 1024  # a batch costs a tokenizer call and one EmbeddingBag lookup
    DEFAULT_DEVICE: ClassVar[str | None] = "cpu"  # moving ids to a GPU costs more than the lookup itself
    REMOTE_CODE_MODELS: ClassVar[dict[str, str]] = REMOTE_CODE_MODELS

    def __init__(self, model_name_or_path: Any = None, **settings: Any) -> None:
        super().__init__(model_name_or_path, **settings)
        dims = MATRYOSHKA_DIMS.get(self.model_name_or_path)
        if self.truncate_dim is not None and dims is not None and self.truncate_dim not in dims:
            logger.warning("%s was trained for Matryoshka dimensions %s; truncate_dim=%d is not one of them",
                           self.model_name_or_path, "/".join(map(str, dims)), self.truncate_dim)


__all__ = ["MATRYOSHKA_DIMS", "REMOTE_CODE_MODELS", "StaticRetriever"]
