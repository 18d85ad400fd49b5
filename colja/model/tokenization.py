"""Query and document tensors exactly as Stanford ColBERT builds them.

Queries: ``[CLS] tokens [SEP]`` cut to ``query_maxlen - 1``, the query marker
inserted at position 1, padding replaced by ``[MASK]`` (attention 0 on those
positions unless ``attend_to_mask_tokens``). Documents: ``[CLS] tokens [SEP]``
cut to ``doc_maxlen - 1``, the document marker inserted at position 1; the
punctuation skiplist and padding are dropped after encoding.

Texts are word-piece tokenized once, without padding, so batches can be formed
by length afterwards (see :func:`pad_batch`).

Huge texts and threads: MeCab (inside the tokenizer) crashes the process on
texts near a million characters and is not thread-safe. So texts are cut, in
characters, to what the model can use (:func:`char_budget`: far above what
``max_tokens`` word pieces can consume) before tokenization, every call into
one tokenizer holds that tokenizer's lock, and texts that must be tokenized
whole (the passage splitter) go to MeCab in pieces
(:func:`tokenize_text`, :mod:`colja.text.pieces`).
"""

from __future__ import annotations

import math
import string
import threading
import weakref
from dataclasses import dataclass

import torch

from colja.errors import ModelLoadError
from colja.model.settings import ColBERTSettings
from colja.text.pieces import MECAB_PIECE_CHARS, text_pieces


@dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int
    pad: int
    mask: int
    query_marker: int
    doc_marker: int


