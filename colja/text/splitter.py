"""Japanese-aware splitting of long documents into passages.

Passages end at sentence ends — ``。！？．`` and their half-width forms ``｡!?``,
plus line breaks — and their length is measured with the model's own tokenizer
(word pieces), never with whitespace words, which mean nothing in Japanese. A
sentence longer than a passage is cut between words (MeCab boundaries), never
inside a word's word-piece sequence; only a single word longer than a passage
is cut by characters.

Every passage keeps its character span ``[start, end)`` in the original text,
so hits can point back into the source document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# Sentence terminators, full- and half-width, and the closing brackets/quotes
# that belong to the sentence they end (「…。」 stays one sentence).
_TERMINATORS = "。！？．｡!?"
_CLOSERS = "」』）)】〕］]〉》”’\"'"
_SENTENCE_END = re.compile(rf"[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*|\n+")


@dataclass(frozen=True)
class Passage:
    """A piece of a document: its text and character span in the original."""

    text: str
    start: int
    end: int


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` spans of sentences; together they cover ``text`` exactly."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > start:
            spans.append((start, m.end()))
            start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def word_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """MeCab word boundaries inside ``text[start:end]`` (spaces attach to the next word)."""
    from colja.text.words import word_boundaries

    return [(start + a, start + b) for a, b in word_boundaries(text[start:end])]


class PassageSplitter:
    """Split texts into passages of at most ``max_tokens`` word pieces.

    Args:
        count_tokens: length of a text in the model's tokens (e.g.
            ``lambda t: len(model.tokenizer.tokenize(t))``).
        max_tokens: longest passage, in tokens (leave room for [CLS], the
            marker and [SEP]: ``doc_maxlen - 3``).
        overlap: tokens of context repeated from the end of the previous
            passage (whole sentences, at most this many tokens).
    """

    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int, overlap: int = 0):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if overlap < 0 or overlap >= max_tokens:
            raise ValueError(f"overlap must be in [0, max_tokens), got {overlap} with max_tokens={max_tokens}")
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap = overlap

    @classmethod
    def for_model(cls, model, max_tokens: int | None = None, overlap: int = 0) -> "PassageSplitter":
        """A splitter measuring with ``model``'s tokenizer; default size fills ``doc_maxlen``."""
        limit = max_tokens if max_tokens is not None else model.doc_maxlen - 3
        count = getattr(model, "count_tokens", None)
        if count is None:
            tokenizer = model.tokenizer
            count = lambda t: len(tokenizer.tokenize(t))  # noqa: E731
        return cls(count, limit, overlap)

    def split(self, text: str) -> list[Passage]:
        """Passages of ``text`` in order. An empty or blank text gives one empty passage."""
        if not text.strip():
            return [Passage(text, 0, len(text))]
        units = self._units(text)
        passages: list[Passage] = []
        i = 0
        while i < len(units):
            j, used = i, 0
            while j < len(units) and used + units[j][2] <= self.max_tokens:
                used += units[j][2]
                j += 1
            j = max(j, i + 1)  # a unit always fits: _units made them small enough
            start, end = units[i][0], units[j - 1][1]
            # measure the joined text: word pieces can merge across unit borders
            while j - i > 1 and self.count_tokens(text[start:end]) > self.max_tokens:
                j -= 1
                end = units[j - 1][1]
            passages.append(_trimmed(text, start, end))
            if j >= len(units):
                break
            i = self._overlap_start(units, i, j)
        return [p for p in passages if p.text] or [Passage(text, 0, len(text))]

    def split_many(self, texts: list[str]) -> list[list[Passage]]:
        return [self.split(t) for t in texts]

    # -------------------------------------------------------------- internals
    def _units(self, text: str) -> list[tuple[int, int, int]]:
        """Sentences, or word runs of an over-long sentence: ``(start, end, tokens)``."""
        units = []
        for s, e in sentence_spans(text):
            n = self.count_tokens(text[s:e])
            if n <= self.max_tokens:
                units.append((s, e, n))
            else:
                units.extend(self._word_units(text, s, e))
        return units

    def _word_units(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        units = []
        for s, e in word_spans(text, start, end):
            n = self.count_tokens(text[s:e])
            if n <= self.max_tokens:
                units.append((s, e, n))
            else:  # one "word" longer than a passage (e.g. a URL or a run of symbols)
                units.extend(self._char_units(text, s, e))
        return units

    def _char_units(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        units, s = [], start
        while s < end:
            lo, hi = s + 1, end
            while lo < hi:  # longest prefix that fits
                mid = (lo + hi + 1) // 2
                if self.count_tokens(text[s:mid]) <= self.max_tokens:
                    lo = mid
                else:
                    hi = mid - 1
            units.append((s, lo, self.count_tokens(text[s:lo])))
            s = lo
        return units

    def _overlap_start(self, units, i: int, j: int) -> int:
        """First unit of the next passage: back up over ≤ ``overlap`` tokens of whole units."""
        if not self.overlap:
            return j
        k, used = j, 0
        while k - 1 > i and used + units[k - 1][2] <= self.overlap:
            used += units[k - 1][2]
            k -= 1
        return k


def _trimmed(text: str, start: int, end: int) -> Passage:
    """Strip surrounding whitespace from a passage, keeping its span exact."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Passage(text[start:end], start, end)
