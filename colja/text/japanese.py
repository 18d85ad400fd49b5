"""Japanese word tokenization with MeCab (fugashi + unidic-lite), for lexical retrieval.

The recipe (fugashi + unidic-lite 1.0.8), the one our BM25 baselines on the JaQuAD and
JSQuAD test sets were measured with:
NFKC-normalize, lower-case, run MeCab, keep each word's surface form, and drop
words whose first part-of-speech field is ``補助記号`` (punctuation, symbols,
emoji) or ``空白`` (white space).
"""

from __future__ import annotations

import threading
import unicodedata
from typing import Iterable

from colja.errors import MissingDependencyError
from colja.text.pieces import text_pieces

#: First POS fields (UniDic ``pos1``) whose words are dropped.
DROPPED_POS = frozenset({"補助記号", "空白"})


class MecabWordTokenizer:
    """Split Japanese text into normalized MeCab words.

    >>> MecabWordTokenizer().tokenize("東京タワーは、ＴＯＫＹＯにある。")
    ['東京', 'タワー', 'は', 'tokyo', 'に', 'ある']

    Thread-safe: MeCab taggers are not, so each thread lazily gets its own,
    shared by every tokenizer in the process (fugashi never unmaps a tagger's
    dictionary, so a new tagger per tokenizer would pile up ~250 MB mappings).
    Nothing is cached per text.
    """

    def __init__(self, *, normalize: bool = True, lowercase: bool = True,
                 dropped_pos: Iterable[str] = DROPPED_POS) -> None:
        self.normalize = normalize
        self.lowercase = lowercase
        self.dropped_pos = frozenset(dropped_pos)
        self._tagger()  # fail here, not on the first text, if MeCab is missing

    @staticmethod
    def _tagger():
        return mecab_tagger()

    def normalize_text(self, text: str) -> str:
        """The text as MeCab sees it: NFKC, then lower-case (each if enabled)."""
        if self.normalize:
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        return text

    def tokenize(self, text: str) -> list[str]:
        """Words of one text, in order; ``[]`` for an empty or punctuation-only text."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__} ({text!r:.60})")
        text = self.normalize_text(text)
        if not text:
            return []
        drop = self.dropped_pos
        tagger = self._tagger()
        # feature_raw starts with the POS fields; reading it is ~2x faster than node.feature.
        return [node.surface for piece in text_pieces(text) for node in tagger(piece)
                if node.feature_raw.partition(",")[0] not in drop]

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        """:meth:`tokenize` for each text, in order."""
        return [self.tokenize(t) for t in texts]

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def __repr__(self) -> str:
        return (f"MecabWordTokenizer(normalize={self.normalize}, lowercase={self.lowercase}, "
                f"dropped_pos={sorted(self.dropped_pos)})")


_THREAD = threading.local()  # .tagger: this thread's fugashi.Tagger


def mecab_tagger():
    """This thread's ``fugashi.Tagger`` on unidic-lite, created on first use and then reused.

    Other MeCab users in colja should take their tagger from here: fugashi never
    releases a tagger's dictionary mapping, so every extra tagger costs ~250 MB of
    address space for the life of the process.
    """
    tagger = getattr(_THREAD, "tagger", None)
    if tagger is None:
        tagger = _THREAD.tagger = _new_tagger()
    return tagger


def _new_tagger():
    try:
        import fugashi
        import unidic_lite
    except ImportError as e:  # pragma: no cover - both are core dependencies
        raise MissingDependencyError(
            "Japanese word tokenization needs fugashi and unidic-lite: pip install fugashi unidic-lite"
        ) from e
    try:
        # Name the dictionary: a bare Tagger() would prefer the full `unidic` package if installed.
        return fugashi.Tagger(f'-d "{unidic_lite.DICDIR}"')
    except RuntimeError as e:  # pragma: no cover - a broken dictionary install
        raise MissingDependencyError(
            f"MeCab could not load unidic-lite ({e}); reinstall it with: pip install --force-reinstall unidic-lite"
        ) from e


__all__ = ["DROPPED_POS", "MecabWordTokenizer", "mecab_tagger"]
