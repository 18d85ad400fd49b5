"""Long documents: ``build(split=True)``, parent ids and spans on hits, ``group_by_doc``, writes on split documents."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from colja.errors import CollectionError
from colja import Index
from tests.conftest import DATA

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")

MAX_TOKENS = 40


@pytest.fixture(scope="module")
def long_docs():
    """Documents made of the jsquad passages of one article each (several sentences, some of them long)."""
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")]
    by_title: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_title[r["title"]].append(r["text"])
    titles = [t for t in by_title if len(by_title[t]) >= 3][:12]
    return titles, ["\n".join(by_title[t][:4]) for t in titles]


@pytest.fixture(scope="module")
def split_index(_fixture_model, long_docs, tmp_path_factory):
    titles, texts = long_docs
    path = tmp_path_factory.mktemp("split") / "idx"
    index = Index.build(texts, path, model=_fixture_model, doc_ids=titles,
                        metadata=[{"n": i} for i in range(len(texts))], split=True, max_tokens=MAX_TOKENS, overlap=8)
    yield index
    index.close()


def test_passages_carry_parent_and_span(split_index, long_docs, _fixture_model):
    titles, texts = long_docs
    index = split_index
    assert index.num_passages > 2 * len(texts)
    pids = list(range(index.num_passages))
    records = index._snapshot.docs.records(pids)
    per_parent = defaultdict(list)
    for r in records:
        parent = texts[titles.index(r.parent_id)]
        start, end = r.span
        assert parent[start:end] == r.text
        assert len(_fixture_model.tokenizer.tokenize(r.text)) <= MAX_TOKENS
        assert r.metadata == {"n": titles.index(r.parent_id)}
        per_parent[r.parent_id].append(r)
    assert set(per_parent) == set(titles)
    for parent, rs in per_parent.items():
        assert [r.doc_id for r in rs] == [f"{parent}#{j}" for j in range(len(rs))]
    hit = index.search(records[5].text, k=3)[0]
    assert (hit.doc_id, hit.parent_id, hit.span) == (records[5].doc_id, records[5].parent_id, records[5].span)
    assert index.manifest["source"]["split"] is True


def test_group_by_doc_returns_the_best_passage_per_document(split_index, long_docs, _fixture_model):
    titles, texts = long_docs
    index = split_index
    queries = [texts[2][:30], texts[7][10:60], "日本の歴史について"]
    Q = _fixture_model.encode_queries(queries)
    for k in (1, 3, 5, 12, 50):
        grouped = index.search_embeddings(Q, k, group_by_doc=True, exhaustive=True)
        every = index.search_embeddings(Q, index.num_passages, exhaustive=True)
        for i in range(len(queries)):
            hits = index.hits(grouped, i)
            assert len(hits) == min(k, len(titles))
            assert len({h.parent_id for h in hits}) == len(hits)
            best: dict[str, int] = {}
            for pid in every.pids[i]:  # the first passage of each parent in the full exact ranking
                best.setdefault(index._snapshot.docs.records([int(pid)])[0].parent_id, int(pid))
            assert [h.pid for h in hits] == list(best.values())[:k]
    # PLAID (not exhaustive) and text search group the same way
    hits = index.search(queries[0], k=4, group_by_doc=True)
    assert len(hits) == 4 and len({h.parent_id for h in hits}) == 4 and hits[0].parent_id == titles[2]
    filtered = index.search(queries[0], k=10, group_by_doc=True, where={"n": {"$lt": 3}})
    assert sorted(h.parent_id for h in filtered) == sorted(titles[:3])


def test_writes_on_split_documents(split_index, long_docs, _fixture_model, tmp_path):
    titles, texts = long_docs
    index = Index.build(texts[:4], tmp_path / "idx", model=_fixture_model, doc_ids=titles[:4], split=True,
                        max_tokens=MAX_TOKENS)
    n_first = len(index._snapshot.docs.live_pids_by_id([titles[0]])[titles[0]])
    assert n_first > 1
    # deleting a parent id deletes every passage of it
    assert index.delete([titles[0]]) == n_first
    assert titles[0] not in {h.parent_id for h in index.search(texts[0][:40], k=50)}
    # update re-splits (it was split) and keeps the metadata
    index.update([titles[1]], [texts[5]])
    hits = [h for h in index.search(texts[5][:40], k=50) if h.parent_id == titles[1]]
    assert hits and all(texts[5][h.span[0] : h.span[1]] == h.text for h in hits)
    assert {h.doc_id for h in hits} <= {f"{titles[1]}#{j}" for j in range(20)}
    # add with split=True; default ids are numbers, passages '<id>#<j>'
    before = index.num_passages
    ids = index.add([texts[6], "短い文書です。"], split=True, max_tokens=MAX_TOKENS, metadata=[{"x": 1}, None])
    assert ids == [str(before), str(before + 1)]
    short = index._snapshot.docs.live_pids_by_id([ids[1]])[ids[1]]
    assert index._snapshot.docs.records(short)[0].doc_id == f"{ids[1]}#0" and index._snapshot.docs.records(short)[0].span == (0, 7)
    with pytest.raises(CollectionError, match="already in the index"):
        index.add(["x"], [titles[2]])
    with pytest.raises(CollectionError, match="already in the index"):
        index.add(["x"], [f"{titles[2]}#0"])
    with pytest.raises(ValueError, match="split=True"):
        Index.build(texts[:2], tmp_path / "other", model=_fixture_model, max_tokens=10)
    reloaded = Index.load(index.path, model=_fixture_model)
    hit = [h for h in reloaded.search("短い文書です。", k=reloaded.num_passages) if h.pid == short[0]][0]
    assert (hit.doc_id, hit.parent_id, hit.span, hit.metadata) == (f"{ids[1]}#0", ids[1], (0, 7), {})
    reloaded.close()
    index.close()


def test_split_with_default_ids(tmp_path, _fixture_model, long_docs):
    _, texts = long_docs
    index = Index.build(texts[:2], tmp_path / "idx", model=_fixture_model, split=True, max_tokens=MAX_TOKENS)
    records = index._snapshot.docs.records(range(index.num_passages))
    assert records[0].doc_id == "0#0" and records[0].parent_id == "0" and records[-1].parent_id == "1"
    assert np.all(np.diff([int(r.doc_id.split("#")[1]) for r in records if r.parent_id == "0"]) == 1)
    index.close()
