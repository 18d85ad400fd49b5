"""Encoding behaviour on awkward input: types, empties, Japanese edge cases, lengths."""

from __future__ import annotations

import warnings

import pytest
import torch

from colja import TruncationWarning

JAPANESE_EDGE_CASES = [
    "",
    "東京",
    "ＡＢＣ１２３（全角）とABC123(半角)",
    "ｶﾀｶﾅﾊﾝｶｸ",
    "😀🍣🗾 絵文字だけの文も",
    "句読点のない非常に長い一文" * 40,
    "改行を\n含む\n文書。",
    "！？。、「」（）",
]


@pytest.mark.parametrize("bad, position", [(["ok", None], 1), (["ok", "fine", 3], 2), ([b"bytes"], 0)])
def test_non_string_item_names_its_position(fixture_model, bad, position):
    for encode in (fixture_model.encode_queries, fixture_model.encode_documents):
        with pytest.raises(TypeError, match=rf"\[{position}\]"):
            encode(bad)


@pytest.mark.parametrize("bad", [None, "a single string", 42])
def test_non_list_input_is_a_type_error(fixture_model, bad):
    for encode in (fixture_model.encode_queries, fixture_model.encode_documents):
        with pytest.raises(TypeError, match="list of strings"):
            encode(bad)


def test_tuples_and_generators_are_accepted(fixture_model):
    a = fixture_model.encode_queries(("東京", "大阪"))
    b = fixture_model.encode_queries(t for t in ["東京", "大阪"])
    torch.testing.assert_close(a, b)


def test_empty_list_gives_empty_output(fixture_model):
    assert fixture_model.encode_queries([]).shape == (0, 32, 128)
    assert fixture_model.encode_documents([]) == []
    flat, doclens = fixture_model.encode_documents([], return_flat=True)
    assert flat.shape == (0, 128) and doclens.shape == (0,)


def test_japanese_edge_cases_encode(fixture_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        docs = fixture_model.encode_documents(JAPANESE_EDGE_CASES)
    Q = fixture_model.encode_queries(JAPANESE_EDGE_CASES)
    assert Q.shape == (len(JAPANESE_EDGE_CASES), 32, 128)
    torch.testing.assert_close(Q.norm(dim=-1), torch.ones(Q.shape[:2]))
    assert docs[0].shape == (3, 128)  # empty string: [CLS], marker, [SEP]
    assert docs[5].shape[0] == fixture_model.doc_maxlen  # long unspaced sentence is cut
    # only punctuation: NFKC turns ！？（） into ASCII, which the skiplist drops; 。、「」 stay (as in the reference)
    assert docs[7].shape == (3 + 4, 128)
    for d in docs:
        assert torch.isfinite(d).all()
        torch.testing.assert_close(d.norm(dim=-1), torch.ones(d.shape[0]))


def test_full_width_and_half_width_normalise_alike(fixture_model):
    # the tokenizer applies NFKC, so full-width ASCII and half-width katakana map to the same ids
    a, _ = fixture_model.tokenize_queries(["ＡＢＣ１２３", "ｶﾀｶﾅ"])
    b, _ = fixture_model.tokenize_queries(["ABC123", "カタカナ"])
    assert torch.equal(a, b)


def test_truncation_warns_once_per_call(fixture_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fixture_model.encode_documents(["長い" * 200, "もっと長い" * 200, "短い"])
    messages = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(messages) == 1
    assert "2 of 3" in str(messages[0].message) and "split" in str(messages[0].message)


def test_bad_batch_size(fixture_model):
    with pytest.raises(ValueError, match="batch_size"):
        fixture_model.encode_queries(["a"], batch_size=0)


def test_dynamic_query_length_rounds_to_multiples_of_32(fixture_model):
    short, long_ = "東京", "東京都の人口と面積について詳しく教えてください。" * 4
    fixed = fixture_model.encode_queries([short, long_])
    assert fixed.shape == (2, 32, 128)
    ids, _ = fixture_model.tokenize_queries([long_], dynamic_length=True)
    assert ids.shape[1] % 32 == 0 and ids.shape[1] > 32
    dynamic = fixture_model.encode_queries([short, long_], dynamic_length=True)
    assert dynamic.shape[1] == ids.shape[1]
    # the short query keeps 32 real vectors and is zero-padded beyond them
    torch.testing.assert_close(dynamic[0, :32], fixed[0], rtol=0, atol=1e-5)
    assert dynamic[0, 32:].abs().sum() == 0
    # a query's vectors do not depend on the batch it was encoded in
    alone = fixture_model.encode_queries([long_], dynamic_length=True)
    torch.testing.assert_close(alone[0], dynamic[1], rtol=0, atol=1e-5)


def test_dynamic_query_length_is_capped_below_max_positions(fixture_model):
    ids, _ = fixture_model.tokenize_queries(["東京" * 2000], dynamic_length=True)
    assert ids.shape[1] <= fixture_model.max_positions - 2
    Q = fixture_model.encode_queries(["東京" * 2000], dynamic_length=True)
    assert torch.isfinite(Q).all()


def test_dynamic_length_can_be_the_model_default(fixture_model_path):
    from colja import ColBERT

    model = ColBERT.from_pretrained(fixture_model_path, device="cpu", dynamic_query_maxlen=True)
    assert model.encode_queries(["東京" * 40]).shape[1] == 64


def test_attend_to_mask_tokens_changes_the_mask(fixture_model_path):
    from colja import ColBERT

    model = ColBERT.from_pretrained(fixture_model_path, device="cpu", attend_to_mask_tokens=True)
    _, mask = model.tokenize_queries(["東京"])
    assert mask.sum() == 32
