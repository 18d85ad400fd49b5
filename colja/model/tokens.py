"""Which token each query / document vector stands for, and where that token is in the text.

A ColBERT model gives one vector per kept token: queries keep every position
(``[CLS]``, the marker, the word pieces, ``[SEP]``, the ``[MASK]`` expansion);
documents drop padding and the punctuation skiplist. These functions rebuild
that list of tokens from the model's own tokenizer, so a vector index maps to
a readable token and, for word pieces, its ``(start, end)`` characters in the
original text (the tokenizer normalises text, e.g. NFKC full-width →
half-width, so pieces are matched against the text normalised one character
at a time).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from colja.model.tokenization import doc_sequences, query_length, wordpiece_ids


@dataclass(frozen=True)
class TextToken:
    """One vector's token: its text (``[CLS]``, ``[Q]``, ``東京``, ``##c``…) and its characters in the
    original text (``start``/``end`` are None for special tokens and pieces not found in the text)."""

    token: str
    start: int | None = None
    end: int | None = None


def _needs(model: Any) -> None:
    missing = [a for a in ("tokenizer", "special_ids", "skiplist", "settings") if not hasattr(model, a)]
    if missing:
        raise TypeError(f"token alignment needs a ColBERT model (with a tokenizer); {type(model).__name__} "
                        f"lacks {', '.join(missing)}")


def _normalised(text: str) -> tuple[str, list[int]]:
    """``text`` NFKC-normalised character by character, and the original index of each output character."""
    out, origin = [], []
    for i, ch in enumerate(text):
        norm = unicodedata.normalize("NFKC", ch)
        out.append(norm)
        origin.extend([i] * len(norm))
    return "".join(out), origin


def align_pieces(text: str, pieces: list[str], unk: str = "[UNK]") -> list[tuple[int | None, int | None]]:
    """``(start, end)`` in ``text`` of each word piece, matched left to right (``##`` stripped).

    A piece the text does not contain (an unknown token) spans from the end of
    the previous piece (spaces skipped) to the start of the next one found.
    """
    norm, origin = _normalised(text)
    spans: list[list[int | None]] = []
    cursor = 0
    pending: list[int] = []  # unknown pieces waiting for the next match to close them
    for piece in pieces:
        body = piece[2:] if piece.startswith("##") else piece
        at = norm.find(body, cursor) if body and piece != unk else -1
        if at < 0:
            while cursor < len(norm) and norm[cursor].isspace():
                cursor += 1
            spans.append([cursor, None])
            pending.append(len(spans) - 1)
            continue
        for j in pending:
            spans[j][1] = at
        pending = []
        spans.append([at, at + len(body)])
        cursor = at + len(body)
    for j in pending:
        spans[j][1] = len(norm)
    out: list[tuple[int | None, int | None]] = []
    for start, end in spans:
        while start is not None and end is not None and end > start and norm[end - 1].isspace():
            end -= 1
        if start is None or end is None or end <= start or start >= len(origin):
            out.append((None, None))
        else:
            out.append((origin[start], origin[end - 1] + 1))
    return out


def _names(model: Any) -> dict[int, str]:
    ids = model.special_ids
    return {ids.cls: "[CLS]", ids.sep: "[SEP]", ids.mask: "[MASK]", ids.pad: "[PAD]",
            ids.query_marker: "[Q]", ids.doc_marker: "[D]"}


def query_tokens(model: Any, query: str) -> list[TextToken]:
    """The token of each vector of ``model.encode_queries([query])[0]``, in order (the ``[MASK]`` expansion included)."""
    _needs(model)
    tok = model.tokenizer
    pieces = tok.tokenize(query) if query else []
    dynamic = model.settings.dynamic_query_maxlen
    length = query_length(len(pieces), model.settings, getattr(model, "max_positions", 512), dynamic)
    body = pieces[: length - 3]
    spans = align_pieces(query, body, tok.unk_token or "[UNK]")
    out = [TextToken("[CLS]"), TextToken("[Q]")]
    out += [TextToken(p, s, e) for p, (s, e) in zip(body, spans)]
    out.append(TextToken("[SEP]"))
    if model.settings.query_expansion:
        out += [TextToken("[MASK]")] * (length - len(out))
    return out


def document_tokens(model: Any, text: str) -> list[TextToken]:
    """The token of each vector of ``model.encode_documents([text])[0]``: padding and skiplisted
    punctuation dropped, ``[CLS]``, ``[D]`` and ``[SEP]`` kept, cut at ``doc_maxlen``."""
    _needs(model)
    tok = model.tokenizer
    pieces = tok.tokenize(text) if text else []
    ids = wordpiece_ids(tok, [text])[0]
    (sequence,), _ = doc_sequences([ids], model.special_ids, model.settings)
    body = pieces[: len(sequence) - 3]
    spans = align_pieces(text, body, tok.unk_token or "[UNK]")
    names = _names(model)
    tokens = [TextToken(names[sequence[0]]), TextToken(names.get(sequence[1], "[D]"))]
    tokens += [TextToken(p, s, e) for p, (s, e) in zip(body, spans)]
    tokens.append(TextToken("[SEP]"))
    return [t for t, tid in zip(tokens, sequence) if tid != model.special_ids.pad and tid not in model.skiplist]


__all__ = ["TextToken", "align_pieces", "query_tokens", "document_tokens"]
