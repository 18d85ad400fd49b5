"""Reading JSONL files of objects, with errors that name the file and line."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator


def iter_jsonl_objects(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line (a UTF-8 BOM is ignored).

    Raises ``error("<path>:<line>: ...")`` for a line that is not JSON or not a JSON object.
    """
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