def resolve_special_ids(tokenizer, settings: ColBERTSettings) -> SpecialIds:
    """Marker ids via ``convert_tokens_to_ids``, as the reference does (no new tokens)."""
    unk = tokenizer.unk_token_id

    def marker(token: str, what: str) -> int:
        candidates = [token, token.strip()]
        for c in candidates:
            tid = tokenizer.convert_tokens_to_ids(c)
            if tid is not None and tid != unk:
                return int(tid)
        raise ModelLoadError(
            f"the {what} marker {token!r} is not in the tokenizer's vocabulary; "
            f"set {what}_token_id in artifact.metadata to a token that exists (JaColBERT uses '[unused0]'/'[unused1]')"
        )

    missing = [n for n in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id") if getattr(tokenizer, n) is None]
    if missing:
        raise ModelLoadError(f"the tokenizer has no {', '.join(missing)}; ColBERT needs [CLS], [SEP], [PAD] and [MASK]")
    return SpecialIds(
        cls=int(tokenizer.cls_token_id),
        sep=int(tokenizer.sep_token_id),
        pad=int(tokenizer.pad_token_id),
        mask=int(tokenizer.mask_token_id),
        query_marker=marker(settings.query_token_id, "query"),
        doc_marker=marker(settings.doc_token_id, "doc"),
    )


def punctuation_skiplist(tokenizer, settings: ColBERTSettings) -> frozenset[int]:
    """Ids dropped from documents.

    Reference rule: the first word piece of every ``string.punctuation``
    character, tokenized by the model's own tokenizer. PyLate models may list
    their own words instead (``skiplist_words``, resolved as whole tokens).
    """
    if not settings.mask_punctuation:
        return frozenset()
    if settings.skiplist_words is not None:
        unk = tokenizer.unk_token_id
        ids = {tokenizer.convert_tokens_to_ids(w) for w in settings.skiplist_words}
        return frozenset(int(i) for i in ids if i is not None and i != unk)
    ids = set()
    for ch in string.punctuation:
        pieces = tokenizer.encode(ch, add_special_tokens=False)
        if pieces:
            ids.add(int(pieces[0]))
    return frozenset(ids)


#: characters kept per usable token: a word piece covers at least one character, so
#: 64 leaves room for whitespace and markup between them
CHARS_PER_TOKEN = 64
_MIN_CHARS = 4096
_locks_guard = threading.Lock()
_fallback_lock = threading.Lock()
_locks: "weakref.WeakKeyDictionary[object, threading.Lock]" = weakref.WeakKeyDictionary()


def char_budget(max_tokens: int) -> int:
    """Characters of a text kept before tokenization when at most ``max_tokens`` pieces are used."""
    return max(_MIN_CHARS, CHARS_PER_TOKEN * int(max_tokens))


def tokenizer_lock(tokenizer) -> threading.Lock:
    """The lock every call into ``tokenizer`` holds (MeCab's tagger is not thread-safe).

    Kept beside the tokenizer, not on it, so that models stay deep-copyable and picklable.
    """
    with _locks_guard:
        try:
            lock = _locks.get(tokenizer)
            if lock is None:
                lock = _locks[tokenizer] = threading.Lock()
        except TypeError:  # pragma: no cover - not weak-referenceable
            lock = _fallback_lock
    return lock


def tokenize_text(tokenizer, text: str) -> list[str]:
    """``tokenizer.tokenize(text)`` for a text of any length, safe from several threads."""
    with tokenizer_lock(tokenizer):
        if len(text) <= MECAB_PIECE_CHARS:
            return tokenizer.tokenize(text)
        return [token for piece in text_pieces(text) for token in tokenizer.tokenize(piece)]


def wordpiece_ids(tokenizer, texts: list[str], max_tokens: int | None = None) -> list[list[int]]:
    """Word-piece ids of each text, without special tokens or truncation.

    ``max_tokens``: the most pieces the caller will use; longer texts are first cut
    to :func:`char_budget` characters (the caller still sees more than
    ``max_tokens`` pieces, so it knows the text was truncated).
    """
    limit = char_budget(max_tokens) if max_tokens is not None else None
    out = []
    for t in texts:
        if limit is not None and len(t) > limit:
            t = t[:limit]
        out.append(tokenizer.convert_tokens_to_ids(tokenize_text(tokenizer, t)) if t else [])
    return out


def query_length(n_pieces: int, settings: ColBERTSettings, max_positions: int, dynamic: bool) -> int:
    """Tokens a query is padded to. ``n_pieces`` excludes [CLS], marker and [SEP]."""
    if not dynamic:
        return settings.query_maxlen
    needed = n_pieces + 3
    multiple = settings.dynamic_querylen_multiples
    length = max(settings.query_maxlen, math.ceil(needed / multiple) * multiple)
    return min(length, dynamic_query_cap(settings, max_positions))


def dynamic_query_cap(settings: ColBERTSettings, max_positions: int) -> int:
    # Two positions below the model's limit, as AnswerDotAI/rerankers does, so
    # models with a position offset (RoBERTa family) stay in range too.
    return max(settings.query_maxlen, max_positions - 2)


def query_tensors(pieces: list[list[int]], lengths: list[int], ids: SpecialIds, settings: ColBERTSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` for queries, all padded to ``max(lengths)``.

    A query shorter than the batch (dynamic length) is padded with ``[PAD]``
    and attention 0 beyond its own length; its vectors there are dropped.
    """
    width = max(lengths)
    input_ids = torch.full((len(pieces), width), ids.pad, dtype=torch.long)
    attention = torch.zeros((len(pieces), width), dtype=torch.long)
    for row, (p, length) in enumerate(zip(pieces, lengths)):
        body = p[: length - 3]
        seq = [ids.cls, ids.query_marker, *body, ids.sep]
        n_real = len(seq)
        input_ids[row, :n_real] = torch.tensor(seq, dtype=torch.long)
        attention[row, :n_real] = 1
        if settings.query_expansion:
            input_ids[row, n_real:length] = ids.mask
            if settings.attend_to_mask_tokens:
                attention[row, n_real:length] = 1
    return input_ids, attention


def doc_sequences(pieces: list[list[int]], ids: SpecialIds, settings: ColBERTSettings) -> tuple[list[list[int]], int]:
    """``[CLS] marker tokens [SEP]`` per document; returns (sequences, number truncated)."""
    room = settings.doc_maxlen - 3
    out = []
    truncated = 0
    for p in pieces:
        if len(p) > room:
            truncated += 1
            p = p[:room]
        out.append([ids.cls, ids.doc_marker, *p, ids.sep])
    return out, truncated


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        input_ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        attention[row, : len(s)] = 1
    return input_ids, attention
