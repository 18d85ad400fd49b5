"""The kernel loader: cache, lock, fallback and environment switches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import pytest
import torch

import colja.kernels as K
from colja.errors import KernelFallbackWarning
from colja.kernels import _build
from tests.kernels.kernel_samples import make_case


def _broken_sources(tmp_path):
    src = tmp_path / "csrc-broken"
    src.mkdir()
    (src / "kernels.cpp").write_text("this is not C++ ;\n")
    return src


def _calls(case):
    """A few public calls with impl='auto'; returns (auto results, reference results)."""
    codec = (case.codes, case.residuals, case.centroids, case.bucket_weights, case.nbits)
    auto = [
        K.decompress_residuals(*codec),
        K.centroid_interaction(case.cst, case.codes, case.doc_offsets, case.pids, case.keep),
        K.filter_candidates(case.cst, case.codes, case.doc_offsets, case.pids, case.keep, 5, 3)[0],
        K.maxsim_dense(case.Q, K.decompress_residuals(*codec), case.doc_offsets),
    ]
    ref = [
        K.decompress_residuals_ref(*codec),
        K.centroid_interaction_ref(case.cst, case.codes, case.doc_offsets, case.pids, case.keep),
        K.filter_candidates_ref(case.cst, case.codes, case.doc_offsets, case.pids, case.keep, 5, 3)[0],
        K.maxsim_dense_ref(case.Q, K.decompress_residuals_ref(*codec), case.doc_offsets),
    ]
    return auto, ref


CASE = make_case("loader", dim=64, nbits=2, Lq=7, doclens=[3, 0, 5, 1, 9, 2])


def test_failed_build_warns_once_and_falls_back(isolated_loader, monkeypatch):
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(_broken_sources(isolated_loader)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto, ref = _calls(CASE)
        auto2, _ = _calls(CASE)  # no retry, no second warning
    fallback = [w for w in caught if issubclass(w.category, KernelFallbackWarning)]
    assert len(fallback) == 1, [str(w.message) for w in caught]
    message = str(fallback[0].message)
    print(message)
    assert "compiler failed" in message and "COLJA_KERNELS=torch" in message
    for a, b in zip(auto + auto2, ref + ref):
        torch.testing.assert_close(a, b)
    assert K.backend().startswith("torch (fallback: the compiler failed")
    with pytest.raises(K.KernelBuildError, match="unavailable"):
        K.decompress_residuals(CASE.codes, CASE.residuals, CASE.centroids, CASE.bucket_weights, 2, impl="cpp")
    # the failed build left no lock and no half-built folder behind
    root = _build.cache_root()
    assert not list(root.glob("*.lock")) and not list(root.glob("*.build-*"))


def test_colja_kernels_cpp_makes_a_failed_build_an_error(isolated_loader, monkeypatch):
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(_broken_sources(isolated_loader)))
    monkeypatch.setenv("COLJA_KERNELS", "cpp")
    with pytest.raises(K.KernelBuildError, match="COLJA_KERNELS=cpp"):
        K.centroid_interaction(CASE.cst, CASE.codes, CASE.doc_offsets, CASE.pids, None)


def test_colja_kernels_torch_never_builds(isolated_loader, monkeypatch):
    monkeypatch.setenv("COLJA_KERNELS", "torch")

    def no_build(kind):
        raise AssertionError("a build was attempted with COLJA_KERNELS=torch")

    monkeypatch.setattr(_build, "_build_or_load", no_build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        auto, ref = _calls(CASE)
    for a, b in zip(auto, ref):
        torch.testing.assert_close(a, b)
    assert K.backend() == "torch (fallback: COLJA_KERNELS=torch)"
    assert not (isolated_loader / "cache").exists()


def test_invalid_colja_kernels_value(isolated_loader, monkeypatch):
    monkeypatch.setenv("COLJA_KERNELS", "fast")
    with pytest.raises(ValueError, match="COLJA_KERNELS must be"):
        K.centroid_interaction(CASE.cst, CASE.codes, CASE.doc_offsets, CASE.pids, None)


def test_missing_ninja_falls_back_with_the_fix(isolated_loader, monkeypatch):
    monkeypatch.setattr("torch.utils.cpp_extension.is_ninja_available", lambda: False)
    with pytest.warns(KernelFallbackWarning, match="(?s)ninja is not installed.*pip install ninja"):
        K.maxsim_dense(CASE.Q, CASE.Q, torch.tensor([0, 3, 7]))
    assert "ninja" in K.backend()


def test_build_timeout_kills_the_build_and_falls_back(isolated_loader, monkeypatch):
    src = isolated_loader / "csrc-copy"
    shutil.copytree(_build.source_dir(), src, ignore=shutil.ignore_patterns("cuda"))
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(src))
    monkeypatch.setenv("COLJA_BUILD_TIMEOUT", "1")
    t0 = time.monotonic()
    with pytest.warns(KernelFallbackWarning, match="longer than 1 s"):
        out = K.centroid_interaction(CASE.cst, CASE.codes, CASE.doc_offsets, CASE.pids, None)
    assert time.monotonic() - t0 < 30
    torch.testing.assert_close(out, K.centroid_interaction_ref(CASE.cst, CASE.codes, CASE.doc_offsets, CASE.pids))
    assert not list(_build.cache_root().glob("*.lock"))


def test_cached_build_is_imported_without_building(cpp_module, monkeypatch):
    saved = dict(_build._states)
    _build._states.clear()
    try:
        def no_build(*a, **k):
            raise AssertionError("rebuilt although the cache holds this build")

        monkeypatch.setattr(_build, "_run_build", no_build)
        t0 = time.perf_counter()
        assert _build.get_module("cpu") is not None
        assert time.perf_counter() - t0 < 10
        info = K.backend_info()
        assert info["backend"] == "cpp" and not info["built"] and info["simd"] in ("avx512", "avx2", "scalar")
    finally:
        _build._states.clear()
        _build._states.update(saved)


def test_cache_key_changes_with_sources_and_flags(tmp_path, monkeypatch):
    src = tmp_path / "src"
    shutil.copytree(_build.source_dir(), src, ignore=shutil.ignore_patterns("cuda"))
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(src))
    key = _build._build_spec("cpu")["key"]
    assert key == _build._build_spec("cpu")["key"]
    monkeypatch.setenv("COLJA_KERNELS_CFLAGS", "-DCOLJA_DISABLE_AVX512")
    key_flags = _build._build_spec("cpu")["key"]
    assert key_flags != key
    (src / "kernels.cpp").write_text((src / "kernels.cpp").read_text() + "\n// edit\n")
    assert _build._build_spec("cpu")["key"] not in (key, key_flags)


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COLJA_CACHE_DIR", str(tmp_path))
    assert _build.cache_root() == tmp_path / "kernels"


def test_source_dir_default_is_the_repository_csrc(monkeypatch):
    monkeypatch.delenv("COLJA_KERNELS_SRC", raising=False)
    src = _build.source_dir()
    assert (src / "kernels.cpp").exists() and (src / "bindings.cpp").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_locks_are_detected(tmp_path):
    lock = tmp_path / "x.lock"
    assert _build._try_lock(lock)
    assert not _build._try_lock(lock)  # held (O_EXCL)
    assert not _build._lock_is_stale(lock, timeout=60)  # our pid is alive
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename, "time": time.time()}))
    assert _build._lock_is_stale(lock, timeout=60)  # holder is dead
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "time": time.time()}))
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert _build._lock_is_stale(lock, timeout=60)  # older than the timeout
    _build._unlock(lock)
    assert not lock.exists()


def test_stale_lock_is_removed_before_building(isolated_loader, monkeypatch):
    monkeypatch.setenv("COLJA_KERNELS_SRC", str(_broken_sources(isolated_loader)))
    spec = _build._build_spec("cpu")
    root = _build.cache_root()
    root.mkdir(parents=True)
    lock = root / (spec["key"] + ".lock")
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename, "time": time.time()}))
    with pytest.warns(KernelFallbackWarning, match="compiler failed"):  # it went on to build
        K.centroid_interaction(CASE.cst, CASE.codes, CASE.doc_offsets, CASE.pids, None)
    assert not lock.exists()


def test_waits_for_a_live_lock_holder_then_imports_its_build(cpp_module, monkeypatch, tmp_path):
    """A second process finds the lock held; once the holder's .so appears, it imports it."""
    import threading

    info = K.backend_info()  # the session build (restored below)
    spec = _build._build_spec("cpu")
    saved = dict(_build._states)
    _build._states.clear()
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLJA_CACHE_DIR", str(cache))
    root = _build.cache_root()
    root.mkdir(parents=True)
    lock = root / (spec["key"] + ".lock")
    assert _build._try_lock(lock)  # "another process" (alive: our pid) holds the lock
    monkeypatch.setattr(_build, "_run_build", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))

    def finish_build():
        time.sleep(1.0)
        target = root / spec["key"] / (spec["name"] + ".so")
        target.parent.mkdir(parents=True)
        shutil.copy2(info["path"], target)
        _build._unlock(lock)

    try:
        threading.Thread(target=finish_build).start()
        t0 = time.monotonic()
        assert _build.get_module("cpu") is not None
        assert 0.9 < time.monotonic() - t0 < 30
    finally:
        _build._states.clear()
        _build._states.update(saved)
