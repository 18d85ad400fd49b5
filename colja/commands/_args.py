"""Argument types and help clean-up shared by the subcommands."""

from __future__ import annotations

import argparse
import re


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


#: argparse types: a whole number >= 1 / >= 0 (``-k 0`` is a usage error, not a traceback)
positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def add_document_options(p: argparse.ArgumentParser) -> None:
    """What ``add`` and ``update`` share: the input file, the index, the model and the file's fields."""
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--model", default=None, help="override the model recorded in the index")
    p.add_argument("--text-field", default="text", help="the field holding the text (default text)")
    p.add_argument("--id-field", default=None, help="default: the first of _id, id, doc_id, docid present")
    p.add_argument("--title-field", default=None, help="prepend this field to the text (e.g. title)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="passages encoded per batch (default 32)")


_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc):`~?(?:[\w.]+\.)?([\w]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"`([^`<]+?)(?:\s*<[^>]+>)?`_+")


def plain(text: str | None) -> str | None:
    """reST markup (``x``, :class:`~a.B`, `link`_) as plain text for ``--help``."""
    if not text:
        return text
    return _LINK.sub(r"\1", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


__all__ = ["add_document_options", "non_negative_int", "plain", "positive_int"]
