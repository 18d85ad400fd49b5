"""First-stage retrievers stored inside an index generation: build, load, carry, rebuild.

A stored retriever (BM25, dense, static; :mod:`colja.firststage`) lives in the
generation folder under ``firststage/<name>/`` and is listed in the manifest::

    "first_stages": {"bm25": {"kind": "bm25", "path": "firststage/bm25", "passages": 307, "settings": {}}}

Every write (:mod:`colja.index.writes`) carries them into the next
generation: linked unchanged when no passage is added, extended with the new
passages otherwise, built again over the live passages by a rebuild. Their
candidates are reranked with exact MaxSim at search time
(:mod:`colja.search.candidates`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)

FOLDER = "firststage"
RESERVED_NAMES = ("plaid", "hybrid")


def check_name(name: Any) -> str:
    """A valid stored-retriever name (a folder name; not ``plaid`` or ``hybrid``)."""
    if not isinstance(name, str) or not name or name in RESERVED_NAMES or not all(
            c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValueError(f"first stage name must be a non-empty name of letters, digits, '-', '_' or '.' "
                         f"and not 'plaid' or 'hybrid'; got {name!r}")
    return name


def check_spec(kind: str, model: str | None, settings: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """``(retriever class, build settings)`` for ``kind``; raises before any work on a bad request."""
    from colja.firststage import first_stage_class, require_dependencies

    cls = first_stage_class(kind)
    require_dependencies(kind)
    if kind == "bm25":
        if model is not None:
            raise ValueError("a bm25 first stage takes no model (it indexes MeCab words)")
        return cls, dict(settings)
    return cls, dict(settings, model_name_or_path=model)


def build_stored(kind: str, name: str, texts: Sequence[str], *, model: str | None = None,
                 show_progress: bool | None = None, **settings: Any) -> tuple[Any, dict[str, Any]]:
    """Build a retriever over ``texts`` (passage ``i`` = pid ``i``): ``(retriever, manifest entry)``."""
    cls, settings = check_spec(kind, model, settings)
    retriever = cls.build(list(texts), show_progress=show_progress, **settings)
    entry = {"kind": kind, "path": f"{FOLDER}/{check_name(name)}", "passages": len(texts),
             "settings": {k: v for k, v in settings.items() if _jsonable(v)}}
    return retriever, entry


def load_stored(generation: Path, entry: dict[str, Any], *, mmap: bool = False, trust_remote_code: bool = False,
                **options: Any) -> Any:
    """Load the retriever of a manifest entry from ``generation``.

    ``trust_remote_code``: the caller's decision whether a dense/static model
    may run its own code; what the stored folder says is never used.
    """
    from colja.firststage import load_first_stage

    if entry.get("kind") != "bm25":
        options["trust_remote_code"] = bool(trust_remote_code)
    return load_first_stage(Path(generation) / entry["path"], mmap=mmap, **options)


def reusable_encoder(retriever: Any) -> dict[str, Any]:
    """``load_stored`` options that reuse a loaded retriever's encoder (loading one is slow)."""
    model = getattr(retriever, "_model", None)
    return {"model": model} if model is not None else {}


def rebuild_stored(entry: dict[str, Any], texts: Sequence[str], *, show_progress: bool | None = None,
                   trust_remote_code: bool = False) -> Any:
    """The retriever of ``entry`` built again over ``texts``, with its recorded settings
    (``trust_remote_code`` is the caller's, not the recorded one)."""
    from colja.firststage import first_stage_class

    settings = dict(entry.get("settings") or {})
    if entry.get("kind") != "bm25":
        settings["trust_remote_code"] = bool(trust_remote_code)
    return first_stage_class(entry["kind"]).build(list(texts), show_progress=show_progress, **settings)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


__all__ = ["FOLDER", "check_name", "check_spec", "build_stored", "load_stored", "rebuild_stored", "reusable_encoder"]
