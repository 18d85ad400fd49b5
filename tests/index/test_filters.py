"""``where=`` metadata filters: the operator set, SQL safety, errors and the min(k, matching) guarantee."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colja.errors import FilterError
from colja.index.filters import compile_where, json_path
from colja import Index

from .index_helpers import clustered_docs

N = 60
SOURCES = ["wiki", "news", "blog", "it's"]


def _meta(i: int) -> dict | None:
    if i % 13 == 0:
        return None
    m = {"source": SOURCES[i % 4], "year": 2000 + i % 25, "score": (i % 7) / 2, "flag": i % 3 == 0,
         "author": {"name": ["佐藤", "鈴木", "高橋"][i % 3], "age": 20 + i % 40}, "tags": ["a", "b"]}
    if i % 5 == 0:
        m["note"] = None
    if i % 11 == 0:
        m["year"] = str(m["year"])  # a string never equals or compares with a number
    if i % 17 == 0:
        m["flag"] = 1  # a number is not a boolean
    return m


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    docs = clustered_docs(n_docs=N, seed=6)
    path = tmp_path_factory.mktemp("filters") / "idx"
    index = Index.from_embeddings(docs, path, doc_ids=[f"d{i}" for i in range(N)],
                                  metadata=[_meta(i) for i in range(N)])
    index.delete(["d2", "d3"])
    yield index, docs
    index.close()


def _get(m: dict | None, field: str):
    cur = m
    for key in field.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return _MISSING
        cur = cur[key]
    return cur


_MISSING = object()


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def _match(m, where) -> bool:
    """A Python reference of the documented semantics."""
    for field, cond in where.items():
        if field == "$and":
            if not all(_match(m, c) for c in cond):
                return False
            continue
        if field == "$or":
            if not any(_match(m, c) for c in cond):
                return False
            continue
        if field == "$not":
            if _match(m, cond):
                return False
            continue
        value = _get(m, field)
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, arg in ops.items():
            present = value is not _MISSING
            if op == "$eq":
                ok = present and _same(value, arg)
            elif op == "$ne":
                ok = not (present and _same(value, arg))
            elif op == "$in":
                ok = present and any(_same(value, a) for a in arg)
            elif op == "$nin":
                ok = not (present and any(_same(value, a) for a in arg))
            elif op == "$exists":
                ok = present == arg
            else:
                comparable = present and not isinstance(value, bool) and (
                    (isinstance(arg, str) and isinstance(value, str))
                    or (not isinstance(arg, str) and isinstance(value, (int, float))))
                ok = comparable and {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg,
                                     "$lte": value <= arg}[op] if comparable else False
            if not ok:
                return False
    return True


CASES = [
    {"source": "wiki"},
    {"source": "it's"},
    {"source": {"$ne": "wiki"}},
    {"year": {"$gte": 2010}},
    {"year": {"$gt": 2005, "$lte": 2012}},
    {"year": {"$lt": "2020"}},
    {"score": {"$gte": 1.5}},
    {"flag": True},
    {"flag": False},
    {"flag": 1},
    {"note": None},
    {"note": {"$exists": True}},
    {"note": {"$exists": False}},
    {"author.name": "鈴木", "author.age": {"$lt": 40}},
    {"author.name": {"$in": ["佐藤", "高橋"]}},
    {"source": {"$nin": ["wiki", "news"]}},
    {"year": {"$in": [2001, "2011", True, None]}},
    {"$or": [{"source": "wiki"}, {"flag": True}]},
    {"$and": [{"year": {"$gte": 2003}}, {"$not": {"source": "blog"}}]},
    {"missing.key": {"$exists": False}},
    {"source": "none of these"},
    {},
]


@pytest.mark.parametrize("where", CASES, ids=[str(c) for c in CASES])
def test_filters_match_the_documented_semantics(filtered, where):
    index, docs = filtered
    with index.snapshot() as snapshot:
        mask = snapshot.allowed(where)
    expected = {i for i in range(N) if i not in (2, 3) and _match(_meta(i), where)}
    got = set(np.flatnonzero(mask.numpy()).tolist()) if mask is not None else set(range(N))
    assert got == expected
    Q = torch.from_numpy(docs[7][:6])
    for k in (1, 5, 100):
        for extra in ({}, {"exhaustive": True}, {"ncells": 1}):
            hits = index.hits(index.search_embeddings(Q, k, where=where, **extra))
            assert len(hits) == min(k, len(expected))
            assert {int(h.doc_id[1:]) for h in hits} <= expected
    # PLAID under a filter: the query's own passage first when it matches; scores never above the exact top-k's
    exact = index.search_embeddings(Q, 5, where=where, exhaustive=True)
    plaid = index.search_embeddings(Q, 5, where=where)
    if 7 in expected:
        assert plaid.pids[0, 0] == exact.pids[0, 0] == 7
    found = plaid.scores[0][np.isfinite(plaid.scores[0])]
    assert np.all(found <= exact.scores[0][: len(found)] + 1e-5)


def test_where_is_passed_through_text_search(tmp_path, _fixture_model):
    texts = ["東京は日本の首都です。", "大阪は食べ物が有名です。", "京都には寺が多い。", "東京タワーは赤い。"]
    index = Index.build(texts, tmp_path / "idx", model=_fixture_model, metadata=[{"city": "tokyo"}, {"city": "osaka"},
                                                                              {"city": "kyoto"}, {"city": "tokyo"}])
    hits = index.search("東京", k=10, where={"city": "tokyo"})
    assert [h.doc_id for h in hits] and {h.metadata["city"] for h in hits} == {"tokyo"} and len(hits) == 2
    assert len(index.search_batch(["東京", "京都"], k=3, where={"city": {"$ne": "tokyo"}})[1]) == 2
    with pytest.raises(FilterError):
        index.search("東京", where={"city": {"$regex": "to"}})
    index.close()


def test_values_are_parameters_not_sql(filtered):
    index, _ = filtered
    evil = "wiki' OR 1=1 --"
    with index.snapshot() as snapshot:
        assert not bool(snapshot.allowed({"source": evil}).any())
    sql, params = compile_where({"source": evil, "a.b": {"$in": [1, "x"]}})
    assert evil not in sql and evil in params and "'x'" not in sql


@pytest.mark.parametrize("where, message", [
    ({"year": {"$regex": "20"}}, "unknown operator"),
    ({"$nor": []}, "unknown top-level operator"),
    ({"year": {"$gte": [2000]}}, "compares numbers or strings"),
    ({"year": {"$gt": True}}, "compares numbers or strings"),
    ({"year": {"$in": 2000}}, "must be a list"),
    ({"year": {"$exists": 1}}, "True or False"),
    ({"author": {"name": "佐藤"}}, "whole object"),
    ({"year": {"$gte": 1, "x": 2}}, "mixes operators"),
    ({"year": float("nan")}, "finite"),
    ({"tags": ["a", "b"]}, "values must be"),
    ({"a..b": 1}, "empty part"),
    ({'we"ird': 1}, "double quote"),
    ({"$or": []}, "non-empty list"),
    ("source = 'wiki'", "must be a dict"),
])
def test_bad_filters_raise_clear_errors(filtered, where, message):
    index, docs = filtered
    with pytest.raises(FilterError, match=message):
        index.search_embeddings(torch.from_numpy(docs[0][:4]), 3, where=where)


def test_json_path_quotes_each_key():
    assert json_path("author.name") == '$."author"."name"'
    assert json_path("日本 語") == '$."日本 語"'
