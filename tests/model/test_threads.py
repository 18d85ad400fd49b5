"""One model object used from many threads: no failure, the same vectors as one thread."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from colja import Index
from tests.conftest import DATA

pytestmark = [pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning"),
              pytest.mark.filterwarnings("ignore::colja.errors.StaleIndexWarning")]


@pytest.fixture(scope="module")
def texts():
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")][:96]
    mixed = ["ｶﾀｶﾅとＡＢＣと😀の文。", "", "東京" * 300]
    return [r["text"] for r in rows] + mixed


def _run_threads(targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return errors


def test_four_threads_encoding_through_one_model_match_serial(fixture_model, texts):
    batches = [texts[i::4] for i in range(4)]
    serial_docs = [fixture_model.encode_documents(b, batch_size=8) for b in batches]
    serial_queries = [fixture_model.encode_queries(b[:10]) for b in batches]
    got: dict[int, list] = {}

    def work(i):
        def run():
            out = []
            for _ in range(3):
                out.append((fixture_model.encode_documents(batches[i], batch_size=8),
                             fixture_model.encode_queries(batches[i][:10])))
            got[i] = out
        return run

    errors = _run_threads([work(i) for i in range(4)])
    assert not errors, errors
    for i in range(4):
        for docs, queries in got[i]:
            assert len(docs) == len(serial_docs[i])
            assert all(torch.equal(a, b) for a, b in zip(docs, serial_docs[i]))
            assert torch.equal(queries, serial_queries[i])


def test_threads_adding_and_encoding_through_one_model_equal_a_serial_replay(fixture_model, texts, tmp_path):
    base, extra = texts[:40], texts[40:]
    threaded = Index.build(base, tmp_path / "threaded", model=fixture_model, doc_ids=[f"b{i}" for i in range(40)])
    serial = Index.build(base, tmp_path / "serial", model=fixture_model, doc_ids=[f"b{i}" for i in range(40)])
    groups = [list(range(start, len(extra), 2)) for start in (0, 1)]  # two adders, interleaved ids
    chunks = [[g[j : j + 6] for j in range(0, len(g), 6)] for g in groups]
    encoded: list = []

    def adder(chunk_list):
        def run():
            for chunk in chunk_list:
                threaded.add([extra[j] for j in chunk], doc_ids=[f"x{j}" for j in chunk])
        return run

    def encoder():
        for _ in range(4):
            encoded.append(fixture_model.encode_documents(extra[:12], batch_size=4))

    errors = _run_threads([adder(chunks[0]), adder(chunks[1]), encoder, encoder])
    assert not errors, errors
    for chunk_list in chunks:
        for chunk in chunk_list:
            serial.add([extra[j] for j in chunk], doc_ids=[f"x{j}" for j in chunk])
    reference = fixture_model.encode_documents(extra[:12], batch_size=4)
    assert len(encoded) == 8 and all(all(torch.equal(a, b) for a, b in zip(e, reference)) for e in encoded)
    assert len(threaded) == len(serial) == len(texts)

    def vectors_by_id(index):
        with index.snapshot() as snap:
            rows = snap.docs.get(range(snap.num_passages))
            vecs, lens = snap.passage_vectors(torch.arange(snap.num_passages))
        out, start = {}, 0
        for (doc_id, text, _), n in zip(rows, lens.tolist()):
            out[doc_id] = (text, vecs[start : start + n])
            start += n
        return out

    a, b = vectors_by_id(threaded), vectors_by_id(serial)
    assert a.keys() == b.keys()
    for doc_id in a:
        assert a[doc_id][0] == b[doc_id][0]
        assert torch.equal(a[doc_id][1], b[doc_id][1]), doc_id
    query = extra[5][:30]
    assert [h.doc_id for h in threaded.search(query, k=5)] == [h.doc_id for h in serial.search(query, k=5)]
