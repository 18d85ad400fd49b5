"""The folder of a sharded index: ``sharded.json`` plus one ordinary index per shard.

::

    my-index/
      sharded.json        {"format": "colja-sharded", "version": 1, "num_shards": 3,
                           "shards": ["shard-000", "shard-001", "shard-002"], "routing": "blake2b-64 mod N", ...}
      shard-000/          an ordinary colja index (Index.load reads it)
      shard-001/
      shard-002/

``sharded.json`` is written last (atomically): a folder without it is not a
sharded index (an interrupted build), and is never loaded as one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from colja._atomic import write_json
from colja.errors import IndexFormatError, IndexNotFoundError

MANIFEST = "sharded.json"
FORMAT = "colja-sharded"
VERSION = 1
ROUTING = "blake2b-64 mod N"


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def is_sharded(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a sharded index (its ``sharded.json``)."""
    return (Path(path) / MANIFEST).is_file()


def write_manifest(path: Path, num_shards: int, **extra: Any) -> dict[str, Any]:
    manifest = {"format": FORMAT, "version": VERSION, "num_shards": num_shards,
                "shards": [shard_name(i) for i in range(num_shards)], "routing": ROUTING,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
    write_json(path / MANIFEST, manifest)
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The checked ``sharded.json`` of ``path``."""
    file = path / MANIFEST
    if not file.is_file():
        raise IndexNotFoundError(f"{path} is not a sharded index (no {MANIFEST}); build one with "
                                 "colja.distributed.build(..., shards=N) or ShardedIndex.build(...)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{file}: format must be {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise IndexFormatError(f"{file}: version {manifest.get('version')!r} is not supported (this colja reads {VERSION})")
    if manifest.get("routing") != ROUTING:
        raise IndexFormatError(f"{file}: routing {manifest.get('routing')!r} is not {ROUTING!r}")
    shards = manifest.get("shards")
    n = manifest.get("num_shards")
    if not isinstance(n, int) or n < 1 or shards != [shard_name(i) for i in range(n)]:
        raise IndexFormatError(f"{file}: num_shards and shards must agree (shard-000 .. shard-{(n or 1) - 1:03d})")
    for name in shards:
        if not (path / name).is_dir():
            raise IndexFormatError(f"{file}: shard folder {path / name} is missing")
    return manifest


__all__ = ["MANIFEST", "shard_name", "is_sharded", "write_manifest", "read_manifest"]
