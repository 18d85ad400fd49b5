"""Read-only SQLite connections for searching a document store that may come from someone else.

:func:`connect_readonly` opens ``docs.sqlite`` with ``mode=ro&immutable=1``
(no writes, no locks, no journal), a busy timeout, ``trusted_schema=OFF`` and
``query_only=ON``, and a progress handler that stops any single statement
after a budget of virtual-machine steps proportional to the file's size. A
crafted file (a recursive view in place of a table, a pathological index)
therefore ends in :class:`~colja.errors.IndexFormatError` naming the file,
never in a hang. The load-time checks of :mod:`colja.index.validate` refuse
such files before the first search; this bound is the second line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from colja.errors import IndexFormatError

BUSY_TIMEOUT_S = 5.0
#: the progress handler runs every this many SQLite VM instructions
PROGRESS_EVERY = 10_000
#: a statement may run ``BASE_STEPS + STEPS_PER_BYTE * file size`` VM instructions
BASE_STEPS = 200_000_000
STEPS_PER_BYTE = 400


def step_budget(file_bytes: int) -> int:
    """VM instructions one statement may run on a store of ``file_bytes`` bytes."""
    return BASE_STEPS + STEPS_PER_BYTE * max(0, int(file_bytes))


def _stopped(path: Path, budget: int, exc: sqlite3.OperationalError) -> IndexFormatError:
    return IndexFormatError(
        f"{path}: a query on the document store ran more than {budget:,} steps and was stopped "
        f"(a crafted or damaged docs.sqlite; check it with `colja verify {path.parent}`) [{exc}]")


class _GuardedCursor(sqlite3.Cursor):
    """A cursor whose interrupted statements raise ``IndexFormatError`` (at execute or while fetching)."""

    def _convert(self, exc: sqlite3.OperationalError) -> Exception:
        conn = self.connection
        if "interrupt" in str(exc) and isinstance(conn, GuardedConnection):
            return _stopped(conn.path, conn.budget, exc)
        return exc

    def execute(self, sql: str, parameters: Any = ()) -> "_GuardedCursor":  # type: ignore[override]
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise self._convert(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.OperationalError as exc:
            raise self._convert(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.OperationalError as exc:
            raise self._convert(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.OperationalError as exc:
            raise self._convert(exc) from exc


class GuardedConnection(sqlite3.Connection):
    """A connection whose statements each run at most ``budget`` VM instructions."""

    path: Path
    budget: int

    def guard(self, path: Path, budget: int) -> None:
        self.path, self.budget = path, budget
        self._ticks = 0
        limit = max(1, budget // PROGRESS_EVERY)

        def restart(_statement: str) -> None:  # called as each statement starts running
            self._ticks = 0

        def progress() -> int:
            self._ticks += 1
            return 1 if self._ticks > limit else 0

        self.set_trace_callback(restart)
        self.set_progress_handler(progress, PROGRESS_EVERY)

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
        return self.cursor(_GuardedCursor).execute(sql, parameters)


def connect_readonly(path: str | Path, *, budget: int | None = None) -> sqlite3.Connection:
    """Open ``path`` read-only and immutable, with a busy timeout and a per-statement work bound."""
    path = Path(path)
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S,
                           factory=GuardedConnection)
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        conn.guard(path, step_budget(path.stat().st_size) if budget is None else int(budget))
    except BaseException:
        conn.close()
        raise
    return conn


__all__ = ["BUSY_TIMEOUT_S", "GuardedConnection", "connect_readonly", "step_budget"]
