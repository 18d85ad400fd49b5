"""colja's encoder against the reference implementation's outputs (colbert-ai 0.2.22)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURE_REFERENCE

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def reference():
    texts = json.loads((FIXTURE_REFERENCE / "texts.json").read_text(encoding="utf-8"))
    arrays = {name: np.load(FIXTURE_REFERENCE / f"{name}.npy") for name in (
        "query_input_ids", "query_attention_mask", "query_embeddings", "doc_embeddings", "doclens", "scores")}
    return texts, arrays


def test_query_token_ids_and_mask_are_identical(fixture_model, reference):
    texts, ref = reference
    ids, mask = fixture_model.tokenize_queries(texts["queries"])
    np.testing.assert_array_equal(ids.numpy(), ref["query_input_ids"])
    np.testing.assert_array_equal(mask.numpy(), ref["query_attention_mask"])
    assert (ids[:, 1] == 5).all()  # [unused0] at position 1


def test_query_vectors_match(fixture_model, reference):
    texts, ref = reference
    Q = fixture_model.encode_queries(texts["queries"], batch_size=7)
    diff = np.abs(Q.numpy() - ref["query_embeddings"])
    print("query max/mean abs diff", diff.max(), diff.mean())
    assert Q.shape == ref["query_embeddings"].shape
    assert diff.max() < 1e-5


def test_document_vectors_and_doclens_match(fixture_model, reference):
    texts, ref = reference
    flat, doclens = fixture_model.encode_documents(texts["documents"], batch_size=8, return_flat=True)
    np.testing.assert_array_equal(doclens.numpy(), ref["doclens"])
    diff = np.abs(flat.numpy() - ref["doc_embeddings"])
    print("doc max/mean abs diff", diff.max(), diff.mean())
    assert diff.max() < 1e-5


def test_score_matrix_matches(fixture_model, reference):
    texts, ref = reference
    scores = fixture_model.score(texts["queries"], texts["documents"])
    diff = np.abs(scores.numpy() - ref["scores"])
    print("score max abs diff", diff.max())
    assert diff.max() < 1e-4


def test_length_bucketing_does_not_change_vectors(fixture_model, reference):
    texts, _ = reference
    bucketed = fixture_model.encode_documents(texts["documents"], batch_size=5)
    in_order = fixture_model.encode_documents(texts["documents"], batch_size=5, sort_by_length=False)
    for a, b in zip(bucketed, in_order):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
