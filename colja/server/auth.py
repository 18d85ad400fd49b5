"""API keys: read-only or read-write, compared in constant time, never logged.

A keys file holds one key per line, then its access: ``read`` (search,
rerank, explain, stats, metrics) or ``write`` (also add / update / delete)::

    # colja serve --api-keys keys.txt
    3f9a0c1d5e7b2a4c6e8f0a1b  read
    b7d2e4f6a8c0e1f3a5b7c9d1  write

Blank lines and ``#`` comments are ignored. Keys must be at least 16
characters without spaces; a malformed file is an error at start-up, never a
server that lets everyone in.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Mapping

READ = "read"
WRITE = "write"
MIN_KEY_LENGTH = 16


class ApiKeys:
    """The keys a server accepts and what each may do."""

    def __init__(self, keys: Mapping[str, str]):
        if not keys:
            raise ValueError("no API keys given; pass at least one key, or none at all to serve without keys")
        checked: list[tuple[bytes, str]] = []
        for n, (key, access) in enumerate(keys.items(), start=1):
            if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
                raise ValueError(f"API key #{n} must be a string of at least {MIN_KEY_LENGTH} characters "
                                 "without spaces (e.g. from `python -c 'import secrets; print(secrets.token_hex(16))'`)")
            if access not in (READ, WRITE):
                raise ValueError(f"API key #{n}: access must be {READ!r} or {WRITE!r}, got {access!r}")
            checked.append((key.encode("utf-8"), access))
        self._keys = checked

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ApiKeys":
        """Read a keys file (see the module docstring); errors name the line, never the key."""
        keys: dict[str, str] = {}
        for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{line_no}: expected '<key> read' or '<key> write'")
            if parts[0] in keys:
                raise ValueError(f"{path}:{line_no}: this key is listed twice")
            keys[parts[0]] = parts[1]
        if not keys:
            raise ValueError(f"{path}: no keys found; write one '<key> read|write' per line")
        try:
            return cls(keys)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def access(self, presented: str | None) -> str | None:
        """``"read"`` / ``"write"`` for a valid key, None otherwise. Every key is compared (in constant
        time), so the time taken does not tell which key, or how much of one, matched."""
        if presented is None:
            return None
        given = presented.encode("utf-8", "replace")
        found = None
        for key, access in self._keys:
            if hmac.compare_digest(key, given):
                found = access
        return found

    def __repr__(self) -> str:  # never show a key
        return f"ApiKeys({len(self._keys)} keys)"


def as_api_keys(value: "ApiKeys | Mapping[str, str] | str | os.PathLike | None") -> ApiKeys | None:
    if value is None or isinstance(value, ApiKeys):
        return value
    if isinstance(value, Mapping):
        return ApiKeys(value)
    return ApiKeys.from_file(value)


__all__ = ["ApiKeys", "as_api_keys", "READ", "WRITE"]
