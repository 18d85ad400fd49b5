"""What users hold: indexes that satisfy one searchable contract.

| module | job |
| --- | --- |
| ``contract`` | :class:`Searchable`: the methods, results and errors every index shares |
| ``index`` | :class:`Index`: a compressed ColBERTv2/PLAID index on disk (build, load, search, write) |
| ``memory`` | :class:`InMemoryIndex`: exact MaxSim over uncompressed vectors in memory, no files |

Each composes the layers below it: storage (:mod:`colja.index`: snapshots and
the one writer), the search engine (:mod:`colja.search`: pure functions over a
snapshot and an encoder) and the encoder (:mod:`colja.model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "Searchable": "colja.searchable.contract",
    "Index": "colja.searchable.index",
    "InMemoryIndex": "colja.searchable.memory",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

if TYPE_CHECKING:  # pragma: no cover
    from colja.searchable.contract import Searchable
    from colja.searchable.index import Index
    from colja.searchable.memory import InMemoryIndex
