"""Every SIMD path of the C++ kernels agrees with the PyTorch references, whatever this CPU's best path is.

The default build uses the best path of the machine (AVX-512 here); users on AVX2-only
or older CPUs get another. Each is forced here with compile flags, built in a fresh
cache, and put through the whole kernel test suite in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PATHS = {"avx2": "-DCOLJA_DISABLE_AVX512", "scalar": "-DCOLJA_DISABLE_AVX512 -mno-avx2 -mno-fma"}


@pytest.mark.parametrize("simd", sorted(PATHS))
def test_forced_simd_path_passes_the_kernel_suite(simd, tmp_path):
    env = dict(os.environ, COLJA_CACHE_DIR=str(tmp_path / "cache"), COLJA_KERNELS_CFLAGS=PATHS[simd],
               COLJA_KERNELS="cpp", PYTHONPATH=str(REPO), COLJA_QUIET="1")
    probe = subprocess.run([sys.executable, "-c", "from colja.kernels import _build; "
                            "print(_build.require_module('cpu').simd())"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip().splitlines()[-1] == simd
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            str(REPO / "tests" / "kernels" / "test_ops.py")],
                           capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert suite.returncode == 0, suite.stdout[-3000:]
