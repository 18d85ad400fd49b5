"""Document store: passage id -> (doc id, text, metadata, parent, span), in one SQLite file.

Table ``docs`` (schema version 2):

| column | type | meaning |
| --- | --- | --- |
| ``pid`` | INTEGER PRIMARY KEY | dense passage id (row of ``doclens``), never renumbered |
| ``doc_id`` | TEXT NOT NULL | the user's document id, unique among live rows |
| ``text`` | TEXT NOT NULL | passage text ("" when unknown) |
| ``metadata`` | TEXT | JSON object, or NULL |
| ``deleted`` | INTEGER NOT NULL DEFAULT 0 | 1 = tombstone (its pid keeps its place) |
| ``parent_id`` | TEXT | the document a split passage came from (NULL: not split) |
| ``span_start`` / ``span_end`` | INTEGER | the passage's ``[start, end)`` characters in its parent |

plus ``info(key, value)`` with ``schema_version``. A doc id may reappear on a
new row once its old row is a tombstone (an update): uniqueness is a partial
index over live rows. Version 1 stores (``doc_id UNIQUE``, no parent columns)
are still read; they are migrated when copied for a write.

A generation's store is written once and then opened read-only
(``immutable=1``: no locks, no journal); a write copies it into the next
generation (:meth:`DocStore.copy_for_update`) and changes the copy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from colja.errors import IndexFormatError
from colja.index.readonly_sqlite import connect_readonly

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

_DOCS_TABLE = """
CREATE TABLE {name} (
    pid INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,
    span_start INTEGER,
    span_end INTEGER
);
"""
_DOCS_INDEXES = """
CREATE UNIQUE INDEX docs_live_doc_id ON docs(doc_id) WHERE deleted = 0;
CREATE INDEX docs_live_parent ON docs(parent_id) WHERE deleted = 0 AND parent_id IS NOT NULL;
"""
_SCHEMA = _DOCS_TABLE.format(name="docs") + _DOCS_INDEXES + """
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CHUNK = 500  # bound parameters per IN (...) query


@dataclass(frozen=True)
class PassageRecord:
    """One row of the store as a search hit needs it."""

    doc_id: str
    text: str
    metadata: dict | None
    parent_id: str | None = None
    span: tuple[int, int] | None = None


