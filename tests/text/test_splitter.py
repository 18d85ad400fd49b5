"""Japanese passage splitting: sentence ends, token budgets from the model's tokenizer, exact spans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colja.text.splitter import PassageSplitter, sentence_spans
from colja.text.words import word_boundaries


@pytest.fixture(scope="module")
def tokenizer(_fixture_model):
    return _fixture_model.tokenizer


def _splitter(tokenizer, max_tokens: int, overlap: int = 0) -> PassageSplitter:
    return PassageSplitter(lambda t: len(tokenizer.tokenize(t)), max_tokens, overlap)


def _check(text: str, passages, tokenizer, max_tokens: int, overlap: int = 0) -> None:
    """Spans are exact and in order, every passage fits, and (without overlap) nothing but whitespace is lost."""
    assert passages
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert len(tokenizer.tokenize(p.text)) <= max_tokens or len(p.text) == 1
    starts = [p.start for p in passages]
    assert starts == sorted(starts)
    if not overlap:
        for a, b in zip(passages, passages[1:]):
            assert a.end <= b.start and not text[a.end : b.start].strip()
        covered = "".join(p.text for p in passages)
        assert "".join(covered.split()) == "".join(text.split())


MIXED = ("東京は日本の首都です。大阪は大きい！本当？はい!そうです｡「京都です。」と彼は言った．"
         "改行もあります\n次の行です\n\nそして最後の文")


def test_mixed_punctuation_splits_at_sentence_ends(tokenizer):
    passages = _splitter(tokenizer, 12).split(MIXED)
    _check(MIXED, passages, tokenizer, 12)
    ends = {e for _, e in sentence_spans(MIXED)}
    for p in passages[:-1]:
        # each passage ends at a sentence end (a line break's newline is trimmed off the span)
        assert p.end in ends or MIXED[p.end] == "\n"
    assert [p.text for p in passages] == ["東京は日本の首都です。大阪は大きい！", "本当？はい!そうです｡「京都です。」",
                                         "と彼は言った．改行もあります", "次の行です\n\nそして最後の文"]


def test_sentence_spans_tile_the_text():
    spans = sentence_spans(MIXED)
    assert "".join(MIXED[a:b] for a, b in spans) == MIXED
    assert MIXED[spans[0][0] : spans[0][1]] == "東京は日本の首都です。"
    assert any(MIXED[a:b] == "「京都です。」" for a, b in spans)  # the closing bracket stays with its sentence
    assert any(MIXED[a:b].endswith("｡") for a, b in spans)  # half-width 。


def test_no_punctuation_cuts_between_words(tokenizer):
    text = "日本語の文章には句読点がない場合もあるのでその場合は形態素の境界で分割する必要があります" * 3
    passages = _splitter(tokenizer, 10).split(text)
    _check(text, passages, tokenizer, 10)
    assert len(passages) > 3
    bounds = {0, len(text)} | {e for _, e in word_boundaries(text)}
    for p in passages:
        assert p.start in bounds and p.end in bounds  # never inside a word (so never inside its word pieces)


def test_a_very_long_sentence_is_cut_into_fitting_passages(tokenizer):
    text = "、".join(["東京都庁は新宿区にあり多くの職員が働いている"] * 30) + "。短い文。"
    passages = _splitter(tokenizer, 20).split(text)
    _check(text, passages, tokenizer, 20)
    assert len(passages) > 10 and passages[-1].text.endswith("短い文。")


def test_emoji_and_unknown_symbols(tokenizer):
    text = "😀👍🏽絵文字のテストです😀😀😀。次は🍣と🍺です！" + "🎌" * 40 + "。終わり"
    for max_tokens in (3, 8, 50):
        passages = _splitter(tokenizer, max_tokens).split(text)
        _check(text, passages, tokenizer, max_tokens)


def test_empty_and_blank_texts(tokenizer):
    splitter = _splitter(tokenizer, 8)
    assert [(p.text, p.start, p.end) for p in splitter.split("")] == [("", 0, 0)]
    assert [(p.text, p.start, p.end) for p in splitter.split(" \n\u3000")] == [(" \n\u3000", 0, 3)]
    assert [(p.text, p.start, p.end) for p in splitter.split("  短い。 ")] == [("短い。", 2, 5)]


def test_full_and_half_width_forms(tokenizer):
    full = "ＡＢＣ１２３は全角です！ＤＥＦも全角？はい。"
    half = "ABC123は半角です!DEFも半角?はい｡"
    for text in (full, half):
        sentences = [text[a:b] for a, b in sentence_spans(text)]
        assert len(sentences) == 3 and sentences[0][-1] in "！!" and sentences[1][-1] in "？?"
        budget = max(len(tokenizer.tokenize(x)) for x in sentences)  # one sentence fits, two do not
        passages = _splitter(tokenizer, budget).split(text)
        _check(text, passages, tokenizer, budget)
        assert [p.text for p in passages] == sentences


def test_overlap_repeats_whole_sentences(tokenizer):
    text = "".join(f"これは{i}番目の文です。" for i in range(12))
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    one = max(len(tokenizer.tokenize(x)) for x in sentences)
    plain = _splitter(tokenizer, 3 * one).split(text)
    over = _splitter(tokenizer, 3 * one, overlap=one).split(text)
    _check(text, over, tokenizer, 3 * one, overlap=one)
    assert len(over) > len(plain)
    for a, b in zip(over, over[1:]):
        assert b.start < a.end  # the next passage starts inside the previous one...
        shared = text[b.start : a.end]
        assert len(tokenizer.tokenize(shared)) <= one and shared in sentences  # ...with one whole sentence


def test_bad_settings():
    with pytest.raises(ValueError, match="max_tokens"):
        PassageSplitter(len, 0)
    with pytest.raises(ValueError, match="overlap"):
        PassageSplitter(len, 10, overlap=10)


PIECES = st.sampled_from(["東京", "は", "日本", "の", "首都", "です", "。", "！", "？", "!", "?", "｡", "．", "\n",
                          " ", "、", "「", "」", "😀", "👍🏽", "ＡＢＣ", "abc", "123", "１２３", "ー", "カタカナ",
                          "ひらがなだけのながいことば", "漢字熟語研究所"])


@given(st.lists(PIECES, max_size=60), st.integers(4, 30), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_random_texts_keep_every_invariant(tokenizer, pieces, max_tokens, overlap):
    text = "".join(pieces)
    overlap = min(overlap, max_tokens - 1)
    passages = _splitter(tokenizer, max_tokens, overlap).split(text)
    _check(text, passages, tokenizer, max_tokens, overlap)
