"""Writes over HTTP: same effect as in-process, rejected writes change nothing, searches during writes
see one generation, a server killed during a write leaves a loadable index, SIGTERM finishes requests."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from colja import Client, CollectionError, Index, UnknownDocumentError
from tests.server.conftest import N, READ_KEY, WRITE_KEY, build_index
from tests.server.harness import running, start


def _on_disk(path):
    """(live passages, current generation) as a fresh reader sees them."""
    with Index.load(path) as index:
        return len(index), index.stats()["generation"]


@pytest.fixture()
def scratch(served):
    with Client(served[0].url, index="scratch", api_key=WRITE_KEY) as c:
        yield c, served[1]["scratch"]


def test_add_update_delete_match_in_process(scratch, _fixture_model):
    client, path = scratch
    before = _on_disk(path)[0]
    ids = client.add(["富士山は日本で最も高い山で、標高は3776メートルである。", "ｶﾀｶﾅの文書 🍣"],
                     doc_ids=["新-1", "新-2"], metadata=[{"source": "追加"}, None])
    assert ids == ["新-1", "新-2"] and len(client) == before + 2
    with Index.load(path, model=_fixture_model) as local:
        assert local.search("富士山", k=3, where={"source": "追加"})[0].doc_id == "新-1"
        remote = client.search("富士山の標高", k=5)
        assert [h.doc_id for h in remote] == [h.doc_id for h in local.search("富士山の標高", k=5)]
    client.update(["新-2"], ["京都は古い都です。"], [{"source": "更新"}])
    hit = client.search("京都", k=1, where={"source": "更新"})[0]
    assert hit.doc_id == "新-2" and hit.text == "京都は古い都です。"
    assert client.delete(["新-1", "新-2"]) == 2
    assert _on_disk(path)[0] == before == len(client)


BAD_WRITES = [
    ("POST", "documents", {"texts": ["重複"], "doc_ids": ["文書-2"]}, 400, "CollectionError"),
    ("POST", "documents", {"texts": ["a", "b"], "doc_ids": ["x", "x"]}, 400, "CollectionError"),
    ("POST", "documents", {"texts": ["a"], "metadata": ["not a dict"]}, 400, "CollectionError"),
    ("POST", "documents", {"texts": ["a"], "metadata": [{"bad": float("nan")}]}, 400, None),
    ("POST", "documents", {"texts": "一つの文字列"}, 400, "CollectionError"),
    ("POST", "documents", {"texts": [None]}, 400, "CollectionError"),
    ("POST", "documents", {"texts": ["a"], "doc_ids": [5]}, 400, "CollectionError"),
    ("POST", "documents", {"texts": ["a"], "split": True, "max_tokens": -3}, 400, None),
    ("POST", "documents", {"texts": ["a"] * 2000}, 413, None),
    ("PUT", "documents", {"doc_ids": ["ない"], "texts": ["x"]}, 404, "UnknownDocumentError"),
    ("PUT", "documents", {"doc_ids": ["文書-1"], "texts": ["x", "y"]}, 400, None),
    ("PUT", "documents", {"doc_ids": "文書-1", "texts": ["x"]}, 400, "CollectionError"),
    ("POST", "documents/delete", {"doc_ids": ["文書-1", "ない"]}, 404, "UnknownDocumentError"),
    ("POST", "documents/delete", {"doc_ids": [1, 2]}, 400, None),
    ("POST", "documents/delete", {"doc_ids": "文書-1"}, 400, None),
    ("POST", "documents/delete", {}, 422, "ValueError"),
]


@pytest.mark.parametrize("method, tail, body, status, error", BAD_WRITES, ids=[f"{m} {t} {b}"[:80] for m, t, b, *_ in BAD_WRITES])
def test_a_rejected_write_changes_nothing(served, method, tail, body, status, error):
    url, path = served[0].url, served[1]["scratch"]
    before = _on_disk(path)
    content = httpx.Request("POST", "/", json=body).content if "nan" not in str(body) else \
        b'{"texts": ["a"], "metadata": [{"bad": NaN}]}'
    r = httpx.request(method, f"{url}/v1/indexes/scratch/{tail}", content=content,
                      headers={"Authorization": f"Bearer {WRITE_KEY}", "content-type": "application/json"}, timeout=60)
    assert r.status_code == status, r.text
    if error:
        assert r.json()["error"]["type"] == error
    assert _on_disk(path) == before


def test_client_write_errors_are_the_in_process_errors(scratch):
    client, _ = scratch
    with pytest.raises(CollectionError, match="already in the index"):
        client.add(["重複"], doc_ids=["文書-2"])
    with pytest.raises(UnknownDocumentError):
        client.delete(["ない"])
    with pytest.raises(UnknownDocumentError):
        client.update(["ない"], ["x"])


def test_searches_during_writes_see_whole_generations(scratch):
    """Each write adds a batch tagged with its number; a search of the tagged documents sees batches
    0..j for some j: never a gap, never half a batch; every write lands."""
    client, path = scratch
    before = _on_disk(path)[0]
    batches, per_batch = 6, 3
    errors: list[BaseException] = []
    seen: list[list[int]] = []
    done = threading.Event()

    def writer():
        try:
            with Client(client.url, index="scratch", api_key=WRITE_KEY) as w:
                for b in range(batches):
                    w.add([f"書き込み{b}の文書{j}です。" for j in range(per_batch)],
                          doc_ids=[f"w{b}-{j}" for j in range(per_batch)],
                          metadata=[{"tag": "並行", "batch": b}] * per_batch)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    def reader():
        try:
            with Client(client.url, index="scratch", api_key=READ_KEY) as r:
                while not done.is_set():
                    hits = r.search("書き込みの文書", k=100, where={"tag": "並行"}, exhaustive=True)
                    seen.append(sorted(h.metadata["batch"] for h in hits))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(seen) > batches
    for batch_list in seen:
        complete = len(batch_list) // per_batch
        assert batch_list == sorted(b for b in range(complete) for _ in range(per_batch))
    assert _on_disk(path)[0] == before + batches * per_batch
    assert client.delete([f"w{b}-{j}" for b in range(batches) for j in range(per_batch)]) == batches * per_batch


def test_sigkill_during_a_write_leaves_the_index_before_or_after(_fixture_model, tmp_path):
    path = tmp_path / "killed"
    build_index(_fixture_model, path)
    texts = [f"強制終了の試験用の文書{i}。日本語の長い文章を書き込みます。" * 3 for i in range(400)]
    for delay in (0.3, 1.0):
        before = _on_disk(path)[0]
        server = start({"k": path}, tmp_path)
        result: list = []

        def write():
            try:
                result.append(httpx.post(f"{server.url}/v1/indexes/k/documents", json={"texts": texts}, timeout=120))
            except httpx.HTTPError as e:
                result.append(e)

        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(delay)
        server.stop(signal.SIGKILL)
        thread.join(60)
        with Index.load(path, model=_fixture_model) as index:
            assert len(index) in (before, before + len(texts))
            assert index.search("強制終了", k=1)
        if len(result) == 1 and isinstance(result[0], httpx.Response) and result[0].status_code == 200:
            assert _on_disk(path)[0] == before + len(texts)  # an acknowledged write is on disk


def test_sigterm_finishes_requests_in_flight(_fixture_model, tmp_path):
    path = tmp_path / "graceful"
    build_index(_fixture_model, path)
    queries = [f"質問{i}：日本で一番高い山はどこですか" for i in range(1000)]
    with running({"g": path}, tmp_path) as server:
        result: list = []

        def search():
            result.append(httpx.post(f"{server.url}/v1/indexes/g/search_batch",
                                     json={"queries": queries, "k": 5, "options": {"exhaustive": True}}, timeout=120))

        thread = threading.Thread(target=search)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the request finished before the signal; make it longer"
        code = server.stop(signal.SIGTERM)
        thread.join(120)
    assert result[0].status_code == 200 and len(result[0].json()["hits"]) == 1000
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
