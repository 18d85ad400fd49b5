"""First-stage (candidate generation) retrievers.

Each follows :class:`~colja.firststage.fusion.FirstStage` (``name``, ``build``,
``add``, ``search``, ``search_batch``, ``save``, ``load``, ``len``):

* ``BM25Retriever`` needs the optional dependency bm25s (``pip install "colja[bm25]"``);
* ``DenseRetriever`` / ``StaticRetriever`` need sentence-transformers
  (``pip install "colja[dense]"``);

each imported only when an index is built or a text is encoded.
:func:`reciprocal_rank_fusion` merges their rankings for hybrid search.
"""

from __future__ import annotations

import os
from pathlib import Path

from colja.errors import IndexNotFoundError
from colja.firststage.bm25 import METHODS, BM25Retriever, passage_text
from colja.firststage.dense import KNOWN_PREFIXES, DenseRetriever, resolve_prefixes
from colja.firststage.fusion import RRF_K, FirstStage, Ranking, reciprocal_rank_fusion
from colja.firststage.static import MATRYOSHKA_DIMS, StaticRetriever
from colja.firststage.vectors import DEFAULT_HNSW_THRESHOLD, VectorIndex, VectorIndexSettings

# ``first_stage=`` names and their classes.
FIRST_STAGES: dict[str, type] = {"bm25": BM25Retriever, "dense": DenseRetriever, "static": StaticRetriever}
_MANIFESTS = {"colja_bm25.json": BM25Retriever, DenseRetriever.MANIFEST: DenseRetriever,
              StaticRetriever.MANIFEST: StaticRetriever}


def first_stage_class(name: str) -> type:
    """The class behind a ``first_stage=`` name (``"bm25"``, ``"dense"``, ``"static"``)."""
    try:
        return FIRST_STAGES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown first stage {name!r}; choose one of {', '.join(FIRST_STAGES)}") from None


def require_dependencies(name: str) -> None:
    """Raise :class:`~colja.errors.MissingDependencyError` (naming the extra) now, before any
    encoding, when first stage ``name`` cannot be built here."""
    first_stage_class(name)
    if name == "bm25":
        from colja.firststage.bm25 import _import_bm25s

        _import_bm25s()
    else:
        from colja.firststage.dense import _import_sentence_transformers

        _import_sentence_transformers()


def load_first_stage(folder: str | os.PathLike, mmap: bool = False, **kwargs) -> FirstStage:
    """Load whichever first stage was saved in ``folder`` (told apart by its manifest file).

    ``kwargs`` go to the class's ``load`` (e.g. ``model=`` / ``device=`` for dense and static).
    """
    folder = Path(folder)
    found = [cls for name, cls in _MANIFESTS.items() if (folder / name).is_file()]
    if not found:
        raise IndexNotFoundError(f"no first stage at {folder}: none of {', '.join(_MANIFESTS)} is there")
    return found[0].load(folder, mmap=mmap, **kwargs)


__all__ = [
    "require_dependencies",
    "DEFAULT_HNSW_THRESHOLD",
    "FIRST_STAGES",
    "KNOWN_PREFIXES",
    "MATRYOSHKA_DIMS",
    "METHODS",
    "RRF_K",
    "BM25Retriever",
    "DenseRetriever",
    "FirstStage",
    "Ranking",
    "StaticRetriever",
    "VectorIndex",
    "VectorIndexSettings",
    "first_stage_class",
    "load_first_stage",
    "passage_text",
    "reciprocal_rank_fusion",
    "resolve_prefixes",
]
