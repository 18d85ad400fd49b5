"""Forging index folders the way an attacker would: change a file, then recompute every checksum.

``forge(src, dst, change)`` copies the index at ``src`` to ``dst``, calls
``change(generation_folder)`` (which edits files in place and may return a new
manifest dict to write, or ``"keep"`` when it wrote ``manifest.json`` itself), then rewrites ``manifest.json`` with the sizes and
sha256 of the files as they now are — so the folder passes every checksum and
only a check of *values* can refuse it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable

import numpy as np

from colja.index.store import CURRENT


def generation(root: Path) -> Path:
    return root / (root / CURRENT).read_text().strip()


def manifest_of(root: Path) -> dict[str, Any]:
    return json.loads((generation(root) / "manifest.json").read_text(encoding="utf-8"))


def rehash(gen: Path, manifest: dict[str, Any] | None = None) -> None:
    """Write ``manifest`` (default: the current one) with each listed file's real size and sha256."""
    if manifest is None:
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    files = manifest.get("files")
    if isinstance(files, dict):
        for name, entry in files.items():
            file = gen / name
            if isinstance(entry, dict) and file.is_file():
                entry["bytes"] = file.stat().st_size
                entry["sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
    (gen / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def forge(src: Path, dst: Path, change: Callable[[Path], Any]) -> Path:
    """A copy of the index ``src`` at ``dst`` changed by ``change(generation)``, checksums recomputed."""
    shutil.copytree(src, dst)
    gen = generation(dst)
    manifest = change(gen)
    if manifest != "keep":  # "keep": the change wrote manifest.json itself
        rehash(gen, manifest if isinstance(manifest, dict) else None)
    return dst


# ------------------------------------------------------------------ small editing helpers


def edit_array(gen: Path, name: str, edit: Callable[[np.ndarray], np.ndarray | None]) -> None:
    """Load ``name``.npy, let ``edit`` change it (in place or by returning a new array), save it."""
    array = np.load(gen / f"{name}.npy", allow_pickle=False).copy()
    out = edit(array)
    np.save(gen / f"{name}.npy", array if out is None else out, allow_pickle=False)


def sql(gen: Path, *statements: str) -> None:
    """Run SQL on the generation's docs.sqlite (writable, as a forger would)."""
    conn = sqlite3.connect(str(gen / "docs.sqlite"), isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def edit_manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], dict[str, Any]]:
    """A ``change`` that edits the parsed manifest (checksums are recomputed after)."""

    def change(gen: Path) -> dict[str, Any]:
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        edit(manifest)
        return manifest

    return change
