"""Document store: passage id -> (doc id, text, metadata), in one SQLite file.

Table ``docs``:

| column | type | meaning |
| --- | --- | --- |
| ``pid`` | INTEGER PRIMARY KEY | dense passage id (row of ``doclens``), never renumbered |
| ``doc_id`` | TEXT NOT NULL UNIQUE | the user's document id |
| ``text`` | TEXT NOT NULL | passage text ("" when unknown) |
| ``metadata`` | TEXT | JSON object, or NULL |
| ``deleted`` | INTEGER NOT NULL DEFAULT 0 | 1 = tombstone (its pid keeps its place) |

plus ``info(key, value)`` with ``schema_version``. A generation's store is
written once and then opened read-only (``immutable=1``: no locks, no journal).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE docs (
    pid INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def dump_metadata(metadata: Any) -> str | None:
    """JSON text of one metadata dict (None stays None); raises ``ValueError``/``TypeError``."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False, sort_keys=False)


def _load_metadata(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)


class DocStore:
    """Read (and, while building, write) the ``docs.sqlite`` of one index generation."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, writable: bool):
        self._conn = conn
        self.path = Path(path)
        self.writable = writable
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ open

    @classmethod
    def create(cls, path: str | Path) -> "DocStore":
        """A new, empty store at ``path`` (which must not exist)."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # the file is fsynced by the generation writer before it becomes visible
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("BEGIN")
        return cls(conn, path, writable=True)

    @classmethod
    def open(cls, path: str | Path) -> "DocStore":
        """Open a finished store read-only."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"document store {path} is missing")
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        store = cls(conn, path, writable=False)
        version = store._info("schema_version")
        if version is None or int(version) > SCHEMA_VERSION:
            conn.close()
            raise ValueError(f"{path.name}: document store schema version {version!r} is not supported (this colja reads {SCHEMA_VERSION})")
        return store

    def _info(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ write

    def add(self, pids: Sequence[int], doc_ids: Sequence[str], texts: Sequence[str], metadata: Sequence[str | None]) -> None:
        """Insert rows; ``metadata`` are JSON texts (see :func:`dump_metadata`) or None."""
        if not self.writable:
            raise PermissionError("this document store is read-only")
        rows = zip((int(p) for p in pids), doc_ids, texts, metadata)
        with self._lock:
            self._conn.executemany("INSERT INTO docs (pid, doc_id, text, metadata) VALUES (?, ?, ?, ?)", rows)

    def finish(self) -> None:
        """Commit and close a store being written."""
        if self.writable:
            with self._lock:
                self._conn.execute("COMMIT")
                self._conn.close()
            self.writable = False

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass

    # ------------------------------------------------------------------ read

    def __len__(self) -> int:
        """Live (not deleted) passages."""
        return self.count_live()

    def count_live(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM docs WHERE deleted = 0").fetchone()[0])

    def count(self) -> int:
        """All rows, deleted ones included (= number of passage ids)."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def get(self, pids: Iterable[int]) -> list[tuple[str, str, dict | None]]:
        """``(doc_id, text, metadata)`` for each pid, in the given order (``KeyError`` if unknown)."""
        pids = [int(p) for p in pids]
        found = self._rows("SELECT pid, doc_id, text, metadata FROM docs WHERE pid IN ({})", pids)
        out = []
        for pid in pids:
            row = found.get(pid)
            if row is None:
                raise KeyError(f"no passage with pid {pid}")
            out.append((row[1], row[2], _load_metadata(row[3])))
        return out

    def doc_ids(self, pids: Iterable[int]) -> list[str]:
        """The doc id of each pid, in order."""
        pids = [int(p) for p in pids]
        found = self._rows("SELECT pid, doc_id FROM docs WHERE pid IN ({})", pids)
        try:
            return [found[p][1] for p in pids]
        except KeyError as exc:
            raise KeyError(f"no passage with pid {exc.args[0]}") from None

    def pids_for(self, doc_ids: Iterable[str], *, missing: str = "raise") -> list[int]:
        """The pid of each doc id, in order. ``missing``: "raise" (``KeyError``) or "skip"."""
        doc_ids = list(doc_ids)
        found: dict[str, int] = {}
        with self._lock:
            for start in range(0, len(doc_ids), 500):
                part = doc_ids[start : start + 500]
                sql = f"SELECT doc_id, pid FROM docs WHERE doc_id IN ({','.join('?' * len(part))})"
                found.update(dict(self._conn.execute(sql, part).fetchall()))
        lost = [d for d in doc_ids if d not in found]
        if lost and missing == "raise":
            raise KeyError(f"{len(lost)} unknown doc id(s), e.g. {lost[:5]}")
        return [found[d] for d in doc_ids if d in found]

    def deleted_mask(self) -> np.ndarray:
        """bool ``[num pids]``: True where the passage is deleted."""
        n = self.count()
        mask = np.zeros(n, dtype=bool)
        with self._lock:
            rows = self._conn.execute("SELECT pid FROM docs WHERE deleted = 1").fetchall()
        if rows:
            mask[np.fromiter((r[0] for r in rows), dtype=np.int64)] = True
        return mask

    def all_doc_ids(self) -> list[str]:
        """Doc ids in pid order."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT doc_id FROM docs ORDER BY pid")]

    def all_texts(self) -> list[str]:
        """Passage texts in pid order (deleted passages included, so list index = pid)."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT text FROM docs ORDER BY pid")]

    def _rows(self, sql: str, pids: list[int]) -> dict[int, tuple]:
        found: dict[int, tuple] = {}
        unique = sorted(set(pids))
        with self._lock:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                for row in self._conn.execute(sql.format(",".join("?" * len(part))), part):
                    found[row[0]] = row
        return found

    def __repr__(self) -> str:
        return f"DocStore({str(self.path)!r})"
