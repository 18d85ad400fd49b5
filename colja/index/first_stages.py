"""First-stage retrievers stored inside an index: ``index.add_first_stage(...)``.

A first stage (BM25, dense, static; :mod:`colja.firststage`) lives in the
generation folder under ``firststage/<name>/`` and is listed in the manifest::

    "first_stages": {"bm25": {"kind": "bm25", "path": "firststage/bm25", "passages": 307}}

Adding one writes a new generation (every other file hard-linked), so it is as
crash-safe as a build. ``index.search(q, first_stage=name)`` then reranks its
candidates with exact MaxSim (see :mod:`colja.search.first_stage`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from colja.index.store import GenerationWriter

logger = logging.getLogger(__name__)

FOLDER = "firststage"


class FirstStagesMixin:
    """Adds ``add_first_stage``, ``remove_first_stage``, ``first_stages`` and ``first_stage`` to ``Index``."""

    _first_stage_cache: dict[tuple[str, str], Any]
    _first_stage_lock = threading.Lock()

    @property
    def first_stages(self) -> dict[str, dict[str, Any]]:
        """The stored first stages: name -> ``{"kind", "path", "passages", "settings"}``."""
        return dict(self.manifest.get("first_stages") or {})

    def add_first_stage(self, kind: str, model: str | None = None, *, name: str | None = None,
                        overwrite: bool = False, show_progress: bool | None = None, **settings: Any) -> Any:
        """Build a first stage over every passage and store it in the index; returns it.

        ``kind``: ``"bm25"`` (``colja[bm25]``), ``"dense"`` or ``"static"``
        (``colja[dense]``). ``model``: for dense/static, a sentence-transformers
        hub id or folder (default: ``pkshatech/GLuCoSE-base-ja-v2`` /
        ``hotchpotch/static-embedding-japanese``). ``name`` (default: ``kind``)
        is what ``search(..., first_stage=name)`` selects. ``settings`` go to
        the retriever's ``build`` (e.g. ``k1=`` for BM25, ``truncate_dim=`` for
        static). An existing first stage of that name is only replaced with
        ``overwrite=True``.
        """
        from colja.firststage import first_stage_class

        cls = first_stage_class(kind)
        name = kind if name is None else name
        _check_name(name)
        if name in self.first_stages and not overwrite:
            raise ValueError(f"this index already has a first stage named {name!r}; "
                             "pass overwrite=True to replace it, or choose another name=")
        if kind == "bm25":
            if model is not None:
                raise ValueError("a bm25 first stage takes no model (it indexes MeCab words)")
        else:
            settings = dict(settings, model_name_or_path=model)
        texts = self.docs.all_texts()
        retriever = cls.build(texts, show_progress=show_progress, **settings)
        info = {"kind": kind, "path": f"{FOLDER}/{name}", "passages": len(texts),
                "settings": {k: v for k, v in settings.items() if _jsonable(v)}}
        self._write_first_stages({name: (retriever, info)}, drop=())
        return retriever

    def remove_first_stage(self, name: str) -> None:
        """Delete a stored first stage (a new generation without its folder)."""
        if name not in self.first_stages:
            raise KeyError(f"this index has no first stage named {name!r}; it has {sorted(self.first_stages) or 'none'}")
        self._write_first_stages({}, drop=(name,))

    def first_stage(self, name: str) -> Any:
        """The stored first stage ``name``, loaded on first use (memory-mapped when the index is)."""
        from colja.firststage import load_first_stage

        stages = self.first_stages
        if name not in stages:
            raise ValueError(
                f"this index has no first stage named {name!r} (stored: {sorted(stages) or 'none'}); "
                f"add one with index.add_first_stage({name!r}) or search with first_stage='plaid'"
            )
        key = (str(self.generation), name)
        cache = self.__dict__.setdefault("_first_stage_cache", {})
        if key not in cache:
            with self._first_stage_lock:
                if key not in cache:
                    cache[key] = load_first_stage(self.generation / stages[name]["path"], mmap=self.mmap)
        return cache[key]

    # ------------------------------------------------------------------ internals
    def _write_first_stages(self, new: dict[str, tuple[Any, dict[str, Any]]], drop: tuple[str, ...]) -> None:
        if Path(self.path).resolve() == Path(self.generation).resolve():
            raise ValueError(f"{self.path} was opened as a generation folder; open the index folder "
                             f"({Path(self.path).parent}) to change it")
        replaced = set(new) | set(drop)
        stages = {k: v for k, v in self.first_stages.items() if k not in replaced}
        with GenerationWriter(self.path) as writer:
            files = self.manifest["files"]
            for rel, entry in files.items():
                if not any(rel.startswith(f"{FOLDER}/{n}/") for n in replaced):
                    writer.link(rel, self.generation, entry)
            for name, (retriever, info) in new.items():
                retriever.save(writer.path(info["path"]))
                stages[name] = info
            manifest = {k: v for k, v in self.manifest.items() if k not in ("files", "generation")}
            manifest["first_stages"] = stages
            writer.commit(manifest)
        self._reload()
        for name, (retriever, _) in new.items():  # keep the built retriever (and its loaded model)
            self.__dict__.setdefault("_first_stage_cache", {})[(str(self.generation), name)] = retriever


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or name in ("plaid", "hybrid") or not all(
            c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValueError(f"first stage name must be a non-empty name of letters, digits, '-', '_' or '.' "
                         f"and not 'plaid' or 'hybrid'; got {name!r}")


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
