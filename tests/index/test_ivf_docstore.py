"""IVF (unique sorted pids per centroid) and the SQLite document store."""

from __future__ import annotations

import numpy as np
import pytest
from .index_helpers import REFERENCE_INDEX

from colja.index.docstore import DocStore, dump_metadata
from colja.index.ivf import IVFBuilder, build_ivf, ivf_offsets


def naive_ivf(codes, doclens, k):
    pid_of = np.repeat(np.arange(len(doclens)), doclens)
    lists = [np.unique(pid_of[codes == c]) for c in range(k)]
    return np.concatenate(lists).astype(np.int32), np.array([len(x) for x in lists], dtype=np.int64)


def test_ivf_matches_naive_and_chunking_does_not_matter():
    rng = np.random.default_rng(0)
    doclens = rng.integers(0, 20, size=300)
    codes = rng.integers(0, 50, size=int(doclens.sum())).astype(np.int32)
    ivf, lengths = build_ivf(codes, doclens, 50)
    exp_ivf, exp_len = naive_ivf(codes, doclens, 50)
    np.testing.assert_array_equal(ivf, exp_ivf)
    np.testing.assert_array_equal(lengths, exp_len)
    assert ivf.dtype == np.int32 and lengths.dtype == np.int64
    builder = IVFBuilder(50)
    offsets = np.concatenate([[0], np.cumsum(doclens)])
    for start in range(0, 300, 37):
        stop = min(300, start + 37)
        builder.add(codes[offsets[start] : offsets[stop]], doclens[start:stop], start)
    ivf2, lengths2 = builder.finish()
    np.testing.assert_array_equal(ivf2, ivf)
    np.testing.assert_array_equal(lengths2, lengths)
    assert ivf_offsets(lengths)[-1] == len(ivf)


def test_ivf_errors():
    builder = IVFBuilder(4)
    builder.add(np.array([0, 1], np.int32), np.array([2]), 5)
    with pytest.raises(ValueError):
        builder.add(np.array([0], np.int32), np.array([1]), 3)  # out of order
    with pytest.raises(ValueError):
        IVFBuilder(2).add(np.array([5], np.int32), np.array([1]), 0)


def test_ivf_of_the_reference_fixture():
    codes = np.load(REFERENCE_INDEX / "codes.npy")
    doclens = np.load(REFERENCE_INDEX / "doclens.npy")
    ref_ivf = np.load(REFERENCE_INDEX / "ivf.npy")
    ref_len = np.load(REFERENCE_INDEX / "ivf_lengths.npy")
    ivf, lengths = build_ivf(codes, doclens, len(ref_len))
    np.testing.assert_array_equal(lengths, ref_len)
    # the reference's tensor is padded with zeros past sum(lengths)
    np.testing.assert_array_equal(ivf, ref_ivf[: int(ref_len.sum())])
    assert not ref_ivf[int(ref_len.sum()) :].any()


@pytest.fixture()
def store(tmp_path):
    s = DocStore.create(tmp_path / "docs.sqlite")
    s.add([0, 1, 2], ["a", "b", "日本"], ["text a", "", "東京は日本の首都です。"],
          [dump_metadata({"x": 1}), None, dump_metadata({"タグ": ["歴史", 2.5], "nested": {"ok": True}})])
    s.finish()
    opened = DocStore.open(tmp_path / "docs.sqlite")
    yield opened
    opened.close()


def test_docstore_reads(store):
    assert len(store) == 3 and store.count() == 3 and store.count_live() == 3
    assert store.get([2, 0]) == [("日本", "東京は日本の首都です。", {"タグ": ["歴史", 2.5], "nested": {"ok": True}}),
                                 ("a", "text a", {"x": 1})]
    assert store.get([1, 1]) == [("b", "", None)] * 2
    assert store.doc_ids([1, 0]) == ["b", "a"]
    assert store.pids_for(["日本", "a"]) == [2, 0]
    assert store.pids_for(["zz", "b"], missing="skip") == [1]
    assert store.all_doc_ids() == ["a", "b", "日本"]
    assert store.deleted_mask().tolist() == [False, False, False]
    with pytest.raises(KeyError):
        store.get([7])
    with pytest.raises(KeyError, match="zz"):
        store.pids_for(["zz"])
    with pytest.raises(PermissionError):
        store.add([3], ["c"], [""], [None])


def test_docstore_many_ids(tmp_path):
    s = DocStore.create(tmp_path / "d.sqlite")
    n = 2500
    s.add(range(n), [f"id{i}" for i in range(n)], ["t"] * n, [None] * n)
    s.finish()
    s = DocStore.open(tmp_path / "d.sqlite")
    order = list(range(n - 1, -1, -3))
    assert s.pids_for([f"id{i}" for i in order]) == order
    assert [r[0] for r in s.get(order)] == [f"id{i}" for i in order]
    s.close()


def test_docstore_schema_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        DocStore.open(tmp_path / "missing.sqlite")
    s = DocStore.create(tmp_path / "x.sqlite")
    s.add([0], ["a"], ["t"], [None])
    with pytest.raises(Exception):  # doc ids are unique
        s.add([1], ["a"], ["t"], [None])
    s.close()
    with pytest.raises(FileExistsError):
        DocStore.create(tmp_path / "x.sqlite")
    with pytest.raises(TypeError):
        dump_metadata(["not", "a", "dict"])
    with pytest.raises(ValueError):
        dump_metadata({"x": float("nan")})
