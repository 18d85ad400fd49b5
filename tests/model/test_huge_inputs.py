"""Texts far longer than any model can use: cut before tokenization, warned about, never a crash.

Each case runs in a subprocess, so that a crash in MeCab (SIGSEGV near a million
characters when a text reaches it whole) fails the test instead of killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from colja.text.pieces import MECAB_PIECE_CHARS, text_pieces
from tests.conftest import FIXTURE_MODEL, REPO

_SCRIPT = textwrap.dedent("""
    import sys, warnings
    from colja import ColBERT, Index
    from colja.errors import TruncationWarning

    mb, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    unit = {"line": "東京都は日本の首都です。", "punct": "。、！？…「」", "emoji": "😀🍣ｶﾀｶﾅＡＢＣ",
            "unspaced": "あいうえおかきくけこ"}[kind]
    giant = (unit * (mb * 1_000_000 // (len(unit.encode()) ) + 1))[: mb * 1_000_000 // 3]
    model = ColBERT.from_pretrained(sys.argv[4], device="cpu")
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = Index.build(["短い文書です。", giant, "京都の寺"], path, model=model, doc_ids=["a", "big", "c"])
        seen.append(any(issubclass(w.category, TruncationWarning) for w in caught))
        caught.clear()
        index.add([giant], doc_ids=["big2"])
        seen.append(any(issubclass(w.category, TruncationWarning) for w in caught))
        caught.clear()
        index.update(["a"], [giant])
        seen.append(any(issubclass(w.category, TruncationWarning) for w in caught))
        caught.clear()
        hits = index.search(giant, k=3)
        seen.append(any(issubclass(w.category, TruncationWarning) for w in caught))
    with Index.load(path).snapshot() as snap:
        stored = [text for doc_id, text, _ in snap.docs.get(range(snap.num_passages)) if doc_id == "big"]
    assert len(stored) == 1 and len(stored[0]) == len(giant), "the stored text must be the whole text"
    print("OK", len(hits), seen)
""")


def _run(tmp_path, mb: int, kind: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", COLJA_DISABLE_PROGRESS="1")
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(mb), kind, str(tmp_path / f"idx-{mb}-{kind}"),
                           str(FIXTURE_MODEL)], capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.parametrize("mb, kind", [(1, "line"), (1, "punct"), (1, "emoji"), (10, "unspaced"), (100, "line")])
def test_huge_text_through_build_add_update_search(tmp_path, mb, kind):
    done = _run(tmp_path, mb, kind)
    assert done.returncode == 0, f"exit {done.returncode} (negative: killed by a signal)\n{done.stderr[-3000:]}"
    last = done.stdout.strip().splitlines()[-1]
    # 3 hits; TruncationWarning for build, add, update; the query is cut to its length as before
    assert last.startswith("OK 3 [True, True, True"), last


def test_text_pieces_cover_the_text_and_respect_the_size():
    text = ("日本語の文です。" * 20_000) + ("x" * 200_000) + "😀" * 10
    pieces = text_pieces(text)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= MECAB_PIECE_CHARS for p in pieces)
    assert pieces[0].endswith("。")  # cut at a sentence end where there is one
    assert text_pieces("") == [""] and text_pieces("短い") == ["短い"]


def test_count_tokens_of_a_long_text_matches_the_sum_of_its_sentences(_fixture_model):
    sentence = "東京都は日本の首都です。"
    n = _fixture_model.count_tokens(sentence)
    assert n > 0
    assert _fixture_model.count_tokens(sentence * 10_000) == n * 10_000
