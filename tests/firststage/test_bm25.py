"""BM25Retriever: reference numbers on shared data, search edge cases, save/load."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from colja.errors import IndexExistsError, IndexFormatError, IndexNotFoundError

pytest.importorskip("bm25s")

from colja.eval import evaluate, load_beir  # noqa: E402
from colja.firststage import Ranking, BM25Retriever, passage_text  # noqa: E402

SHARED = Path(os.environ.get("COLJA_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
DATA = SHARED / "data"
METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10")

DOCS = [
    "東京は日本の首都です。",
    "大阪は食の都として知られています。",
    "ＴＯＫＹＯ　ｽｶｲﾂﾘｰは東京の電波塔です🗼",
    "",
    "富士山は日本で一番高い山です。",
    "。、！？",
    "京都には多くの寺があります。",
    "東京は日本の首都です。",  # duplicate of pid 0: ties break by the lower pid
]


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return BM25Retriever.build(DOCS, show_progress=False)


def _reference(name: str) -> dict:
    rows = json.loads((DATA / "bm25_baseline.json").read_text(encoding="utf-8"))
    return next(r for r in rows if r["dir"].endswith("/" + name))


def _reproduce(name: str) -> tuple[dict, dict]:
    folder = DATA / name
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    data = load_beir(folder)
    bm25 = BM25Retriever.build(data.passages(), show_progress=False)
    qids = list(data.queries)
    hits = bm25.search_batch([data.queries[q] for q in qids], k=10)
    ids = data.doc_ids
    run = {q: {ids[p]: float(s) for p, s in zip(h.pids, h.scores)} for q, h in zip(qids, hits)}
    return evaluate(run, data.qrels, METRICS), _reference(name)


# Full sets (4,420 and 3,014 queries) take about 1-2 s each on one core, so they run by default.
@pytest.mark.parametrize("name", ["jsquad-dev", "jaquad-dev"])
def test_reproduces_reference_bm25(name: str):
    got, ref = _reproduce(name)
    for m in METRICS:
        assert got[m] == pytest.approx(ref[m], abs=0.002), (m, got[m], ref[m])


@pytest.mark.slow
def test_reproduces_reference_bm25_large():
    got, ref = _reproduce("jaquad-dev-large")
    for m in METRICS:
        assert got[m] == pytest.approx(ref[m], abs=0.002), (m, got[m], ref[m])


# --------------------------------------------------------------------- search
def test_search_basics(bm25: BM25Retriever):
    hits = bm25.search("日本の首都は？", k=3)
    assert isinstance(hits, Ranking)
    assert hits.pids.dtype == np.int64 and hits.scores.dtype == np.float32
    assert hits.pids.tolist()[:2] == [0, 7]  # identical docs tie: lower pid first
    assert hits.scores[0] == hits.scores[1]
    assert np.all(np.diff(hits.scores) <= 0)
    pids, scores = hits  # unpacks like a tuple
    assert len(pids) == len(scores) == 3
    assert len(bm25) == len(DOCS)
    assert "num_docs=8" in repr(bm25)


def test_width_and_case_normalization(bm25: BM25Retriever):
    assert bm25.search("tokyo スカイツリー", k=1).pids.tolist() == [2]
    assert bm25.search("ＴＯＫＹＯ　ｽｶｲﾂﾘｰ", k=1).pids.tolist() == [2]


@pytest.mark.parametrize("query", ["", "   ", "。、？", "🗼😀", "ｘｙｚｚｙ　ｑｑｑ ぬぬぬ"])
def test_queries_without_known_words_give_empty_results(bm25: BM25Retriever, query: str):
    hits = bm25.search(query, k=5)
    assert hits.pids.shape == (0,) and hits.scores.shape == (0,)
    assert hits.pids.dtype == np.int64 and hits.scores.dtype == np.float32


def test_k_larger_than_corpus_returns_every_matching_doc(bm25: BM25Retriever):
    hits = bm25.search("東京 大阪 富士山 京都", k=1000)
    assert sorted(hits.pids.tolist()) == [0, 1, 2, 4, 6, 7]  # the rest share no word: score 0, left out
    scores = bm25.get_scores("東京 大阪 富士山 京都")
    assert scores.shape == (len(DOCS),) and scores.dtype == np.float32
    np.testing.assert_array_equal(np.sort(scores[hits.pids])[::-1], hits.scores)
    assert bm25.search("東京", k=0).pids.size == 0


def test_top_k_is_deterministic_at_the_cut(bm25: BM25Retriever):
    # pids 0 and 7 tie; with k=1 the lower pid must win every time
    assert all(bm25.search("首都", k=1).pids.tolist() == [0] for _ in range(5))


def test_search_batch_and_threads(bm25: BM25Retriever):
    queries = ["日本の首都", "食の都", "高い山", "", "寺"] * 10
    batch = bm25.search_batch(queries, k=3)
    single = [bm25.search(q, k=3) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: bm25.search(q, k=3), queries))
    for a, b, c in zip(batch, single, threaded):
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.pids, c.pids)
        np.testing.assert_array_equal(a.scores, c.scores)


def test_bad_arguments(bm25: BM25Retriever):
    with pytest.raises(ValueError, match="non-negative int"):
        bm25.search("東京", k=-1)
    with pytest.raises(TypeError, match="use search_batch"):
        bm25.search(["東京"], k=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        bm25.search_batch("東京", k=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown BM25 method 'okapi'; choose one of lucene"):
        BM25Retriever.build(["a"], method="okapi")
    with pytest.raises(ValueError, match="at least one text"):
        BM25Retriever.build([])
    with pytest.raises(ValueError, match="none of the 3 texts has a word"):
        BM25Retriever.build(["", "。", "🗼"])


@pytest.mark.parametrize("method", ["lucene", "robertson", "bm25+"])
def test_scores_equal_bm25s_on_word_lists(bm25: BM25Retriever, method: str):
    """Same scores as bm25s indexing the MeCab word lists itself (colja feeds it word ids)."""
    import bm25s

    ours = bm25 if method == "lucene" else BM25Retriever.build(DOCS, method=method)
    ref = bm25s.BM25(method=method)
    ref.index(ours.tokenizer.tokenize_many(DOCS), show_progress=False)
    for q in ["日本の首都は？", "東京 大阪 富士山 京都", "高い山の寺"]:
        words = ours.tokenizer.tokenize(q)
        np.testing.assert_allclose(ours.get_scores(q), ref.get_scores(words), rtol=1e-6)


def test_parameters_change_scores():
    a = BM25Retriever.build(DOCS, k1=1.5, b=0.75)
    b = BM25Retriever.build(DOCS, k1=0.9, b=0.4, method="robertson")
    assert (b.k1, b.b, b.method) == (0.9, 0.4, "robertson")
    assert not np.allclose(a.get_scores("東京の首都"), b.get_scores("東京の首都"))


def test_passage_text():
    assert passage_text("東京", "首都です。") == "東京\n首都です。"
    assert passage_text("", "首都です。") == "首都です。"
    assert passage_text(None, "首都です。") == "首都です。"


# ------------------------------------------------------------------ save/load
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(bm25: BM25Retriever, tmp_path: Path, mmap: bool):
    folder = bm25.save(tmp_path / "bm25")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["colja_bm25.json", "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
                     "params.index.json", "vocab.index.json"]
    for p in folder.glob("*.npy"):
        assert np.load(p, allow_pickle=False).dtype != object  # plain arrays, no pickle inside
    manifest = json.loads((folder / "colja_bm25.json").read_text(encoding="utf-8"))
    assert manifest["num_docs"] == len(DOCS) and manifest["method"] == "lucene" and manifest["format_version"] == 1

    loaded = BM25Retriever.load(folder, mmap=mmap)
    assert len(loaded) == len(bm25) and (loaded.k1, loaded.b) == (bm25.k1, bm25.b)
    for q in ["日本の首都は？", "tokyo スカイツリー", "食の都", "", "🗼"]:
        a, b = bm25.search(q, k=10), loaded.search(q, k=10)
        np.testing.assert_array_equal(a.pids, b.pids)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_save_overwrites_only_bm25_indexes(bm25: BM25Retriever, tmp_path: Path):
    folder = tmp_path / "idx"
    bm25.save(folder)
    other = BM25Retriever.build(["別の文書です"])
    other.save(folder)  # replaces the old index
    assert len(BM25Retriever.load(folder)) == 1
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        bm25.save(folder, overwrite=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(IndexExistsError, match="not a colja BM25 index"):
        bm25.save(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "idx"]  # no temp folders left


def test_load_errors(bm25: BM25Retriever, tmp_path: Path):
    with pytest.raises(IndexNotFoundError, match="colja_bm25.json is missing"):
        BM25Retriever.load(tmp_path / "missing")
    folder = bm25.save(tmp_path / "idx")

    manifest = json.loads((folder / "colja_bm25.json").read_text(encoding="utf-8"))
    (folder / "colja_bm25.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99"):
        BM25Retriever.load(folder)
    (folder / "colja_bm25.json").write_text(json.dumps(manifest))

    data = (folder / "indices.csc.index.npy").read_bytes()
    (folder / "indices.csc.index.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="could not be read|corrupted"):
        BM25Retriever.load(folder)

    (folder / "indices.csc.index.npy").unlink()
    with pytest.raises(IndexFormatError, match="indices.csc.index.npy is missing"):
        BM25Retriever.load(folder)
