"""Every endpoint of a real ``colja serve`` over HTTP, against the same calls in-process."""

from __future__ import annotations

import httpx
import pytest

import colja
from colja import Client, FilterError, Index, IndexNotFoundError, UnknownDocumentError
from tests.server.conftest import N, READ_KEY, WRITE_KEY

QUERIES = ["日本で一番高い山は？", "東京の人口", "ＡＢＣ abc ｶﾀｶﾅ 🍣", "", "ドラゴンズが優勝した年" * 5]
OPTIONS = [{}, {"k": 3}, {"k": 7, "where": {"source": "ブログ"}}, {"k": 5, "group_by_doc": True},
           {"k": 5, "exhaustive": True}, {"k": 4, "ncells": 4, "ndocs": 64},
           {"k": 5, "where": {"$or": [{"n": {"$lt": 5}}, {"source": "ブログ"}]}}]


@pytest.fixture(scope="module")
def local(served, _fixture_model):
    with Index.load(served[1]["ja"], model=_fixture_model) as index:
        yield index


@pytest.fixture(scope="module")
def client(served):
    with Client(served[0].url, index="ja", api_key=READ_KEY) as c:
        yield c


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served[0].url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=60) as h:
        yield h


def _same(remote, local_hits):
    assert [h.doc_id for h in remote] == [h.doc_id for h in local_hits]
    for r, l in zip(remote, local_hits):
        assert r.score == pytest.approx(l.score, rel=1e-5, abs=1e-4)
        assert (r.rank, r.text, r.metadata, r.pid) == (l.rank, l.text, l.metadata, l.pid)
        if l.normalized_score is None:
            assert r.normalized_score is None
        else:
            assert r.normalized_score == pytest.approx(l.normalized_score, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_search_equals_in_process(client, local, options):
    for q in QUERIES:
        _same(client.search(q, **options), local.search(q, **options))


def test_search_batch_equals_in_process(client, local):
    for options in OPTIONS[:4]:
        remote = client.search_batch(QUERIES, **options)
        assert len(remote) == len(QUERIES)
        for got, want in zip(remote, local.search_batch(QUERIES, **options)):
            _same(got, want)


def test_raw_json_of_a_search(http, local):
    r = http.post("/v1/indexes/ja/search", json={"query": QUERIES[0], "k": 3, "where": {"source": "ウィキ"}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    hits = r.json()["hits"]
    want = local.search(QUERIES[0], k=3, where={"source": "ウィキ"})
    assert [h["doc_id"] for h in hits] == [h.doc_id for h in want]
    assert set(hits[0]) == {"doc_id", "score", "rank", "text", "metadata", "normalized_score", "pid", "parent_id", "span"}


def test_search_embeddings_and_hits(client, local, _fixture_model):
    Q = _fixture_model.encode_queries(QUERIES[:2])
    got, want = client.search_embeddings(Q, k=N + 3), local.search_embeddings(Q, k=N + 3)
    assert (got.pids == want.pids).all()
    assert got.scores[:, :N] == pytest.approx(want.scores[:, :N], rel=1e-5)
    assert (got.scores[:, N:] == float("-inf")).all()
    _same(client.hits(got, 1), local.hits(want, 1))


def test_explain_equals_in_process(client, local, http):
    for hit in local.search(QUERIES[0], k=3):
        remote = client.explain(QUERIES[0], hit.doc_id)
        want = local.explain(QUERIES[0], hit.doc_id)
        assert remote["score"] == pytest.approx(want.score, rel=1e-5)
        assert [(m["query_token"], m["passage_index"], m["start"], m["end"]) for m in remote["matches"]] == \
               [(m.query_token, m.passage_index, m.start, m.end) for m in want.matches]
    r = http.post("/v1/indexes/ja/explain", json={"query": "山", "doc_id": "ない"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "UnknownDocumentError"


def test_rerank_equals_in_process(client, _fixture_model):
    passages = ["富士山は日本一高い山です。", "東京は日本の首都です。", "ｶﾀｶﾅと🍣", ""]
    got = client.rerank(QUERIES[0], passages, k=3, doc_ids=["a", "b", "c", "d"])
    want = colja.rerank(QUERIES[0], passages, k=3, doc_ids=["a", "b", "c", "d"], model=_fixture_model)
    _same(got, want)
    with pytest.raises(ValueError, match="k must be a positive int"):
        client.rerank("質問", ["a"], k=0)


def test_stats_and_listing(client, local, http):
    stats = client.stats()
    want = local.stats()
    assert "path" not in stats  # no server paths leave the server
    for key in ("passages", "live_passages", "vectors", "centroids", "nbits", "dim", "generation"):
        assert stats[key] == want[key]
    assert len(client) == N
    listed = http.get("/v1/indexes").json()["indexes"]
    assert {i["name"] for i in listed} == {"ja", "scratch"}


def test_errors_are_the_in_process_errors(client):
    with pytest.raises(ValueError, match="k must be a positive int"):
        client.search("質問", k=0)
    with pytest.raises(FilterError):
        client.search("質問", where={"$nope": 1})
    with pytest.raises(TypeError, match="query must be a str"):
        client.search(["a"])
    with pytest.raises(TypeError, match="unknown search settings"):
        client.search("質問", no_such_option=1)
    with pytest.raises(ValueError, match="no first stage named 'bm25'"):
        client.search("質問", first_stage="bm25")
    with pytest.raises(IndexNotFoundError, match="serves"):
        Client(client.url, index="nope", api_key=READ_KEY).search("質問")
    with pytest.raises(UnknownDocumentError):
        client.explain("質問", "ない")


BAD = [
    ("POST", "/v1/indexes/ja/search", b"not json", 422),
    ("POST", "/v1/indexes/ja/search", b'{"k": 3}', 422),                      # no query
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "zzz": 1}', 422),      # unknown field
    ("POST", "/v1/indexes/ja/search", b'["query"]', 422),
    ("POST", "/v1/indexes/ja/search", b'{"query": 5}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "k": "3"}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "k": 100000}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "k": 1e400}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "where": [1]}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "where": {"n": {"$regex": "x"}}}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "first_stage": ["plaid", 3]}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "options": {"ncells": -1}}', 400),
    ("POST", "/v1/indexes/ja/search", b'{"query": "a", "candidates": 10}', 400),
    ("POST", "/v1/indexes/ja/search_batch", b'{"queries": "a"}', 400),
    ("POST", "/v1/indexes/ja/search_batch", b'{"queries": [1, 2]}', 400),
    ("POST", "/v1/indexes/ja/search_embeddings", b'{"Q": [[1, 2]]}', 400),
    ("POST", "/v1/indexes/ja/search_embeddings", b'{"Q": "abc"}', 400),
    ("POST", "/v1/indexes/ja/search_embeddings", b'{"Q": [[1, 2], [3]]}', 400),
    ("POST", "/v1/indexes/ja/hits", b'{"scores": [1.0], "pids": [99999]}', 400),
    ("POST", "/v1/indexes/ja/hits", b'{"scores": 1, "pids": 2}', 400),
    ("POST", "/v1/indexes/ja/explain", b'{"query": "a", "doc_id": 3}', 400),
    ("POST", "/v1/rerank", b'{"query": "a", "passages": "abc"}', 400),
    ("POST", "/v1/rerank", b'{"query": "a", "passages": ["x"], "doc_ids": ["a", "b"]}', 400),
    ("POST", "/v1/indexes/..%2Fja/search", b'{"query": "a"}', 404),
    ("POST", "/v1/indexes/%2Ftmp%2Fja/search", b'{"query": "a"}', 404),
    ("GET", "/v1/indexes/nope/stats", None, 404),
    ("GET", "/v1/indexes/../../etc/passwd", None, 404),
    ("GET", "/static/../app.py", None, 404),
]


@pytest.mark.parametrize("method, path, body, status", BAD, ids=[f"{m} {p} {b!r}" for m, p, b, _ in BAD])
def test_bad_input_is_a_4xx_json_error(http, method, path, body, status):
    r = http.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    if path.startswith("/v1"):
        error = r.json()["error"]
        assert error["status"] == status and error["type"] and len(error["message"]) > 10


def test_a_body_over_the_limit_is_413(http):
    r = http.post("/v1/rerank", json={"query": "a", "passages": ["あ" * 1000] * 4000})  # ~12 MB
    assert r.status_code == 413 and "bytes" in r.json()["error"]["message"]

    def chunks():  # no content-length: counted as it arrives
        for _ in range(12):
            yield b" " * 2**20

    r = http.post("/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_health_docs_and_page(served, http):
    url = served[0].url
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(url + "/readyz").json()
    assert ready["status"] == "ready" and ready["indexes"] == ["ja", "scratch"]
    assert "/v1/indexes/{name}/search" in httpx.get(url + "/openapi.json").json()["paths"]
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    assert "fetch(" in httpx.get(url + "/static/app.js").text


def test_metrics_count_requests_errors_and_latency(http):
    http.post("/v1/indexes/ja/search", json={"query": "山", "k": 2})
    http.post("/v1/indexes/ja/search", json={"query": "山", "k": 0})
    text = http.get("/metrics").text
    assert 'colja_requests_total{endpoint="/v1/indexes/{name}/search",index="ja",status="200"}' in text
    assert 'colja_errors_total{endpoint="/v1/indexes/{name}/search",index="ja",type="ValueError"}' in text
    assert 'colja_request_seconds_bucket{endpoint="/v1/indexes/{name}/search",index="ja",le="0.1"}' in text
    assert 'colja_index_live_passages{index="ja"}' in text
    assert "colja_search_batches_total" in text
    assert "nope" not in text  # unknown index names never become labels


def _counter(http, name: str) -> float:
    line = next(line for line in http.get("/metrics").text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_concurrent_searches_are_micro_batched_and_answered_alike(served, local):
    from concurrent.futures import ThreadPoolExecutor

    queries = [f"{q}{i}" for i in range(8) for q in QUERIES[:4]]
    with httpx.Client(base_url=served[0].url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=60) as h:
        batches, answered = _counter(h, "colja_search_batches_total"), _counter(h, "colja_search_batch_queries_total")

        def one(q):
            with httpx.Client(base_url=served[0].url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=60) as c:
                return c.post("/v1/indexes/ja/search", json={"query": q, "k": 5}).json()["hits"]

        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(one, queries))
        assert _counter(h, "colja_search_batch_queries_total") - answered == len(queries)
        assert _counter(h, "colja_search_batches_total") - batches < len(queries)  # some shared a batch
    for q, hits in zip(queries, got):
        want = local.search(q, k=5)
        assert [x["doc_id"] for x in hits] == [x.doc_id for x in want]
        assert [x["score"] for x in hits] == pytest.approx([x.score for x in want], rel=1e-5, abs=1e-4)
