"""The searchable contract, run against every searchable: same types, same errors, same semantics.

Each new searchable (sharded index, HTTP client) is added to ``SEARCHABLES``. ``client`` is
:class:`colja.Client` talking to a real ``colja serve`` subprocess on a loopback port; ``sharded``
is a :class:`colja.ShardedIndex` of 3 shards searched in threads, ``sharded-ray`` the same with
each shard in a Ray actor on a real local Ray cluster (a head and a worker node).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import colja
from colja import CollectionError, FilterError, Hit, InMemoryIndex, Index, Searchable, SearchResults, UnknownDocumentError
from tests.conftest import DATA
from tests.oracle import maxsim_matrix

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")

N = 60
SEARCHABLES = ["index", "memory", "client", "sharded", "sharded-ray"]


@pytest.fixture(scope="module")
def corpus():
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:N]
    texts = [r["text"] for r in rows]
    ids = [f"文書-{i}" for i in range(N)]
    meta = [{"source": "ウィキ" if i % 3 else "ブログ", "n": i, "題": r.get("title", "")} for i, r in enumerate(rows)]
    return texts, ids, meta


@pytest.fixture(scope="module")
def queries(corpus):
    return ["日本で一番高い山は？", "東京の人口", corpus[0][5][:30], "ＡＢＣ abc ｶﾀｶﾅ 🍣", ""]


def _make(kind: str, model, corpus, tmp_path):
    texts, ids, meta = corpus
    if kind == "index":
        return Index.build(texts, tmp_path / "index", model=model, doc_ids=ids, metadata=meta, nbits=4)
    if kind.startswith("sharded"):
        index = colja.ShardedIndex.build(texts, tmp_path / "sharded", shards=3, model=model, doc_ids=ids,
                                         metadata=meta, nbits=4)
        if kind == "sharded-ray":
            index.close()
            index = colja.ShardedIndex.load(tmp_path / "sharded", model=model, use_ray=True)
        return index
    return InMemoryIndex.build(texts, model=model, doc_ids=ids, metadata=meta)


@pytest.fixture(scope="module")
def server(_fixture_model, corpus, tmp_path_factory):
    """``colja serve`` over two indexes of the corpus: ``contract`` (searched) and ``writable``."""
    from tests.server.harness import running

    root = tmp_path_factory.mktemp("served")
    paths = {name: root / name for name in ("contract", "writable")}
    for name, path in paths.items():
        _make("index", _fixture_model, corpus, path)
    with running({n: p / "index" for n, p in paths.items()}, root) as srv:
        yield srv, {n: p / "index" for n, p in paths.items()}


def _client(request, name: str):
    srv, paths = request.getfixturevalue("server")
    client = colja.Client(srv.url, index=name)
    client.test_index_path = paths[name]  # where the served index lives, to read its vectors
    request.addfinalizer(client.close)
    return client


def _closing(request, searchable):
    if isinstance(searchable, colja.ShardedIndex):
        request.addfinalizer(searchable.close)  # its threads, or its Ray actors
    return searchable


@pytest.fixture(scope="module", params=SEARCHABLES)
def searchable(request, _fixture_model, corpus, tmp_path_factory):
    if request.param == "client":
        return _client(request, "contract")
    if request.param == "sharded-ray":
        request.getfixturevalue("ray_cluster")
    return _closing(request, _make(request.param, _fixture_model, corpus, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(params=SEARCHABLES)
def writable(request, _fixture_model, corpus, tmp_path):
    """A fresh searchable per test, for writes (the client's index is shared; each write test undoes its writes)."""
    if request.param == "client":
        return _client(request, "writable")
    if request.param == "sharded-ray":
        request.getfixturevalue("ray_cluster")
    return _closing(request, _make(request.param, _fixture_model, corpus, tmp_path))


def _is_disk(s) -> bool:
    return isinstance(s, (Index, colja.Client, colja.ShardedIndex))


def _stored_vectors(s, n: int) -> tuple[list[int], list[torch.Tensor]]:
    """``(passage ids, vectors)`` of what ``s`` scores against: decompressed vectors for an Index
    (every shard's, under global ids, for a sharded index), float16 vectors in memory."""
    if isinstance(s, colja.Client):
        with Index.load(s.test_index_path) as local:
            return _stored_vectors(local, n)
    if isinstance(s, colja.ShardedIndex):
        pids = s.all_pids().tolist()
        assert len(pids) == n
        flat, lens = s.passage_vectors(pids)
        return pids, list(flat.split(lens.tolist()))
    if isinstance(s, Index):
        flat, lens = s.passage_vectors(torch.arange(n))
        return list(range(n)), list(flat.split(lens.tolist()))
    return list(range(n)), [v.float() for v in s._vectors]


def test_satisfies_the_protocol(searchable):
    assert isinstance(searchable, Searchable)
    assert len(searchable) == N


def test_search_returns_ranked_hits(searchable, queries):
    for q in queries:
        hits = searchable.search(q, k=7)
        assert len(hits) == 7 and all(isinstance(h, Hit) for h in hits)
        assert [h.rank for h in hits] == list(range(1, 8))
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len({h.doc_id for h in hits}) == 7
        for h in hits:
            assert h.doc_id.startswith("文書-") and h.metadata["n"] == int(h.doc_id.split("-")[1])
            assert h.normalized_score == pytest.approx(h.score / 32)
    assert len(searchable.search(queries[0], k=1000)) == N  # min(k, passages)


def test_batch_equals_single_queries(searchable, queries):
    batch = searchable.search_batch(queries, k=5)
    assert [[h.doc_id for h in hits] for hits in batch] == [[h.doc_id for h in searchable.search(q, k=5)] for q in queries]
    assert searchable.search_batch([], k=5) == []


def test_search_embeddings_gives_arrays_and_hits(searchable, _fixture_model, queries):
    Q = _fixture_model.encode_queries(queries[:2])
    results = searchable.search_embeddings(Q, k=N + 5)
    assert isinstance(results, SearchResults)
    assert results.pids.shape == (2, N + 5) and results.scores.dtype == np.float32
    assert (results.pids[:, N:] == -1).all() and np.isneginf(results.scores[:, N:]).all()
    hits = searchable.hits(results, 1)
    assert [h.doc_id for h in hits][:5] == [h.doc_id for h in searchable.search(queries[1], k=5)]
    one = searchable.search_embeddings(Q[0].numpy(), k=3)  # one query, numpy
    assert one.pids.shape == (1, 3)


def test_exhaustive_hits_equal_the_oracle_on_its_own_vectors(searchable, _fixture_model, queries):
    """Exact MaxSim over what the searchable stores, scored by the readable oracle."""
    options = {"exhaustive": True} if _is_disk(searchable) else {}
    pids, docs = _stored_vectors(searchable, N)
    Q = _fixture_model.encode_queries(queries)
    want = maxsim_matrix(Q, docs)
    got = searchable.search_embeddings(Q, k=10, **options)
    for i in range(len(queries)):
        order = torch.argsort(want[i], descending=True, stable=True)[:10]
        assert got.pids[i].tolist() == [pids[j] for j in order.tolist()]
        np.testing.assert_allclose(got.scores[i], want[i][order].numpy(), rtol=1e-4, atol=1e-4)


def test_a_passage_finds_itself(searchable, corpus, _fixture_model):
    """A passage's own vectors as the query: every vector finds itself (dot ≈ 1), so it ranks first."""
    for i in (0, 17, N - 1):
        own = _fixture_model.encode_documents([corpus[0][i]])[0]
        assert searchable.hits(searchable.search_embeddings(own, k=1))[0].doc_id == corpus[1][i]


def test_where_and_group_by_doc(searchable, queries):
    hits = searchable.search(queries[0], k=N, where={"source": "ブログ"})
    assert len(hits) == N // 3 and all(h.metadata["source"] == "ブログ" for h in hits)
    assert searchable.search(queries[0], k=5, where={"n": {"$gte": 1000}}) == []
    grouped = searchable.search(queries[0], k=5, group_by_doc=True)
    assert [h.doc_id for h in grouped] == [h.doc_id for h in searchable.search(queries[0], k=5)]


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_bad_k_is_a_value_error(searchable, k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        searchable.search("質問", k=k)
    with pytest.raises(ValueError, match="k must be a positive int"):
        searchable.search_embeddings(torch.ones(4, 128), k=k)


def test_bad_queries_are_type_errors(searchable):
    with pytest.raises(TypeError, match="query must be a str"):
        searchable.search(["a", "b"])
    with pytest.raises(TypeError, match=r"queries\[1\]"):
        searchable.search_batch(["a", None])
    with pytest.raises(TypeError, match="single str"):
        searchable.search_batch("東京")
    with pytest.raises(ValueError, match="shape"):
        searchable.search_embeddings(torch.ones(4, 64), k=3)
    with pytest.raises(TypeError):
        searchable.search("a", no_such_option=1)


@pytest.mark.parametrize("where", [{"$nope": 1}, {"n": {"$gt": [1]}}, {"n": {"$in": 3}}, {"n": {"$regex": "x"}}])
def test_bad_filters_are_filter_errors(searchable, where):
    with pytest.raises(FilterError):
        searchable.search("質問", k=3, where=where)


def test_add_then_delete(writable, _fixture_model):
    before = len(writable)
    ids = writable.add(["富士山は日本で最も高い山で、標高は3776メートルである。"], metadata=[{"source": "追加"}])
    assert len(ids) == 1 and len(writable) == before + 1
    own = _fixture_model.encode_documents(["富士山は日本で最も高い山で、標高は3776メートルである。"])[0]
    assert writable.hits(writable.search_embeddings(own, k=1))[0].doc_id == ids[0]
    assert writable.search("富士山", k=3, where={"source": "追加"})[0].doc_id == ids[0]
    assert writable.delete(ids) == 1
    assert len(writable) == before
    assert ids[0] not in {h.doc_id for h in writable.search("富士山", k=N + 1)}


def test_write_errors_change_nothing(writable):
    before = len(writable)
    with pytest.raises(UnknownDocumentError) as err:
        writable.delete(["文書-1", "ない文書"])
    assert isinstance(err.value, KeyError) and "ない文書" in str(err.value)
    assert len(writable) == before
    with pytest.raises(CollectionError, match="already in the index"):
        writable.add(["重複"], doc_ids=["文書-2"])
    with pytest.raises(CollectionError):
        writable.add(["a", "b"], doc_ids=["x", "x"])
    with pytest.raises(CollectionError):
        writable.add(["a"], metadata=["not a dict"])
    assert len(writable) == before
    assert writable.delete([]) == 0 and writable.add([]) == []


def test_every_error_is_exported():
    for name in colja.errors.__all__:
        assert getattr(colja, name) is getattr(colja.errors, name)
