"""Numeric precision of the encoder on the CPU: fp32, bf16 or int8, chosen per machine.

Measured on a bert-base-sized ColBERT (2 threads, Intel Xeon with AMX): bf16
weights encode passages 3.8x and queries 1.9x faster than fp32, int8 dynamic
quantisation of the backbone's linear layers 1.9x / 2.4x; the vectors keep a
mean token cosine of 0.9999 (bf16) and 0.999 (int8) with fp32
(``benchmarks/encode.py``). bf16 is fast only where the CPU computes it natively
(AMX-BF16 or AVX512-BF16); elsewhere int8 (AVX2 with PyTorch's x86/fbgemm
engine) is the fast path.

``precision="auto"`` (the default of :meth:`colja.ColBERT.from_pretrained`)
picks bf16, then int8, then fp32 for the CPU, and fp32 on GPUs (use
``dtype=`` there). ``$COLJA_PRECISION`` replaces ``auto``. ``precision="fp32"``
gives exactly the reference implementation's vectors. The projection and the
L2 normalisation always run in fp32.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "int8")
PRECISION_ENV = "COLJA_PRECISION"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether the CPU computes bf16 matrix products natively (AMX-BF16 or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def fast_int8() -> bool:
    """Whether PyTorch has a fast x86 int8 engine here (it needs AVX2)."""
    engines = set(torch.backends.quantized.supported_engines)
    return bool({"x86", "fbgemm"} & engines) and "avx2" in cpu_flags()


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``int8`` for ``precision`` (``auto``: see the module docstring) on ``device``."""
    value = "auto" if precision is None else precision
    if value == "auto":
        value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
        where = f" (from ${PRECISION_ENV})"
    else:
        where = ""
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}{where}, got {value!r}")
    if value == "auto":
        if device.type != "cpu":
            return "fp32"
        return "bf16" if native_bf16() else "int8" if fast_int8() else "fp32"
    if value == "int8" and device.type != "cpu":
        raise ValueError("precision='int8' runs on the CPU only; on a GPU use dtype='bfloat16' or 'float16'")
    return value


def apply_precision(backbone: nn.Module, precision: str) -> nn.Module:
    """``backbone`` in ``precision`` (int8: its linear layers dynamically quantised; a new module)."""
    if precision == "bf16":
        return backbone.to(torch.bfloat16)
    if precision == "int8":
        engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return torch.ao.quantization.quantize_dynamic(backbone, {nn.Linear}, dtype=torch.qint8)
    return backbone


__all__ = ["PRECISIONS", "PRECISION_ENV", "apply_precision", "cpu_flags", "fast_int8", "native_bf16",
           "resolve_precision"]
