"""Every SIMD path of the C++ kernels agrees with the PyTorch references, whatever this CPU's best path is.

The default build uses the best path of the machine (AVX-512 with VNNI here); users on AVX2-only
or older CPUs get another. Each is forced here with compile flags, built in a fresh
cache, and put through the whole kernel test suite in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# forced path -> (compiler flags, SIMD name, approximate scorer of 2-bit residuals)
PATHS = {
    "avx2": ("-DCOLJA_DISABLE_AVX512", "avx2", "int8-nibble"),
    "scalar": ("-DCOLJA_DISABLE_AVX512 -mno-avx2 -mno-fma", "scalar", "int8-nibble"),
    "avx512-no-vnni": ("-DCOLJA_DISABLE_VNNI", "avx512", "int8-nibble"),
}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return {w for line in f if line.startswith("flags") for w in line.split(":", 1)[1].split()}
    except OSError:
        return set()


@pytest.mark.parametrize("path", sorted(PATHS))
def test_forced_simd_path_passes_the_kernel_suite(path, tmp_path):
    flags, simd, approx = PATHS[path]
    if path.startswith("avx512") and not {"avx512f", "avx512bw"} <= _cpu_flags():
        pytest.skip("this CPU has no AVX-512: the AVX-512 build cannot run here (the AVX2 and scalar paths still run)")
    env = dict(os.environ, COLJA_CACHE_DIR=str(tmp_path / "cache"), COLJA_KERNELS_CFLAGS=flags,
               COLJA_KERNELS="cpp", PYTHONPATH=str(REPO), COLJA_QUIET="1")
    probe = subprocess.run([sys.executable, "-c", "from colja.kernels import _build; "
                            "m = _build.require_module('cpu'); print(m.simd(), m.approx_path(2))"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip().splitlines()[-1] == f"{simd} {approx}"
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            str(REPO / "tests" / "kernels" / "test_ops.py")],
                           capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert suite.returncode == 0, suite.stdout[-3000:]
