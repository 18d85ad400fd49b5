"""MecabWordTokenizer: the reference BM25 recipe (NFKC, lower-case, no 補助記号/空白 words)."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from colja.text.japanese import MecabWordTokenizer


@pytest.fixture(scope="module")
def tok() -> MecabWordTokenizer:
    return MecabWordTokenizer()


@pytest.mark.parametrize("text, words", [
    ("東京タワーは、ＴＯＫＹＯにある。", ["東京", "タワー", "は", "tokyo", "に", "ある"]),
    ("Pythonで自然言語処理", ["python", "で", "自然", "言語", "処理"]),
    # full-width Latin, half-width katakana and the ideographic space all normalize away
    ("ＴＯＫＹＯ　ｽｶｲﾂﾘｰ", ["tokyo", "スカイ", "ツリー"]),
    ("tokyo スカイツリー", ["tokyo", "スカイ", "ツリー"]),
    ("①２３ｋｇ", ["123", "kg"]),
    # emoji are 補助記号 in UniDic: dropped like punctuation
    ("🍣が好き😀！", ["が", "好き"]),
    ("", []),
    ("。、！？　 \n\t", []),
])
def test_recipe(tok: MecabWordTokenizer, text: str, words: list[str]):
    assert tok.tokenize(text) == words
    assert tok(text) == words


def test_tokenize_many_and_types(tok: MecabWordTokenizer):
    assert tok.tokenize_many(["東京", "", "大阪"]) == [["東京"], [], ["大阪"]]
    with pytest.raises(TypeError, match="expects a str"):
        tok.tokenize(None)  # type: ignore[arg-type]


def test_options():
    raw = MecabWordTokenizer(normalize=False, lowercase=False, dropped_pos=())
    assert raw.tokenize("ＡＢ、c") == ["ＡＢ", "、", "c"]
    assert "normalize=False" in repr(raw)


def test_one_tagger_per_thread(tok: MecabWordTokenizer):
    texts = [f"第{i}回の東京マラソンは雨でした。" for i in range(200)]
    expected = tok.tokenize_many(texts)
    barrier = threading.Barrier(4)
    taggers: list[int] = []

    def work(chunk: list[str]) -> list[list[str]]:
        out = tok.tokenize_many(chunk)
        taggers.append(id(tok._tagger()))
        barrier.wait(timeout=30)  # all four threads (and their taggers) alive at once
        return out

    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(work, [texts[i::4] for i in range(4)]))
    got: list = [None] * len(texts)
    for j, part in enumerate(parts):
        got[j::4] = part
    assert got == expected
    assert len(set(taggers)) == 4


def test_taggers_are_shared_within_a_thread():
    # fugashi never unmaps a tagger's dictionary: a tagger per tokenizer would leak mappings
    assert MecabWordTokenizer()._tagger() is MecabWordTokenizer(lowercase=False)._tagger()


def test_pickle_round_trip(tok: MecabWordTokenizer):
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.tokenize("東京タワー") == ["東京", "タワー"]
