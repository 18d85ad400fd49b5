"""Argument types and help clean-up shared by the subcommands."""

from __future__ import annotations

import argparse
import re


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (``-k 0`` is a usage error, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc):`~?(?:[\w.]+\.)?([\w]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"`([^`<]+?)(?:\s*<[^>]+>)?`_+")


def plain(text: str | None) -> str | None:
    """reST markup (``x``, :class:`~a.B`, `link`_) as plain text for ``--help``."""
    if not text:
        return text
    return _LINK.sub(r"\1", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


__all__ = ["non_negative_int", "plain", "positive_int"]
