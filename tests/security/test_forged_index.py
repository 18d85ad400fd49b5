"""Crafted index folders (checksums recomputed by the forger) are refused on load with a named invariant.

Each case forges one thing the audit of issue 18 found, or one invariant of
:mod:`colja.index.validate`; loading (or, where loading is allowed, searching)
must raise :class:`~colja.errors.IndexFormatError` naming the file and the
invariant, within a time bound — never hang, crash, or answer.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from colja import Index, IndexFormatError
from colja.index.validate import MAX_JSON_DEPTH

from .forge import edit_array, edit_manifest, forge, generation, sql

TIME_BOUND_S = 10.0
pytestmark = pytest.mark.timeout(120)


def _set(path: str, value):
    """A manifest edit setting the dotted ``path`` to ``value``."""

    def edit(manifest):
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value

    return edit_manifest(edit)


def _raw_manifest(text: bytes):
    def change(gen):
        (gen / "manifest.json").write_bytes(text)
        return "keep"  # the file checksums are still right; the manifest itself is the forgery

    return change


def _raw_replace(old: str, new: str):
    """Edit manifest.json as text (for values JSON cannot round-trip, like 1e400); checksums stay right."""

    def change(gen):
        text = (gen / "manifest.json").read_text(encoding="utf-8")
        compact = json.dumps(json.loads(text), ensure_ascii=False)
        assert old in compact, old
        (gen / "manifest.json").write_text(compact.replace(old, new, 1), encoding="utf-8")
        return "keep"

    return change


def _deep_manifest(gen):
    text = json.dumps(json.loads((gen / "manifest.json").read_text(encoding="utf-8")))
    (gen / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return "keep"


def _shuffle_ivf_lengths(gen):
    lengths = np.load(gen / "ivf_lengths.npy")
    rng = np.random.default_rng(0)
    edit_array(gen, "ivf_lengths", lambda a: rng.permutation(a))
    assert np.load(gen / "ivf_lengths.npy").sum() == lengths.sum()


def _swap_within_a_list(gen):
    lengths = np.load(gen / "ivf_lengths.npy")
    c = int(np.flatnonzero(lengths >= 2)[0])
    start = int(lengths[:c].sum())

    def edit(a):
        a[start], a[start + 1] = a[start + 1], a[start]

    edit_array(gen, "ivf", edit)


def _move_one_pid(gen):
    """A pid replaced by another one that keeps its list sorted: only the IVF fingerprint sees it."""
    ivf, lengths = np.load(gen / "ivf.npy"), np.load(gen / "ivf_lengths.npy")
    ends = np.cumsum(lengths)
    for j in range(len(ivf)):
        c = int(np.searchsorted(ends, j, side="right"))
        lo = ivf[j - 1] if j > int(ends[c] - lengths[c]) else -1
        hi = ivf[j + 1] if j + 1 < ends[c] else 10**9
        if hi - lo > 2:
            new = ivf[j] + 1 if ivf[j] + 1 < hi else ivf[j] - 1
            if new != lo and 0 <= new:
                def edit(a, j=j, new=new):
                    a[j] = new
                edit_array(gen, "ivf", edit)
                return
    raise AssertionError("no movable pid")


def _negative_doclens(gen):
    def edit(a):
        a[1] += a[0] + 2
        a[0] = -2

    edit_array(gen, "doclens", edit)


def _npy_with_huge_header(gen):
    """codes.npy claims 2**39 entries (and the manifest agrees): refused before any allocation."""
    import io

    codes = np.load(gen / "codes.npy")
    big = 1 << 39
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<i4", "fortran_order": False, "shape": (big,)})
    (gen / "codes.npy").write_bytes(head.getvalue() + codes.tobytes())
    manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    manifest["counts"]["embeddings"] = big
    return manifest


def _pickled_npy(gen):
    np.save(gen / "codes.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)


def _recursive_view(gen):
    sql(gen, "ALTER TABLE docs RENAME TO docs_real",
        "CREATE VIEW docs AS WITH RECURSIVE r(pid, doc_id, text, metadata, deleted, parent_id, span_start, span_end) AS "
        "(SELECT 0, 'a', 'b', NULL, 0, NULL, NULL, NULL UNION ALL "
        "SELECT pid + 1, doc_id, text, metadata, deleted, parent_id, span_start, span_end FROM r) SELECT * FROM r")


def _pid_gap(gen):
    sql(gen, "UPDATE docs SET pid = 1000 WHERE pid = 3")


def _duplicate_live_ids(gen):
    sql(gen, "DROP INDEX docs_live_doc_id", "UPDATE docs SET doc_id = 'doc-0' WHERE pid = 1")


def _bad_metadata(gen):
    sql(gen, "UPDATE docs SET metadata = '{not json' WHERE pid = 2")


def _array_metadata(gen):
    sql(gen, "UPDATE docs SET metadata = '[1, 2]' WHERE pid = 2")


def _trigger(gen):
    sql(gen, "CREATE TRIGGER t AFTER UPDATE ON docs BEGIN SELECT 1; END")


def _blob_doc_id(gen):
    sql(gen, "UPDATE docs SET doc_id = x'80ff00' WHERE pid = 4")  # a blob (an integer would become text)


def _deleted_is_two(gen):
    sql(gen, "UPDATE docs SET deleted = 2 WHERE pid = 4")


def _not_sqlite(gen):
    (gen / "docs.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)


def _info_is_a_view(gen):
    sql(gen, "DROP TABLE info", "CREATE VIEW info AS SELECT 'schema_version' AS key, '2' AS value")


def _without_pk(gen):
    sql(gen, "CREATE TABLE d2 (pid INT, doc_id TEXT, text TEXT, metadata TEXT, deleted INT, parent_id TEXT, "
             "span_start INT, span_end INT)", "INSERT INTO d2 SELECT * FROM docs", "DROP TABLE docs",
        "ALTER TABLE d2 RENAME TO docs",
        "CREATE UNIQUE INDEX docs_live_doc_id ON docs(doc_id) WHERE deleted = 0")


def _stage_manifest_garbage(gen):
    (gen / "firststage" / "bm25" / "colja_bm25.json").write_bytes(b"\x80\x81 not json")


def _stage_wrong_format(gen):
    f = gen / "firststage" / "bm25" / "colja_bm25.json"
    data = json.loads(f.read_text())
    data["format"] = "colja-dense"
    f.write_text(json.dumps(data))


def _nan_at(name, index):
    def change(gen):
        def edit(a):
            a[index] = np.nan

        edit_array(gen, name, edit)

    return change


def _value_at(name, index, value):
    def change(gen):
        def edit(a):
            a[index] = value

        edit_array(gen, name, edit)

    return change


def _symlink(gen):
    target = gen.parent / "elsewhere.npy"
    (gen / "norms.npy").rename(target)
    (gen / "norms.npy").symlink_to(target)


CASES = {
    # 5. unspecific errors -> named ones
    "manifest-not-utf8": (_raw_manifest(b"\xff\xfe garbage \x80"), r"manifest\.json.*not UTF-8"),
    "manifest-not-json": (_raw_manifest(b"{\"format\": "), r"manifest\.json.*not valid JSON"),
    "counts-1e400": (_raw_replace('"embeddings": ', '"embeddings": 1e400, "x": '), r"manifest\.json.*out of range"),
    "nbits-1e10": (_set("codec.nbits", 10**10), r"codec\.nbits is one of"),
    "nbits-float": (_set("codec.nbits", 1e10), r"codec\.nbits is one of"),
    "deeply-nested": (_deep_manifest, r"manifest\.json.*nested"),
    "nested-in-limits-but-deep": (_set("build", json.loads("[" * (MAX_JSON_DEPTH + 2) + "]" * (MAX_JSON_DEPTH + 2))),
                                  r"nested at most"),
    "string-for-float": (_set("codec.avg_residual", "0.5abc"), r"avg_residual is a finite number"),
    "first-stages-not-dict": (_set("first_stages", ["bm25"]), r"first_stages is an object"),
    "negative-centroids": (_set("codec.num_centroids", -4), r"num_centroids is an integer"),
    "dim-not-multiple": (_set("codec.dim", 36), r"dim is a multiple of 8 \* nbits"),
    "bool-count": (_set("counts.passages", True), r"counts\.passages is an integer"),
    "path-escape": (edit_manifest(lambda m: m["files"].update({"../../etc/passwd": {"bytes": 1, "sha256": "0" * 64}})),
                    r"a relative path inside the generation"),
    "stage-path-escape": (edit_manifest(lambda m: m["first_stages"]["bm25"].update(path="../../x")),
                          r"first_stages\['bm25'\]\.path"),
    "stage-kind-unknown": (edit_manifest(lambda m: m["first_stages"]["bm25"].update(kind="pickle")),
                           r"kind is one of"),
    "stage-passages": (edit_manifest(lambda m: m["first_stages"]["bm25"].update(passages=3)),
                       r"passages equals counts\.passages"),
    "stage-manifest-garbage": (_stage_manifest_garbage, r"colja_bm25\.json.*not valid JSON"),
    "stage-manifest-format": (_stage_wrong_format, r"colja_bm25\.json.*colja-bm25 manifest"),
    # allocation limits and pickles
    "npy-huge-shape": (_npy_with_huge_header, r"codes\.npy.*header shape matches the file size|expected shape"),
    "npy-pickled": (_pickled_npy, r"codes\.npy.*int32"),
    "symlinked-file": (_symlink, r"norms\.npy.*regular file"),
    # 4. wrong answers without an error -> refused
    "ivf-pid-out-of-range": (_value_at("ivf", 0, 10_000), r"ivf\.npy.*passage ids are in \[0, passages=48\)"),
    "ivf-pid-negative": (_value_at("ivf", 1, -1), r"ivf\.npy.*passage ids are in"),
    "ivf-lengths-shuffled": (_shuffle_ivf_lengths, r"ivf(_lengths)?\.npy"),
    "ivf-unsorted": (_swap_within_a_list, r"ivf\.npy.*strictly increasing"),
    "ivf-pid-moved": (_move_one_pid, r"ivf\.npy.*(strictly increasing|pairs of codes\.npy)"),
    "nan-centroid": (_nan_at("centroids", (3, 5)), r"centroids\.npy.*finite values"),
    "inf-bucket-weight": (_value_at("bucket_weights", 1, np.inf), r"bucket_weights\.npy.*finite values"),
    "nan-cutoff": (_nan_at("bucket_cutoffs", 0), r"bucket_cutoffs\.npy.*finite"),
    "nan-norm": (_nan_at("norms", 7), r"norms\.npy.*finite"),
    "code-out-of-range": (_value_at("codes", 2, 1 << 30), r"codes\.npy.*codes are in \[0, num_centroids"),
    "negative-doclen-same-sum": (_negative_doclens, r"doclens\.npy.*passage lengths are in"),
    "docstore-pid-gap": (_pid_gap, r"docs\.sqlite.*passage ids are exactly 0\.\.47"),
    "docstore-duplicate-live-ids": (_duplicate_live_ids, r"docs\.sqlite.*live doc ids are unique"),
    "docstore-metadata-not-json": (_bad_metadata, r"docs\.sqlite.*metadata is NULL or a JSON object"),
    "docstore-metadata-array": (_array_metadata, r"docs\.sqlite.*metadata is NULL or a JSON object"),
    # 2. hang -> refused at once
    "docstore-recursive-view": (_recursive_view, r"docs\.sqlite.*no views or triggers"),
    "docstore-trigger": (_trigger, r"docs\.sqlite.*no views or triggers"),
    "docstore-info-view": (_info_is_a_view, r"docs\.sqlite.*no views or triggers"),
    "docstore-blob-doc-id": (_blob_doc_id, r"docs\.sqlite.*doc ids are text"),
    "docstore-deleted-2": (_deleted_is_two, r"docs\.sqlite.*'deleted' is 0 or 1"),
    "docstore-not-sqlite": (_not_sqlite, r"docs\.sqlite.*(SQLite database|readable)"),
    "docstore-no-integer-pk": (_without_pk, r"docs\.sqlite.*INTEGER PRIMARY KEY"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_folder_is_refused_with_the_invariant_named(case, sound_index, tmp_path, queries):
    change, expected = CASES[case]
    if case.startswith("stage") and not (generation(sound_index) / "firststage").is_dir():
        pytest.skip("needs the bm25 first stage (pip install bm25s, in colja's dev extra)")
    forged = forge(sound_index, tmp_path / "forged", change)
    started = time.perf_counter()
    with pytest.raises(IndexFormatError, match=expected) as caught:
        index = Index.load(forged)
        index.search_embeddings(queries[0], k=5)  # not reached: loading refuses
    assert time.perf_counter() - started < TIME_BOUND_S
    assert "colja verify" in str(caught.value)
    # the quick verify names the same problem, without raising
    problems = Index.verify(forged, deep=False)
    assert problems, case
    assert any(__import__("re").search(expected, str(p)) for p in problems), problems


def test_the_sound_index_passes_every_check(sound_index, queries):
    assert Index.verify(sound_index, deep=True) == []
    with Index.load(sound_index, mmap=True) as index:
        assert len(index.search_embeddings(queries[0], k=5).pids[0]) == 5


def test_forged_without_rehash_is_caught_by_checksums(sound_index, tmp_path):
    import shutil

    shutil.copytree(sound_index, tmp_path / "x")
    gen = generation(tmp_path / "x")
    a = np.load(gen / "ivf.npy")
    a[0] = 10_000
    np.save(gen / "ivf.npy", a)
    with pytest.raises(IndexFormatError, match=r"ivf\.npy.*checksum"):
        Index.load(tmp_path / "x")


def test_check_hashes_false_still_checks_values(sound_index, tmp_path):
    """Skipping checksums (a fast mmap load) skips no value check."""
    forged = forge(sound_index, tmp_path / "f", _value_at("ivf", 0, 10_000))
    with pytest.raises(IndexFormatError, match="passage ids are in"):
        Index.load(forged, mmap=True, check_hashes=False)


def test_deep_verify_reports_every_problem(sound_index, tmp_path):
    def many(gen):
        _nan_at("centroids", (0, 0))(gen)
        _pid_gap(gen)
        _bad_metadata(gen)
        _duplicate_live_ids(gen)

    forged = forge(sound_index, tmp_path / "f", many)
    problems = [str(p) for p in Index.verify(forged, deep=True)]
    for expected in ("finite values", "passage ids are exactly", "metadata is NULL or a JSON object",
                     "a unique index on docs(doc_id)", "'doc-0' appears on 2 live rows"):
        assert any(expected in p for p in problems), (expected, problems)


def test_deep_verify_finds_what_loading_cannot(sound_index, tmp_path):
    """A code moved to another centroid already in its passage keeps the IVF: only recomputed norms show it."""
    def change(gen):
        codes, doclens = np.load(gen / "codes.npy"), np.load(gen / "doclens.npy")
        offsets = np.concatenate([[0], np.cumsum(doclens)])
        for p in range(len(doclens)):
            mine = codes[offsets[p]:offsets[p + 1]]
            values, counts = np.unique(mine, return_counts=True)
            if len(values) >= 2 and counts.max() >= 2:
                i = offsets[p] + int(np.flatnonzero(mine == values[counts.argmax()])[0])
                other = values[values != values[counts.argmax()]][0]
                def edit(a, i=i, other=other):
                    a[i] = other
                edit_array(gen, "codes", edit)
                return
        pytest.skip("no passage with a repeated centroid")

    forged = forge(sound_index, tmp_path / "f", change)
    Index.load(forged).close()  # every load-time invariant holds
    problems = [str(p) for p in Index.verify(forged, deep=True)]
    assert any("norms are those of the decompressed vectors" in p for p in problems), problems


def test_metadata_that_is_not_json_is_a_named_error_even_past_validation(sound_index, tmp_path):
    """The reader itself names the problem (defence in depth behind the load check)."""
    from colja.index.docstore import DocStore

    forged = forge(sound_index, tmp_path / "f", _bad_metadata)
    store = DocStore.open(generation(forged) / "docs.sqlite")
    try:
        with pytest.raises(IndexFormatError, match="metadata is not JSON"):
            store.records([2])
    finally:
        store.close()
