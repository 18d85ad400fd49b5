"""Atomic writes of everything colja saves (folders and JSON files), with no pickle.

* :func:`atomic_folder`: a folder is written under a temporary sibling name and
  renamed into place; an existing folder is replaced with one rename each way
  (the old one is removed only after the new one is in place), and a failure
  leaves the previous folder untouched and no temporary behind.
* :func:`write_json`: a JSON file written to a temporary sibling, fsynced and
  renamed over the target.

Index generations (:mod:`colja.index.store`) add a lock, a checksummed
manifest and a ``CURRENT`` pointer on top of the same rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``folder``; on success it replaces ``folder``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private
        yield tmp
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing an existing ``dst`` with one rename each way."""
    if not dst.exists() or (dst.is_dir() and not any(dst.iterdir())):
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2, fsync: bool = True) -> None:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept) to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, ensure_ascii=False)
            f.write("\n")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["atomic_folder", "replace_folder", "write_json"]
