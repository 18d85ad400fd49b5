"""StaticRetriever: StaticEmbedding models, remote-code (SSE-like) models, Matryoshka truncation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from colja.errors import ModelLoadError
from colja.firststage import DenseRetriever, FirstStage, StaticRetriever, load_first_stage

pytest.importorskip("sentence_transformers")

DOCS = [
    "東京は日本の首都です。",
    "大阪は食の都として知られています。",
    "富士山は日本で一番高い山です。",
    "京都には多くの寺があります。",
    "北海道は冬に雪がたくさん降ります。",
    "沖縄の海はとても青くてきれいです。",
    "東京は日本の首都です。",  # duplicate of pid 0: ties break by the lower pid
]
SSE_ID = "RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja"


@pytest.fixture(scope="module")
def static(static_model_path) -> StaticRetriever:
    return StaticRetriever.build(DOCS, static_model_path)


def test_static_embedding_model_finds_the_passages(static: StaticRetriever):
    assert isinstance(static, FirstStage) and static.name == "static"
    assert type(static.model[0]).__name__ == "StaticEmbedding"
    assert static.device == "cpu" and static.batch_size == StaticRetriever.DEFAULT_BATCH_SIZE
    assert len(static) == len(DOCS) and static.dim == 64
    assert (static.query_prefix, static.document_prefix) == ("", "")  # the model declares none
    for pid, text in enumerate(DOCS[:6]):
        hits = static.search(text, k=3)
        assert hits.pids[0] == pid and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    hits = static.search(DOCS[0], k=2)
    assert hits.pids.tolist() == [0, 6] and hits.scores[0] == hits.scores[1]  # exact tie: lower pid first
    assert all(static.search(DOCS[0], k=1).pids.tolist() == [0] for _ in range(5))


def test_vectors_are_the_normalized_token_mean(static: StaticRetriever):
    module = static.model[0]
    ids = module.tokenizer.encode(DOCS[2], add_special_tokens=False).ids
    mean = module.embedding.weight.detach().numpy()[ids].mean(axis=0)
    np.testing.assert_allclose(static.encode_documents([DOCS[2]])[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_an_empty_query_has_no_hits(static: StaticRetriever):
    assert static.search("", k=3).pids.size == 0  # no token: an all-zero vector
    assert [h.pids.size for h in static.search_batch(["", DOCS[1]], k=2)] == [0, 2]


def test_save_load_round_trip(static: StaticRetriever, tmp_path: Path):
    folder = static.save(tmp_path / "static")
    assert sorted(p.name for p in folder.iterdir()) == ["colja_static.json", "vectors.faiss"]
    manifest = json.loads((folder / "colja_static.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "colja-static" and manifest["name"] == "static" and manifest["num_docs"] == 7
    assert manifest["model"]["prefix_source"] == {"query": "none", "document": "none"}
    loaded = load_first_stage(folder, mmap=True)
    assert type(loaded) is StaticRetriever and loaded._model is None
    assert loaded.search(DOCS[3], k=1).pids.tolist() == [3] and loaded.device == "cpu"
    with pytest.raises(Exception, match="colja_dense.json is missing"):
        DenseRetriever.load(folder)


def test_remote_code_needs_trust_remote_code(remote_code_model_path, hf_modules_cache):
    r = StaticRetriever(remote_code_model_path)
    with pytest.raises(ModelLoadError, match=r"tiny_sse\.TinySSE.*trust_remote_code=True"):
        r.add(DOCS)
    # known hub ids are refused before anything is downloaded
    with pytest.raises(ModelLoadError, match="Separable Dynamic Tanh.*trust_remote_code=True"):
        StaticRetriever(SSE_ID).add(DOCS)
    trusted = StaticRetriever.build(DOCS, remote_code_model_path, trust_remote_code=True)
    assert type(trusted.model[0]).__name__ == "TinySSE" and trusted.dim == 64
    for pid, text in enumerate(DOCS[:6]):
        assert trusted.search(text, k=1).pids.tolist() == [pid]


@pytest.mark.parametrize("dim", [32, 16])
def test_matryoshka_truncation_slices_and_renormalizes(remote_code_model_path, hf_modules_cache, dim: int,
                                                       tmp_path: Path):
    full = StaticRetriever(remote_code_model_path, trust_remote_code=True, normalize=False)
    raw = full.encode_documents(DOCS)
    assert raw.shape == (len(DOCS), 64)
    r = StaticRetriever.build(DOCS, remote_code_model_path, trust_remote_code=True, truncate_dim=dim)
    assert r.dim == dim
    expected = raw[:, :dim] / np.linalg.norm(raw[:, :dim], axis=1, keepdims=True)
    np.testing.assert_allclose(r._vectors.vectors(), expected, atol=1e-5)
    np.testing.assert_allclose(r.encode_queries(DOCS[:2]), expected[:2], atol=1e-5)
    assert r.search(DOCS[4], k=1).pids.tolist() == [4]
    saved = r.save(tmp_path / "sse")
    untrusted = StaticRetriever.load(saved)  # the folder's recorded trust is never taken
    assert untrusted.saved_trust_remote_code and not untrusted.trust_remote_code
    loaded = StaticRetriever.load(saved, trust_remote_code=True)
    assert loaded.truncate_dim == dim and loaded.trust_remote_code
    assert loaded.search(DOCS[5], k=1).pids.tolist() == [5]


def test_truncate_dim_outside_the_trained_dims_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="colja.firststage.static"):
        StaticRetriever(SSE_ID, trust_remote_code=True, truncate_dim=100)  # nothing is loaded yet
    assert "512/256/128/64/32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="colja.firststage.static"):
        StaticRetriever(SSE_ID, trust_remote_code=True, truncate_dim=128)
    assert caplog.text == ""
