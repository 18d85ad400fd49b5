"""Storage of compressed ColBERTv2 indexes: k-means, residual codec, IVF, files, documents, the one writer.

Users hold :class:`colja.Index` (:mod:`colja.searchable.index`), which
composes these modules; this package never imports the query layer
(:mod:`colja.search`) or the facades above it.

| module | job |
| --- | --- |
| ``settings`` | ``IndexSettings`` (build-time settings, recorded in the manifest) |
| ``planning`` | the reference's sizing formulas (sample, centroids, held-out) |
| ``kmeans`` | faiss k-means centroids (flat or two-level), L2-normalised |
| ``assign`` | vector -> centroid assignment (exact argmax, or two-level) |
| ``codec`` | ``ResidualCodec``: fit, compress, decompress, norms |
| ``ivf`` | centroid -> sorted unique passage ids |
| ``collection`` | checks of texts / vectors / doc ids / metadata before a build |
| ``documents`` | documents on their way in: checked, split, encoded (before any lock) |
| ``docstore`` | ``DocStore``: SQLite passage id -> doc id, text, metadata |
| ``filters`` | ``where=`` metadata filters compiled to SQL |
| ``store`` | folder layout, manifest, checksums, generations, atomic switch, validation |
| ``snapshot`` | ``IndexSnapshot``: one generation's arrays, manifest, documents, stored first stages |
| ``build`` | the build pipeline (sample -> k-means -> codec -> compress -> files) |
| ``retrievers`` | first-stage retrievers stored in a generation: build, load, carry, rebuild |
| ``writes`` | ``IndexWriter``, the one write path: build, add, delete, update, rebuild, first stages |
| ``stanford`` | importer for colbert-ai / RAGatouille index folders |

Submodules are imported lazily, so ``import colja.index`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "IndexSettings": "colja.index.settings",
    "IndexSnapshot": "colja.index.snapshot",
    "IndexWriter": "colja.index.writes",
    "ResidualCodec": "colja.index.codec",
    "DocStore": "colja.index.docstore",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from colja.index.codec import ResidualCodec
    from colja.index.docstore import DocStore
    from colja.index.settings import IndexSettings
    from colja.index.snapshot import IndexSnapshot
    from colja.index.writes import IndexWriter
