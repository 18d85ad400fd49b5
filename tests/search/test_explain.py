"""``explain``: the MaxSim alignment of a query with one passage, token by token."""

from __future__ import annotations

import pytest
import torch

from colja import InMemoryIndex, Index, UnknownDocumentError
from colja.model.tokens import align_pieces, document_tokens, query_tokens

TEXTS = ["東京は日本の首都です。人口は約1400万人！", "ＡＢＣ abc ｶﾀｶﾅ 🍣 富士山は、日本一高い山。", "", "短い"]
QUERY = "日本一高い山は？"


@pytest.mark.parametrize("text", TEXTS + ["ｱﾞ２０２０年、Ｔｏｋｙｏ！！" * 3, "😀" * 5])
def test_one_token_per_stored_vector(_fixture_model, text):
    tokens = document_tokens(_fixture_model, text)
    assert len(tokens) == _fixture_model.encode_documents([text])[0].shape[0]
    assert [t.token for t in tokens[:2]] == ["[CLS]", "[D]"] and tokens[-1].token == "[SEP]"
    for t in tokens:
        if t.start is not None:
            assert 0 <= t.start < t.end <= len(text)


def test_query_tokens_cover_every_query_vector(_fixture_model):
    tokens = query_tokens(_fixture_model, QUERY)
    assert len(tokens) == _fixture_model.encode_queries([QUERY]).shape[1] == 32
    assert [t.token for t in tokens[:4]] == ["[CLS]", "[Q]", "日本", "一"] and tokens[-1].token == "[MASK]"
    assert QUERY[tokens[2].start:tokens[2].end] == "日本"


def test_pieces_map_back_to_full_width_text():
    spans = align_pieces("ＡＢＣ abc ｶﾀｶﾅ 🍣 富士", ["ABC", "ab", "##c", "カタカナ", "[UNK]", "富士"])
    assert spans == [(0, 3), (4, 6), (6, 7), (8, 12), (13, 14), (15, 17)]


@pytest.fixture(scope="module")
def indexes(_fixture_model, tmp_path_factory):
    ids = [f"文書{i}" for i in range(len(TEXTS))]
    disk = Index.build(TEXTS, tmp_path_factory.mktemp("explain") / "i", model=_fixture_model, doc_ids=ids, nbits=4)
    return disk, InMemoryIndex.build(TEXTS, model=_fixture_model, doc_ids=ids)


@pytest.mark.parametrize("which", [0, 1])
def test_scores_add_up_to_the_exact_maxsim_score(indexes, which):
    index = indexes[which]
    options = {"exhaustive": True} if isinstance(index, Index) else {}
    for hit in index.search(QUERY, k=4, **options):
        e = index.explain(QUERY, hit.doc_id)
        assert e.doc_id == hit.doc_id and e.text == hit.text
        assert e.score == pytest.approx(hit.score, rel=1e-5, abs=1e-4)
        assert len(e.matches) == 32
        for m in e.matches:
            assert e.passage_tokens[m.passage_index].token == m.passage_token
            if m.start is not None:
                assert hit.text[m.start:m.end]


def test_an_exact_word_matches_itself(indexes):
    e = indexes[1].explain(QUERY, "文書1")
    by_query = {m.query_token: m for m in e.matches}
    assert e.text[by_query["日本"].start:by_query["日本"].end] == "日本"


@pytest.mark.parametrize("which", [0, 1])
def test_bad_input(indexes, which):
    index = indexes[which]
    with pytest.raises(UnknownDocumentError):
        index.explain(QUERY, "ない")
    with pytest.raises(TypeError, match="doc_id must be a str"):
        index.explain(QUERY, 3)
    with pytest.raises(TypeError, match="query must be a str"):
        index.explain(["a"], "文書1")
