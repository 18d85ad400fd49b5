"""Finding the CUDA toolkit: environment, NVIDIA's PyPI wheels, PATH (no GPU or toolkit needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from colja.kernels import _toolkit
from colja.kernels._toolkit import find_toolkit


def _fake_home(root: Path) -> Path:
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\necho fake nvcc\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR)
    return root


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("CUDA_HOME", "CUDA_PATH", "COLJA_CUDA_TOOLKIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_toolkit, "wheel_homes", lambda: [])
    return monkeypatch


def test_nothing_found_gives_none_and_a_hint(clean_env):
    assert find_toolkit() is None
    assert "colja[cuda-build]" in _toolkit.install_hint()


def test_cuda_home_wins_in_auto_mode(clean_env, tmp_path):
    env_home = _fake_home(tmp_path / "env")
    wheel_home = _fake_home(tmp_path / "site" / "nvidia" / "cu13")
    clean_env.setattr(_toolkit, "wheel_homes", lambda: [wheel_home])
    clean_env.setenv("CUDA_HOME", str(env_home))
    assert find_toolkit() == _toolkit.Toolkit(env_home, "env")
    clean_env.setenv("COLJA_CUDA_TOOLKIT", "wheels")  # CI: only the wheels count
    assert find_toolkit() == _toolkit.Toolkit(wheel_home, "wheels")


def test_system_nvcc_on_path(clean_env, tmp_path):
    home = _fake_home(tmp_path / "cuda-13.0")
    clean_env.setenv("PATH", str(home / "bin"))
    found = find_toolkit()
    assert found is not None and found.source == "system" and found.home == home
    clean_env.setenv("COLJA_CUDA_TOOLKIT", "wheels")
    assert find_toolkit() is None


def test_a_cuda_home_without_nvcc_is_skipped(clean_env, tmp_path):
    clean_env.setenv("CUDA_HOME", str(tmp_path))  # no bin/nvcc there
    assert find_toolkit() is None


def test_bad_mode_is_a_clear_error(clean_env):
    clean_env.setenv("COLJA_CUDA_TOOLKIT", "conda")
    with pytest.raises(ValueError, match="COLJA_CUDA_TOOLKIT must be auto, env, wheels or system"):
        find_toolkit()


def test_wheel_homes_reads_the_nvidia_namespace(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_home(site / "nvidia" / "cu12")
    _fake_home(site / "nvidia" / "cu13")
    (site / "nvidia" / "cu11").mkdir(parents=True)  # no nvcc: ignored
    monkeypatch.syspath_prepend(str(site))
    import importlib
    import sys

    sys.modules.pop("nvidia", None)
    importlib.invalidate_caches()
    homes = [h for h in _toolkit.wheel_homes() if str(h).startswith(str(site))]
    assert [h.name for h in homes] == ["cu13", "cu12"]
    assert all(os.access(h / "bin" / "nvcc", os.X_OK) for h in homes)
