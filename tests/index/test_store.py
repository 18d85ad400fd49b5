"""On-disk format: manifest, checksums, generations, and the errors for damaged folders."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from colja.errors import IndexExistsError, IndexFormatError, IndexNotFoundError
from colja import Index
from colja.index.store import (
    ARRAYS,
    CURRENT,
    FORMAT_VERSION,
    MANIFEST,
    GenerationWriter,
    check_target,
    cleanup,
    locate_generation,
    sha256_file,
)


@pytest.fixture()
def copy(tmp_path, built_small):
    dst = tmp_path / "copy"
    shutil.copytree(built_small, dst)
    return dst


def gen_of(path):
    return path / (path / CURRENT).read_text().strip()


def test_layout_and_manifest(built_small):
    gen = gen_of(built_small)
    assert gen.name == "gen-000001"
    names = {p.name for p in gen.iterdir()}
    assert names == set(ARRAYS) | {"docs.sqlite", MANIFEST, ".readers"}  # readers lock .readers
    manifest = json.loads((gen / MANIFEST).read_text())
    assert manifest["format"] == "colja-index" and manifest["format_version"] == FORMAT_VERSION
    assert set(manifest["versions"]) >= {"colja", "torch", "numpy"}
    assert manifest["codec"]["nbits"] == 2 and manifest["codec"]["dim"] == 128
    assert manifest["counts"]["passages"] == 120 and manifest["counts"]["live_passages"] == 120
    assert manifest["settings"]["seed"] == 123
    for name, entry in manifest["files"].items():
        assert (gen / name).stat().st_size == entry["bytes"]
        assert sha256_file(gen / name) == entry["sha256"]
    # every array loads with mmap and without pickle
    for name, (dtype, ndim) in ARRAYS.items():
        a = np.load(gen / name, mmap_mode="r", allow_pickle=False)
        assert a.dtype == np.dtype(dtype) and a.ndim == ndim, name


def test_load_exposes_tensors(built_small):
    for mmap in (False, True):
        index = Index.load(built_small, mmap=mmap)
        assert index._snapshot.centroids.dtype == torch.float16 and index._snapshot.centroids.shape[1] == 128
        assert index._snapshot.codes.dtype == torch.int32 and index._snapshot.residuals.dtype == torch.uint8
        assert index._snapshot.residuals.shape == (index.num_embeddings, 32)
        assert index._snapshot.norms.dtype == torch.float32 and index._snapshot.norms.shape == index._snapshot.codes.shape
        assert index._snapshot.doclens.dtype == torch.int64 and index._snapshot.doc_offsets.shape == (121,)
        assert int(index._snapshot.doc_offsets[-1]) == index.num_embeddings
        assert index._snapshot.ivf.dtype == torch.int32 and index._snapshot.ivf_offsets.dtype == torch.int64
        assert int(index._snapshot.ivf_offsets[-1]) == index._snapshot.ivf.shape[0]
        assert index._snapshot.bucket_cutoffs.shape == (3,) and index._snapshot.bucket_weights.shape == (4,)
        assert index.num_passages == 120 and len(index) == 120
        stats = index.stats()
        assert stats["passages"] == 120 and stats["vectors"] == index.num_embeddings and stats["nbits"] == 2
        assert stats["bytes_per_vector"] == pytest.approx(stats["bytes_on_disk"] / stats["vectors"])
        assert stats["compressed_bytes_per_vector"] == 40
        index.close()


def test_mmap_tensors_share_the_file(built_small):
    index = Index.load(built_small, mmap=True)
    arr = np.load(gen_of(built_small) / "residuals.npy", mmap_mode="r")
    assert np.array_equal(index._snapshot.residuals.numpy(), arr)
    backing = index._snapshot.arrays["residuals"]
    assert isinstance(backing, np.memmap) and not backing.flags.writeable
    assert backing.ctypes.data == index._snapshot.residuals.data_ptr()  # a view, not a copy
    index.close()


@pytest.mark.parametrize("name", ["codes.npy", "residuals.npy", "docs.sqlite", "centroids.npy"])
def test_corrupted_file_is_named(copy, name):
    file = gen_of(copy) / name
    data = bytearray(file.read_bytes())
    data[-3] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.") + ".*checksum"):
        Index.load(copy)


def test_truncated_file_is_named(copy):
    file = gen_of(copy) / "residuals.npy"
    with open(file, "r+b") as f:
        f.truncate(file.stat().st_size - 100)
    with pytest.raises(IndexFormatError, match=r"residuals\.npy.*bytes"):
        Index.load(copy)
    # without hashes the size check still catches it
    with pytest.raises(IndexFormatError, match=r"residuals\.npy"):
        Index.load(copy, check_hashes=False)


def test_skipping_hashes_still_checks_headers(copy):
    gen = gen_of(copy)
    manifest = json.loads((gen / MANIFEST).read_text())
    np.save(gen / "codes.npy", np.zeros(manifest["counts"]["embeddings"], dtype=np.int64))  # wrong dtype
    manifest["files"]["codes.npy"]["bytes"] = (gen / "codes.npy").stat().st_size
    (gen / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=r"codes\.npy.*int32"):
        Index.load(copy, check_hashes=False)


def test_missing_file(copy):
    os.remove(gen_of(copy) / "ivf.npy")
    with pytest.raises(IndexFormatError, match=r"ivf\.npy.*missing"):
        Index.load(copy)


def test_newer_format_version_names_both(copy):
    file = gen_of(copy) / MANIFEST
    manifest = json.loads(file.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    file.write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=rf"version {FORMAT_VERSION + 1}.*newer.*version {FORMAT_VERSION}"):
        Index.load(copy)


def test_foreign_and_broken_manifests(copy):
    file = gen_of(copy) / MANIFEST
    good = file.read_text()
    file.write_text(good[: len(good) // 2])
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        Index.load(copy)
    file.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(IndexFormatError, match="not a colja index manifest"):
        Index.load(copy)
    os.remove(file)
    with pytest.raises(IndexFormatError, match="manifest.json is missing"):
        Index.load(copy)


def test_current_pointing_nowhere_or_garbage(copy):
    (copy / CURRENT).write_text("gen-000009\n")
    with pytest.raises(IndexFormatError, match="gen-000009.*missing"):
        Index.load(copy)
    (copy / CURRENT).write_text("../../etc\n")
    with pytest.raises(IndexFormatError, match="generation name"):
        Index.load(copy)


def test_not_an_index(tmp_path):
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        Index.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFoundError, match="empty"):
        Index.load(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(IndexFormatError, match="not a colja index"):
        Index.load(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexFormatError, match="is a file"):
        Index.load(tmp_path / "file")


def test_stanford_folder_is_recognised(tmp_path):
    from .index_helpers import REFERENCE_INDEX

    with pytest.raises(IndexFormatError, match="import_stanford"):
        Index.load(REFERENCE_INDEX / "stanford-index")


def test_unfinished_first_build_is_no_index(tmp_path):
    (tmp_path / "idx" / ".tmp-gen-000001-1-abc").mkdir(parents=True)
    with pytest.raises(IndexNotFoundError, match="did not finish"):
        Index.load(tmp_path / "idx")
    (tmp_path / "idx2" / "gen-000001").mkdir(parents=True)
    with pytest.raises(IndexNotFoundError, match="did not finish"):
        Index.load(tmp_path / "idx2")


def test_generation_folder_can_be_loaded_directly(built_small):
    index = Index.load(gen_of(built_small))
    assert index.num_passages == 120
    index.close()


def test_check_target(tmp_path, built_small):
    assert check_target(tmp_path / "new", overwrite=False) == tmp_path / "new"
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        check_target(built_small, overwrite=False)
    check_target(built_small, overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(IndexExistsError):
        check_target(tmp_path / "f", overwrite=True)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "thesis.tex").write_text("x")
    with pytest.raises(IndexExistsError, match="not a colja index"):
        check_target(tmp_path / "user", overwrite=True)
    (tmp_path / "leftover" / "gen-000003").mkdir(parents=True)  # crashed build: fine
    check_target(tmp_path / "leftover", overwrite=False)


def _write_min_generation(writer, value):
    for name, (dtype, ndim) in ARRAYS.items():
        writer.save_array(name, np.full((2,) * ndim, value, dtype=dtype))
    (writer.path("docs.sqlite")).write_bytes(b"x")


def test_generation_writer_switch_cleanup_and_links(tmp_path, monkeypatch):
    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")
    root = tmp_path / "idx"
    with GenerationWriter(root) as w:
        _write_min_generation(w, 1)
        first = w.commit({"format": "colja-index", "format_version": 1})
    assert (root / CURRENT).read_text() == "gen-000001\n"
    # leftovers of crashed writers
    (root / "gen-000005").mkdir()
    (root / ".tmp-gen-000007-1-x").mkdir()
    (root / "CURRENT.tmp-1-x").write_text("gen-000005\n")
    with GenerationWriter(root) as w:
        assert w.number == 8
        w.link("codes.npy", first)
        for name, (dtype, ndim) in ARRAYS.items():
            if name != "codes.npy":
                w.save_array(name, np.full((2,) * ndim, 2, dtype=dtype))
        (w.path("docs.sqlite")).write_bytes(b"y")
        linked_inode = os.stat(w.path("codes.npy")).st_ino
        assert linked_inode == os.stat(first / "codes.npy").st_ino
        second = w.commit({"format": "colja-index", "format_version": 1})
    assert (root / CURRENT).read_text() == "gen-000008\n"
    assert sorted(p.name for p in root.iterdir()) == [".lock", CURRENT, "gen-000008"]
    assert np.load(second / "codes.npy")[0] == 1 and np.load(second / "ivf.npy")[0] == 2
    assert locate_generation(root) == second


def test_failed_writer_leaves_nothing(tmp_path):
    root = tmp_path / "idx"
    with pytest.raises(RuntimeError):
        with GenerationWriter(root) as w:
            w.save_array("codes.npy", np.zeros(3, np.int32))
            raise RuntimeError("boom")
    assert not root.exists()
    root.mkdir()
    with pytest.raises(RuntimeError, match="missing"):  # incomplete generation refused
        with GenerationWriter(root) as w:
            w.commit({})
    assert [p.name for p in root.iterdir()] == [".lock"]
    cleanup(root)


def test_writers_are_serialised(tmp_path):
    import threading

    root = tmp_path / "idx"
    first = GenerationWriter(root)
    events = []

    def second_writer():
        with GenerationWriter(root) as w:  # blocks until the first one commits
            events.append(("second starts", w.number))
            _write_min_generation(w, 2)
            w.commit({"format": "colja-index", "format_version": 1})

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and not events  # waiting for the lock
    _write_min_generation(first, 1)
    first.commit({"format": "colja-index", "format_version": 1})
    thread.join(10)
    assert first.number == 1 and events == [("second starts", 2)]
    assert (root / CURRENT).read_text() == "gen-000002\n"


def test_lock_file_only_is_an_unfinished_build(tmp_path):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / ".lock").write_text("")
    with pytest.raises(IndexNotFoundError, match="did not finish"):
        Index.load(tmp_path / "idx")
    check_target(tmp_path / "idx", overwrite=False)
