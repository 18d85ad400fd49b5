"""Word boundaries of raw Japanese text (MeCab via fugashi + unidic-lite)."""

from __future__ import annotations

from colja.text.japanese import mecab_tagger


def word_boundaries(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of every word in ``text``; whitespace joins the next word.

    The spans tile ``text`` exactly. If MeCab's surfaces cannot be aligned with
    the text (it should not happen), every character becomes its own word.
    """
    spans, pos = [], 0
    for node in mecab_tagger()(text):
        start = pos
        pos += len(node.white_space)
        if text.startswith(node.surface, pos):
            pos += len(node.surface)
        else:
            return [(i, i + 1) for i in range(len(text))]
        spans.append((start, pos))
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans
