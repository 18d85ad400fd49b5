"""Fixtures of the kernel tests: the C++ extension is built (or loaded from the
cache) once per test session; tests that play with the loader get an isolated
loader state that is restored afterwards."""

from __future__ import annotations

import os

import pytest
import torch

from colja.kernels import _build


@pytest.fixture(scope="session")
def cpp_module():
    """The compiled CPU kernels (built once per session, ~45 s when not cached)."""
    if os.environ.get("COLJA_KERNELS", "").strip().lower() == "torch":
        pytest.skip("COLJA_KERNELS=torch: the C++ kernels are disabled")
    return _build.require_module("cpu")


@pytest.fixture()
def isolated_loader(monkeypatch, tmp_path):
    """A fresh loader state with its own empty cache; the session's state comes back after."""
    saved = dict(_build._states)
    _build._states.clear()
    monkeypatch.setenv("COLJA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COLJA_KERNELS", raising=False)
    monkeypatch.delenv("COLJA_BUILD_TIMEOUT", raising=False)
    yield tmp_path
    _build._states.clear()
    _build._states.update(saved)


def cuda_available() -> bool:
    return torch.cuda.is_available()
