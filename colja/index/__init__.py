"""Compressed ColBERTv2 indexes: k-means, residual codec, IVF, on-disk store, document store.

The public entry point is :class:`colja.Index` (``colja.index.index.Index``);
the modules below are importable for people who need the pieces:

| module | job |
| --- | --- |
| ``settings`` | ``IndexSettings`` (build-time settings, recorded in the manifest) |
| ``planning`` | the reference's sizing formulas (sample, centroids, held-out) |
| ``kmeans`` | faiss k-means centroids (flat or two-level), L2-normalised |
| ``assign`` | vector -> centroid assignment (exact argmax, or two-level) |
| ``codec`` | ``ResidualCodec``: fit, compress, decompress, norms |
| ``ivf`` | centroid -> sorted unique passage ids |
| ``collection`` | checks of texts / vectors / doc ids / metadata before a build |
| ``docstore`` | ``DocStore``: SQLite passage id -> doc id, text, metadata |
| ``store`` | folder layout, manifest, checksums, generations, atomic switch, validation |
| ``build`` | the build pipeline |
| ``stanford`` | importer for colbert-ai / RAGatouille index folders |
| ``snapshot`` | one generation's arrays, manifest and docs, swapped as one reference |
| ``update`` | ``add`` / ``delete`` / ``update`` / ``rebuild`` as new generations |
| ``filters`` | ``where=`` metadata filters compiled to SQL |
| ``index`` | ``Index``: build / from_embeddings / load / import_stanford / stats / writes |

Submodules are imported lazily, so ``import colja.index`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "Index": "colja.index.index",
    "IndexSettings": "colja.index.settings",
    "ResidualCodec": "colja.index.codec",
    "DocStore": "colja.index.docstore",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from colja.index.codec import ResidualCodec
    from colja.index.docstore import DocStore
    from colja.index.index import Index
    from colja.index.settings import IndexSettings
