"""Long texts in pieces MeCab can take.

MeCab crashes the process (SIGSEGV) on a single text near a million characters,
so every colja caller hands it at most :data:`MECAB_PIECE_CHARS` at once.
"""

from __future__ import annotations

import re

#: longest text handed to MeCab at once
MECAB_PIECE_CHARS = 1 << 16
_BREAK = re.compile(r"[\s。．.!?！？、,，]")


def text_pieces(text: str, size: int = MECAB_PIECE_CHARS) -> list[str]:
    """``text`` in consecutive pieces of at most ``size`` characters (joined, they are ``text``),
    cut after a space or sentence mark where one is in the last eighth of a piece."""
    out, start = [], 0
    while len(text) - start > size:
        window = text[start : start + size]
        cut = max((m.end() for m in _BREAK.finditer(window, size - size // 8)), default=size)
        out.append(text[start : start + cut])
        start += cut
    out.append(text[start:])
    return out


__all__ = ["MECAB_PIECE_CHARS", "text_pieces"]