def dump_metadata(metadata: Any) -> str | None:
    """JSON text of one metadata dict (None stays None); raises ``ValueError``/``TypeError``."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False, sort_keys=False)


def _load_metadata(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise IndexFormatError(f"docs.sqlite: a passage's metadata is not JSON ({exc}); "
                               "check the index with `colja verify`") from None


class DocStore:
    """Read (and, while building, write) the ``docs.sqlite`` of one index generation."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, writable: bool):
        self._conn = conn
        self.path = Path(path)
        self.writable = writable
        self._lock = threading.Lock()
        self._has_parents = True  # set from the table by open / copy_for_update

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
    def memory(cls) -> "DocStore":
        """A new, empty, writable store in memory (for :class:`~colja.InMemoryIndex`); changes apply at once."""
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return cls(conn, Path(":memory:"), writable=True)

    @classmethod
    def open(cls, path: str | Path) -> "DocStore":
        """Open a finished store read-only."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"document store {path} is missing")
        conn = connect_readonly(path)  # read-only, busy timeout, bounded work per query
        store = cls(conn, path, writable=False)
        store._check_version()
        return store

    @classmethod
    def copy_for_update(cls, source: str | Path, path: str | Path) -> "DocStore":
        """A writable copy of the finished store ``source`` at ``path`` (migrated to the current schema).

        Changes go into one transaction; :meth:`finish` commits and closes.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        shutil.copyfile(source, path)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        store = cls(conn, path, writable=True)
        version = store._check_version()
        conn.execute("BEGIN")
        if version < 2:
            store._migrate_v1()
        return store

    def _check_version(self) -> int:
        version = self._info("schema_version")
        if version is None or not version.isdigit() or int(version) not in READABLE_VERSIONS:
            self._conn.close()
            raise ValueError(f"{self.path.name}: document store schema version {version!r} is not supported "
                             f"(this colja reads versions {', '.join(map(str, READABLE_VERSIONS))})")
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(docs)")}
        self._has_parents = "parent_id" in columns
        return int(version)

    def _migrate_v1(self) -> None:
        """Version 1 -> 2: drop ``UNIQUE`` on doc_id (updates reuse ids), add parent / span columns."""
        self._conn.execute(_DOCS_TABLE.format(name="docs_v2"))  # execute, not executescript: stay in the transaction
        self._conn.execute("INSERT INTO docs_v2 (pid, doc_id, text, metadata, deleted) "
                           "SELECT pid, doc_id, text, metadata, deleted FROM docs")
        self._conn.execute("DROP TABLE docs")
        self._conn.execute("ALTER TABLE docs_v2 RENAME TO docs")
        for statement in _DOCS_INDEXES.strip().split(";"):
            if statement.strip():
                self._conn.execute(statement)
        self._conn.execute("UPDATE info SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        self._has_parents = True

    def _info(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ write

    def add(self, pids: Sequence[int], doc_ids: Sequence[str], texts: Sequence[str], metadata: Sequence[str | None],
            parent_ids: Sequence[str | None] | None = None, spans: Sequence[tuple[int, int] | None] | None = None) -> None:
        """Insert rows; ``metadata`` are JSON texts (see :func:`dump_metadata`) or None.

        ``parent_ids`` / ``spans``: for passages split from a longer document.
        """
        if not self.writable:
            raise PermissionError("this document store is read-only")
        pids = [int(p) for p in pids]
        parents = parent_ids if parent_ids is not None else [None] * len(pids)
        spans = spans if spans is not None else [None] * len(pids)
        rows = ((p, d, t, m, par, None if sp is None else int(sp[0]), None if sp is None else int(sp[1]))
                for p, d, t, m, par, sp in zip(pids, doc_ids, texts, metadata, parents, spans))
        with self._lock:
            self._conn.executemany("INSERT INTO docs (pid, doc_id, text, metadata, parent_id, span_start, span_end) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def tombstone(self, pids: Iterable[int]) -> None:
        """Mark passages deleted (their pids keep their place)."""
        if not self.writable:
            raise PermissionError("this document store is read-only")
        pids = sorted({int(p) for p in pids})
        with self._lock:
            for start in range(0, len(pids), _CHUNK):
                part = pids[start : start + _CHUNK]
                self._conn.execute(f"UPDATE docs SET deleted = 1 WHERE pid IN ({','.join('?' * len(part))})", part)

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
        """The live pid of each doc id, in order. ``missing``: "raise" (``KeyError``) or "skip"."""
        doc_ids = list(doc_ids)
        found: dict[str, int] = {}
        with self._lock:
            for start in range(0, len(doc_ids), _CHUNK):
                part = doc_ids[start : start + _CHUNK]
                sql = f"SELECT doc_id, pid FROM docs WHERE deleted = 0 AND doc_id IN ({','.join('?' * len(part))})"
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

    def max_numeric_id(self) -> int:
        """The largest leading integer of any doc id or parent id (deleted rows included), or -1."""
        columns = ("doc_id", "parent_id") if self._has_parents else ("doc_id",)
        best = -1
        with self._lock:
            for column in columns:
                row = self._conn.execute(
                    f"SELECT MAX(CAST({column} AS INTEGER)) FROM docs WHERE {column} GLOB '[0-9]*'").fetchone()
                if row and row[0] is not None:
                    best = max(best, int(row[0]))
        return best

    def records(self, pids: Iterable[int]) -> list[PassageRecord]:
        """:class:`PassageRecord` of each pid, in the given order (``KeyError`` if unknown)."""
        pids = [int(p) for p in pids]
        extra = "parent_id, span_start, span_end" if self._has_parents else "NULL, NULL, NULL"
        found = self._rows(f"SELECT pid, doc_id, text, metadata, {extra} FROM docs WHERE pid IN ({{}})", pids)
        out = []
        for pid in pids:
            row = found.get(pid)
            if row is None:
                raise KeyError(f"no passage with pid {pid}")
            span = None if row[5] is None or row[6] is None else (int(row[5]), int(row[6]))
            out.append(PassageRecord(row[1], row[2], _load_metadata(row[3]), row[4], span))
        return out

    def raw_rows(self, pids: Sequence[int]) -> list[tuple[str, str, str | None, str | None, tuple[int, int] | None]]:
        """``(doc_id, text, metadata JSON text, parent_id, span)`` of each pid, in order (for copies)."""
        pids = [int(p) for p in pids]
        extra = "parent_id, span_start, span_end" if self._has_parents else "NULL, NULL, NULL"
        found = self._rows(f"SELECT pid, doc_id, text, metadata, {extra} FROM docs WHERE pid IN ({{}})", pids)
        return [(r[1], r[2], r[3], r[4], None if r[5] is None or r[6] is None else (int(r[5]), int(r[6])))
                for r in (found[p] for p in pids)]

    def live_pids_by_id(self, ids: Iterable[str]) -> dict[str, list[int]]:
        """Live pids of each id found, as a passage's doc id or as the parent of split passages.

        Ids not found are absent from the result.
        """
        ids = list(dict.fromkeys(ids))
        found: dict[str, list[int]] = {}
        with self._lock:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                for doc_id, pid in self._conn.execute(
                        f"SELECT doc_id, pid FROM docs WHERE deleted = 0 AND doc_id IN ({marks})", part):
                    found.setdefault(doc_id, []).append(int(pid))
                if self._has_parents:
                    for parent, pid in self._conn.execute(
                            f"SELECT parent_id, pid FROM docs WHERE deleted = 0 AND parent_id IN ({marks}) ORDER BY pid",
                            part):
                        found.setdefault(parent, []).append(int(pid))
        return {k: sorted(set(v)) for k, v in found.items()}

    def filter_mask(self, where: Mapping[str, Any]) -> np.ndarray:
        """bool ``[num pids]``: live passages whose metadata match ``where`` (see :mod:`colja.index.filters`)."""
        from colja.index.filters import compile_where

        sql, params = compile_where(where)
        mask = np.zeros(self.count(), dtype=bool)
        with self._lock:
            rows = self._conn.execute(f"SELECT pid FROM docs WHERE deleted = 0 AND {sql}", params).fetchall()
        if rows:
            mask[np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))] = True
        return mask

    def group_keys(self) -> np.ndarray:
        """int64 ``[num pids]``: one number per document (the parent of split passages, else the doc id)."""
        key = "COALESCE(parent_id, doc_id)" if self._has_parents else "doc_id"
        with self._lock:
            rows = self._conn.execute(f"SELECT pid, {key} FROM docs ORDER BY pid").fetchall()
        numbers: dict[str, int] = {}
        out = np.empty(len(rows), dtype=np.int64)
        for i, (pid, name) in enumerate(rows):
            out[pid] = numbers.setdefault(name, len(numbers))
        return out

    def _rows(self, sql: str, pids: list[int]) -> dict[int, tuple]:
        found: dict[int, tuple] = {}
        unique = sorted(set(pids))
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                part = unique[start : start + _CHUNK]
                for row in self._conn.execute(sql.format(",".join("?" * len(part))), part):
                    found[row[0]] = row
        return found

    def __repr__(self) -> str:
        return f"DocStore({str(self.path)!r})"
