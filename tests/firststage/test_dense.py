"""DenseRetriever: right passages, prefixes, HNSW switch, add, save/load, the missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from colja.errors import IndexExistsError, IndexFormatError, IndexNotFoundError, MissingDependencyError, ModelLoadError
from colja.firststage import DenseRetriever, FirstStage, Ranking, StaticRetriever, load_first_stage
from colja.firststage.dense import hub_id_of, resolve_prefixes

DOCS = [
    "東京は日本の首都です。",
    "大阪は食の都として知られています。",
    "富士山は日本で一番高い山です。",
    "京都には多くの寺があります。",
    "北海道は冬に雪がたくさん降ります。",
    "沖縄の海はとても青くてきれいです。",
    "名古屋城は金のしゃちほこで有名です。",
    "奈良公園には鹿がたくさんいます。",
]
PROMPTS = {"query": "クエリ: ", "document": "文章: "}  # what the tiny model's config declares (conftest)

MISSING = 'Dense and static first stages need the optional dependency sentence-transformers: pip install "colja[dense]"'


def _no_prefix(st_model_path, st_model, **kw) -> DenseRetriever:
    return DenseRetriever(st_model_path, model=st_model, query_prefix="", document_prefix="", **kw)


@pytest.fixture(scope="module")
def dense(st_model_path, st_model) -> DenseRetriever:
    r = _no_prefix(st_model_path, st_model)
    r.add(DOCS)
    return r


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --------------------------------------------------------------------- search
def test_queries_equal_to_passages_find_them(dense: DenseRetriever):
    assert isinstance(dense, FirstStage) and dense.name == "dense" and not dense.rebuilds_on_add
    assert len(dense) == len(DOCS) and dense.dim == 32 and dense.kind == "flat"
    for pid, text in enumerate(DOCS):
        hits = dense.search(text, k=3)
        assert isinstance(hits, Ranking)
        assert hits.pids.dtype == np.int64 and hits.scores.dtype == np.float32
        assert hits.pids[0] == pid and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
        assert np.all(np.diff(hits.scores) <= 0)
    assert "num_docs=8" in repr(dense)


def test_k_edge_cases_and_bad_arguments(dense: DenseRetriever):
    assert dense.search(DOCS[0], k=100).pids.shape == (len(DOCS),)  # k > n: every passage
    assert dense.search(DOCS[0], k=0).pids.size == 0
    with pytest.raises(ValueError, match="non-negative int"):
        dense.search(DOCS[0], k=-1)
    with pytest.raises(TypeError, match="use search_batch"):
        dense.search([DOCS[0]], k=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        dense.search_batch(DOCS[0], k=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one text"):
        DenseRetriever.build([], "unused")
    with pytest.raises(ValueError, match="truncate_dim must be a positive int"):
        DenseRetriever("unused", truncate_dim=0)
    with pytest.raises(ValueError, match="hnsw_threshold must be"):
        DenseRetriever("unused", hnsw_threshold=-1)


def test_search_batch_matches_single_searches_and_threads(dense: DenseRetriever):
    queries = DOCS + ["日本の山", "寺と鹿"]
    batch = dense.search_batch(queries, k=4)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: dense.search(q, k=4), queries))
    for a, b in zip(batch, threaded):
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert dense.search_batch([], k=3) == []


def test_search_vectors_and_encode(dense: DenseRetriever):
    q = dense.encode_queries(DOCS[:2])
    assert q.shape == (2, 32) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    hits = dense.search_vectors(q, k=1)
    assert [h.pids.tolist() for h in hits] == [[0], [1]]
    assert dense.search_vectors(np.zeros((1, 32), np.float32), k=3)[0].pids.size == 0  # no direction, no hits


# ------------------------------------------------------------------- prefixes
def test_prefixes_come_from_the_model_prompts_and_reach_encode(st_model_path, st_model, monkeypatch):
    r = DenseRetriever(st_model_path, model=st_model)
    assert (r.query_prefix, r.document_prefix) == (PROMPTS["query"], PROMPTS["document"])
    calls = []
    for role in ("query", "document"):
        real = getattr(st_model, f"encode_{role}")

        def spy(texts, *a, _role=role, _real=real, **kw):
            calls.append((_role, list(texts), kw.get("prompt")))
            return _real(texts, *a, **kw)

        monkeypatch.setattr(st_model, f"encode_{role}", spy)
    r.add(DOCS[:3])
    hits = r.search(DOCS[1], k=3)
    assert calls == [("document", DOCS[:3], "文章: "), ("query", [DOCS[1]], "クエリ: ")]
    # and the prefix really is part of what the model read
    expected = _normalized(st_model.encode(["クエリ: " + DOCS[1]], prompt=""))
    np.testing.assert_allclose(r.encode_queries([DOCS[1]]), expected, atol=1e-5)
    docs = _normalized(st_model.encode(["文章: " + d for d in DOCS[:3]], prompt=""))
    np.testing.assert_allclose(np.sort(docs @ expected[0])[::-1], hits.scores, atol=1e-5)


def test_explicit_prefixes_win(st_model_path, st_model):
    r = DenseRetriever(st_model_path, model=st_model, query_prefix="Q: ", document_prefix="")
    assert (r.query_prefix, r.document_prefix) == ("Q: ", "")
    np.testing.assert_allclose(r.encode_documents([DOCS[0]]), _normalized(st_model.encode([DOCS[0]], prompt="")),
                               atol=1e-5)


def test_known_prefixes_for_models_that_do_not_declare_them(no_prompt_model_path):
    assert hub_id_of(str(no_prompt_model_path)) == "pkshatech/GLuCoSE-base-ja-v2"
    r = DenseRetriever(no_prompt_model_path, device="cpu")
    assert (r.query_prefix, r.document_prefix) == ("query: ", "passage: ")
    assert r._resolved_prefixes()[2] == {"query": "known prefixes", "document": "known prefixes"}


def test_resolve_prefixes_rules():
    glucose = "pkshatech/GLuCoSE-base-ja-v2"
    assert resolve_prefixes(glucose, {}) == ("query: ", "passage: ", {"query": "known prefixes",
                                                                     "document": "known prefixes"})
    # prompts declared by the model win over the table; "" counts as undeclared
    assert resolve_prefixes(glucose, {"query": "Q:", "passage": "P:"})[:2] == ("Q:", "P:")
    assert resolve_prefixes(glucose, {"query": "", "document": ""})[:2] == ("query: ", "passage: ")
    assert resolve_prefixes("x/y", {"corpus": "C:", "query": "Q:"})[:2] == ("Q:", "C:")
    assert resolve_prefixes("x/y", {"document": "D:", "passage": "P:"})[:2] == ("", "D:")
    # arguments win over everything, per side
    q, d, src = resolve_prefixes(glucose, {"query": "Q:"}, query_prefix="", document_prefix=None)
    assert (q, d, src) == ("", "passage: ", {"query": "argument", "document": "known prefixes"})
    assert resolve_prefixes("cl-nagoya/sup-simcse-ja-base", None) == ("", "", {"query": "none", "document": "none"})
    assert hub_id_of("cl-nagoya/sup-simcse-ja-base") == "cl-nagoya/sup-simcse-ja-base"


# ----------------------------------------------------------------- HNSW / add
def test_hnsw_above_threshold_gives_the_same_top1(st_model_path, st_model, dense: DenseRetriever):
    hnsw = _no_prefix(st_model_path, st_model, hnsw_threshold=4)
    hnsw.add(DOCS)
    assert hnsw.kind == "hnsw" and dense.kind == "flat"
    for text in DOCS + ["日本の山", "寺と鹿"]:
        a, b = dense.search(text, k=3), hnsw.search(text, k=3)
        assert a.pids[0] == b.pids[0]
        assert a.scores[0] == pytest.approx(b.scores[0], abs=1e-5)


def test_add_continues_pids_and_switches_to_hnsw(st_model_path, st_model, dense: DenseRetriever):
    r = _no_prefix(st_model_path, st_model, hnsw_threshold=6)
    assert len(r) == 0 and r.search(DOCS[0], k=3).pids.size == 0
    np.testing.assert_array_equal(r.add(DOCS[:5]), np.arange(5))
    assert r.kind == "flat"
    np.testing.assert_array_equal(r.add(DOCS[5:]), np.arange(5, 8))
    assert r.kind == "hnsw" and len(r) == 8
    assert r.add([]).size == 0
    np.testing.assert_allclose(r._vectors.vectors(), dense._vectors.vectors(), atol=1e-5)
    for pid, text in enumerate(DOCS):
        assert r.search(text, k=1).pids.tolist() == [pid]


def test_add_is_all_or_nothing(st_model_path, st_model, monkeypatch):
    r = _no_prefix(st_model_path, st_model, batch_size=1)  # chunks of 16 texts
    r.add(DOCS)
    real, calls = st_model.encode_document, []

    def failing(texts, *a, **kw):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(texts, *a, **kw)

    monkeypatch.setattr(st_model, "encode_document", failing)
    with pytest.raises(KeyboardInterrupt):
        r.add(DOCS * 3)
    assert calls == [16, 8] and len(r) == 8  # the first chunk was not kept
    assert r.search(DOCS[7], k=1).pids.tolist() == [7]


def test_truncate_dim_slices_and_renormalizes(st_model_path, st_model):
    r = _no_prefix(st_model_path, st_model, truncate_dim=16)
    r.add(DOCS)
    full = st_model.encode(DOCS, prompt="")
    assert r.dim == 16
    np.testing.assert_allclose(r._vectors.vectors(), _normalized(full[:, :16]), atol=1e-5)
    assert r.search(DOCS[3], k=1).pids.tolist() == [3]
    with pytest.raises(ValueError, match="larger than the 32 dimensions"):
        _no_prefix(st_model_path, st_model, truncate_dim=64).add(DOCS[:1])


def test_raw_inner_product_when_not_normalized(st_model_path, st_model):
    r = _no_prefix(st_model_path, st_model, normalize=False)
    r.add(DOCS[:2])
    np.testing.assert_allclose(r._vectors.vectors(), st_model.encode(DOCS[:2], prompt=""), atol=1e-5)


# ------------------------------------------------------------------ save/load
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(dense: DenseRetriever, st_model_path, tmp_path: Path, mmap: bool):
    folder = dense.save(tmp_path / "dense")
    assert sorted(p.name for p in folder.iterdir()) == ["colja_dense.json", "vectors.faiss"]
    manifest = json.loads((folder / "colja_dense.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "colja-dense" and manifest["format_version"] == 1
    assert manifest["num_docs"] == 8 and manifest["dim"] == 32
    assert manifest["model"]["name_or_path"] == str(Path(st_model_path).resolve())
    assert manifest["model"]["prefix_source"] == {"query": "argument", "document": "argument"}
    assert manifest["vector_index"]["kind"] == "flat" and manifest["vector_index"]["hnsw_threshold"] == 100_000
    pooling = [m for m in manifest["model"]["modules"] if m["type"].endswith("Pooling")]
    assert pooling and pooling[0]["config"]["pooling_mode"] == "mean"

    loaded = DenseRetriever.load(folder, mmap=mmap, device="cpu")
    assert loaded._model is None  # lazily loaded: not needed to search with vectors
    assert len(loaded) == 8 and loaded.kind == "flat" and (loaded.query_prefix, loaded.document_prefix) == ("", "")
    q = dense.encode_queries(DOCS)
    for a, b in zip(dense.search_vectors(q, k=4), loaded.search_vectors(q, k=4)):
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert loaded.search(DOCS[5], k=1).pids.tolist() == [5]  # loads the saved model folder
    assert loaded._model is not None
    np.testing.assert_array_equal(loaded.add(["新しい文書です。"]), [8])  # a mapped store is copied first
    assert loaded.search("新しい文書です。", k=1).pids.tolist() == [8]
    assert isinstance(load_first_stage(folder), DenseRetriever)


def test_save_load_hnsw_and_model_override(st_model_path, st_model, tmp_path: Path):
    r = _no_prefix(st_model_path, st_model, hnsw_threshold=2, ef_search=16)
    r.add(DOCS)
    folder = r.save(tmp_path / "h")
    loaded = DenseRetriever.load(folder, mmap=True, model=st_model)
    assert loaded.kind == "hnsw" and loaded.vector_settings.ef_search == 16 and loaded._model is st_model
    assert loaded.search(DOCS[2], k=1).pids.tolist() == [2]


def test_save_refuses_other_folders(dense: DenseRetriever, tmp_path: Path):
    folder = dense.save(tmp_path / "idx")
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        dense.save(folder, overwrite=False)
    dense.save(folder)  # replaces
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(IndexExistsError, match="not a colja dense first stage"):
        dense.save(foreign)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "idx"]  # no temp folders left


def test_load_errors(dense: DenseRetriever, tmp_path: Path):
    with pytest.raises(IndexNotFoundError, match="colja_dense.json is missing"):
        DenseRetriever.load(tmp_path / "missing")
    with pytest.raises(IndexNotFoundError, match="no first stage"):
        load_first_stage(tmp_path)
    folder = dense.save(tmp_path / "idx")
    with pytest.raises(IndexNotFoundError):
        StaticRetriever.load(folder)  # a dense folder is not a static one
    path = folder / "colja_dense.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99"):
        DenseRetriever.load(folder)
    path.write_text(json.dumps({**manifest, "num_docs": 9}))
    with pytest.raises(IndexFormatError, match="inconsistent"):
        DenseRetriever.load(folder)
    path.write_text(json.dumps({**manifest, "model": {}}))
    with pytest.raises(IndexFormatError, match="bad setting"):
        DenseRetriever.load(folder)
    path.write_text(json.dumps(manifest))
    data = (folder / "vectors.faiss").read_bytes()
    (folder / "vectors.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="vectors.faiss could not be read"):
        DenseRetriever.load(folder)
    (folder / "vectors.faiss").unlink()
    with pytest.raises(IndexNotFoundError, match="vectors.faiss is missing"):
        DenseRetriever.load(folder)


def test_a_different_model_is_refused_at_query_time(dense: DenseRetriever, static_model_path, tmp_path: Path):
    folder = dense.save(tmp_path / "idx")
    loaded = DenseRetriever.load(folder, model=str(static_model_path))  # 64-d vectors against 32-d ones
    with pytest.raises(ModelLoadError, match="64-d vectors but this index holds 32-d"):
        loaded.search(DOCS[0], k=1)


def test_missing_model_is_a_model_load_error(tmp_path: Path):
    pytest.importorskip("sentence_transformers")
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="not-a-model"):
        DenseRetriever(empty).add(DOCS[:1])


# -------------------------------------------------------- optional dependency
def test_missing_sentence_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import raise ImportError
    for cls in (DenseRetriever, StaticRetriever):
        with pytest.raises(MissingDependencyError) as info:
            cls.build(DOCS, "some/model")
        assert str(info.value) == MISSING and isinstance(info.value, ImportError)


def test_a_saved_index_loads_without_sentence_transformers(dense: DenseRetriever, tmp_path: Path, monkeypatch):
    folder = dense.save(tmp_path / "idx")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    loaded = DenseRetriever.load(folder)  # vectors load without the extra
    assert loaded.search_vectors(dense.encode_queries(DOCS[:1]), k=1)[0].pids.tolist() == [0]
    with pytest.raises(MissingDependencyError, match=r'pip install "colja\[dense\]"'):
        loaded.search(DOCS[0], k=1)


def test_importing_colja_firststage_imports_neither_sentence_transformers_nor_faiss():
    code = ("import sys, colja.firststage; "
            "bad = [m for m in ('sentence_transformers', 'faiss', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------ the faiss store
def test_vector_index_contract(tmp_path: Path):
    import faiss

    from colja.firststage import VectorIndex, VectorIndexSettings

    x = np.eye(5, 6, dtype=np.float32)
    x[4] = x[1]  # pid 4 duplicates pid 1
    vi = VectorIndex(6)
    vi.add(x)
    scores, pids = vi.search(x[[1, 0]], k=7)
    assert scores.dtype == np.float32 and pids.dtype == np.int64 and pids.shape == (2, 7)
    assert pids[0].tolist() == [1, 4, 0, 2, 3, -1, -1]  # ties by pid, padding -1 / -inf past n
    assert scores[0, :2].tolist() == [1.0, 1.0] and np.all(np.isneginf(scores[:, 5:]))
    with pytest.raises(ValueError, match=r"float32 \[n, 6\]"):
        vi.add(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        vi.search(np.full((1, 6), np.nan, np.float32), k=1)
    with pytest.raises(ValueError, match="unknown vector index setting"):
        VectorIndexSettings.from_dict({"hnsw_treshold": 5})
    faiss.write_index(faiss.IndexFlatL2(6), str(tmp_path / "l2.faiss"))
    with pytest.raises(IndexFormatError, match="IndexFlatL2"):
        VectorIndex.read(tmp_path / "l2.faiss")
