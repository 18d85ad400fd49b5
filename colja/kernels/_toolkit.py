"""Where the CUDA toolkit (nvcc + headers) comes from.

Three places, in this order unless ``COLJA_CUDA_TOOLKIT`` picks one:

* ``env``: ``$CUDA_HOME`` / ``$CUDA_PATH`` (an installed toolkit the user points at);
* ``wheels``: NVIDIA's PyPI wheels in this environment (``pip install "colja[cuda-build]"``
  installs ``nvidia-cuda-nvcc`` & co. under ``site-packages/nvidia/cu<major>/``);
* ``system``: ``nvcc`` on ``PATH`` (e.g. ``/usr/local/cuda/bin``).

``COLJA_CUDA_TOOLKIT=wheels`` (what CI sets) accepts only the wheels, so a CI
run proves the extra works rather than a toolkit that happens to be installed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("env", "wheels", "system")


@dataclass(frozen=True)
class Toolkit:
    """A CUDA toolkit: ``home`` holds ``bin/nvcc`` and ``include/``."""

    home: Path
    source: str  # one of SOURCES

    @property
    def nvcc(self) -> Path:
        return self.home / "bin" / "nvcc"


def _has_nvcc(home: Path) -> bool:
    return (home / "bin" / "nvcc").is_file() and os.access(home / "bin" / "nvcc", os.X_OK)


def wheel_homes() -> list[Path]:
    """``site-packages/nvidia/cu*`` folders that hold an nvcc, newest CUDA major first."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    homes = [p for root in spec.submodule_search_locations for p in Path(root).glob("cu[0-9]*") if _has_nvcc(p)]
    return sorted(homes, key=lambda p: int(p.name[2:]), reverse=True)


def _candidates(source: str) -> list[Path]:
    if source == "env":
        found = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
        return [Path(p) for p in found if p]
    if source == "wheels":
        return wheel_homes()
    nvcc = shutil.which("nvcc")
    return [Path(os.path.realpath(nvcc)).parent.parent] if nvcc else []


def find_toolkit() -> Toolkit | None:
    """The CUDA toolkit to build with, or None (see the module docstring for the order)."""
    wanted = os.environ.get("COLJA_CUDA_TOOLKIT", "auto").strip().lower() or "auto"
    if wanted not in ("auto", *SOURCES):
        raise ValueError(f"COLJA_CUDA_TOOLKIT must be auto, env, wheels or system, got {wanted!r}")
    for source in SOURCES if wanted == "auto" else (wanted,):
        for home in _candidates(source):
            if _has_nvcc(home):
                return Toolkit(home=home, source=source)
    return None


def install_hint() -> str:
    return ('install the CUDA compiler with pip install "colja[cuda-build]" (NVIDIA\'s wheels), '
            "or a CUDA toolkit matching torch.version.cuda and set CUDA_HOME")


__all__ = ["Toolkit", "find_toolkit", "wheel_homes", "install_hint", "SOURCES"]
