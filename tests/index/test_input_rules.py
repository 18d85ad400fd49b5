"""Input rules shared by build, add and update: split-passage ids, positions in list errors, finite settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colja import CollectionError, Index
from colja.search.settings import SearchSettings

from .index_helpers import FakeModel, clustered_docs


@pytest.fixture()
def index(_fixture_model, tmp_path):
    texts = ["東京の文。大阪の文。", "京都の寺。", "ｶﾀｶﾅ😀"] * 4
    return Index.build(texts, tmp_path / "idx", model=_fixture_model, doc_ids=[f"d{i}" for i in range(12)])


def test_split_ids_are_reserved_in_build_add_and_update(index, tmp_path):
    with pytest.raises(CollectionError, match=r"doc_ids\[1\] = 's#0' ends in '#<number>'"):
        Index.build(["あ。い。", "う。"], tmp_path / "b", model=FakeModel(), doc_ids=["s", "s#0"], split=True)
    before = index.generation.name
    with pytest.raises(CollectionError, match=r"doc_ids\[1\] = 's#0'"):
        index.add(["長い文。二つ目の文。", "短い"], doc_ids=["s", "s#0"], split=True)
    with pytest.raises(CollectionError, match=r"doc_ids\[0\] = 'd1#12'"):
        index.add(["あ"], doc_ids=["d1#12"], split=True)
    assert index.generation.name == before and len(index) == 12
    index.add(["長い文。二つ目の文。"], doc_ids=["s"], split=True)
    assert index.delete(["s#0"]) == 1  # exactly the passage, nothing else
    # without split, such an id is an ordinary id; splitting it on update is refused
    index.add(["普通"], doc_ids=["x#1"])
    with pytest.raises(CollectionError, match=r"doc_ids\[0\] = 'x#1'"):
        index.update(["x#1"], ["長い文。二つ目の文。"], split=True)
    assert index.delete(["x#1"]) == 1


def test_list_errors_name_the_position(tmp_path):
    docs = clustered_docs(n_docs=3, seed=1)
    with pytest.raises(CollectionError, match=r"doc_embeddings\[1\] is NoneType"):
        Index.from_embeddings([docs[0], None, docs[2]], tmp_path / "a")
    with pytest.raises(CollectionError, match=r"doc_embeddings\[2\] is str"):
        Index.from_embeddings([docs[0], docs[1], "東京"], tmp_path / "b")
    with pytest.raises(CollectionError, match=r"doc_embeddings\[0\] is not a numeric"):
        Index.from_embeddings([[[1.0, 2.0], [3.0]]], tmp_path / "c")
    with pytest.raises(CollectionError, match=r"collection\[1\] must be a str"):
        Index.build(["あ", None], tmp_path / "d", model=FakeModel())
    assert not any((tmp_path / n).exists() for n in "abcd")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "0.5"])
def test_centroid_score_threshold_must_be_finite(bad, index):
    with pytest.raises(ValueError, match="centroid_score_threshold must be a finite number"):
        SearchSettings(centroid_score_threshold=bad)
    with pytest.raises(ValueError, match="centroid_score_threshold"):
        index.search("東京", centroid_score_threshold=bad)
    assert np.isfinite(SearchSettings(centroid_score_threshold=0.4).centroid_score_threshold)
