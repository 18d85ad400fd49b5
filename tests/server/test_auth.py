"""API keys: 401 without or with a wrong key, 403 for a read-only key writing; keys never logged."""

from __future__ import annotations

import httpx
import pytest

from colja import AuthenticationError, Client
from colja.server.auth import ApiKeys
from tests.server.conftest import READ_KEY, WRITE_KEY

SEARCH = ("POST", "/v1/indexes/ja/search", {"query": "山", "k": 1})
WRITE = ("POST", "/v1/indexes/scratch/documents/delete", {"doc_ids": []})


def _call(url, request, key=None, scheme="Bearer"):
    method, path, body = request
    headers = {"Authorization": f"{scheme} {key}".encode("utf-8")} if key is not None else {}
    return httpx.request(method, url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("key, scheme", [(None, "Bearer"), ("wrong-key-0123456789abcdef", "Bearer"),
                                         (READ_KEY + "x", "Bearer"), (READ_KEY[:-1], "Bearer"),
                                         (READ_KEY, "Basic"), ("ｷｰ🔑", "Bearer")])
def test_no_or_wrong_key_is_401(served, key, scheme):
    for request in (SEARCH, WRITE, ("GET", "/metrics", None), ("GET", "/v1/indexes", None)):
        r = _call(served[0].url, request, key, scheme)
        assert r.status_code == 401, (request, r.text)
        assert r.json()["error"]["type"] == "AuthenticationError" and r.headers["www-authenticate"] == "Bearer"


def test_read_key_reads_but_does_not_write(served):
    url = served[0].url
    assert _call(url, SEARCH, READ_KEY).status_code == 200
    r = _call(url, WRITE, READ_KEY)
    assert r.status_code == 403 and "read-only" in r.json()["error"]["message"]
    for method, path, body in [("POST", "/v1/indexes/scratch/documents", {"texts": ["新しい文書"]}),
                               ("PUT", "/v1/indexes/scratch/documents", {"doc_ids": ["文書-1"], "texts": ["x"]})]:
        assert httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 403


def test_write_key_does_both(served):
    url = served[0].url
    assert _call(url, SEARCH, WRITE_KEY).status_code == 200
    assert _call(url, WRITE, WRITE_KEY).json() == {"deleted": 0}


def test_open_endpoints_need_no_key(served):
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/openapi.json"):
        assert httpx.get(served[0].url + path).status_code == 200, path


def test_client_raises_authentication_errors(served):
    with Client(served[0].url, index="ja") as anonymous:
        with pytest.raises(AuthenticationError) as err:
            anonymous.search("山")
        assert err.value.status == 401 and isinstance(err.value, PermissionError)
    with Client(served[0].url, index="scratch", api_key=READ_KEY) as reader:
        assert reader.search("山", k=1)
        with pytest.raises(AuthenticationError) as err:
            reader.add(["書けない"])
        assert err.value.status == 403


def test_keys_never_reach_the_log(served):
    _call(served[0].url, SEARCH, "wrong-key-0123456789abcdef")
    log = served[0].output()
    for secret in (READ_KEY, WRITE_KEY, "wrong-key-0123456789abcdef"):
        assert secret not in log


def test_key_files_are_checked(tmp_path):
    bad = [("short read\n", "at least 16"), (f"{READ_KEY} admin\n", "access must be"),
           (f"{READ_KEY}\n", "expected"), (f"{READ_KEY} read\n{READ_KEY} write\n", "twice"), ("# nothing\n", "no keys")]
    for text, message in bad:
        path = tmp_path / "keys.txt"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message) as err:
            ApiKeys.from_file(path)
        assert READ_KEY not in str(err.value)
    keys = ApiKeys({READ_KEY: "read", WRITE_KEY: "write"})
    assert keys.access(READ_KEY) == "read" and keys.access(WRITE_KEY) == "write"
    assert keys.access(None) is None and keys.access("x") is None and keys.access(READ_KEY + " ") is None
    assert READ_KEY not in repr(keys)
