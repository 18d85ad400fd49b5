"""Numeric precision of the encoder on the CPU: fp32, bf16 or int8, chosen per machine.

Measured on a bert-base-sized ColBERT against the reference encoder (colbert-ai,
fp32; 2 threads, 2-core Intel Xeon with AVX-512 and AMX; ``benchmarks/encode.py
--part precision``): passages/s 4.9x in bf16 and 3.5x in int8 (oneDNN's AMX-INT8
engine), single queries 2.0x / 2.4x; with PyTorch capped to AVX2 (``--cap-isa
avx2``), int8 (fbgemm) 1.85x / 1.96x. The vectors keep a mean token cosine of
0.9999 with fp32, and exact-MaxSim top-10 agreement with fp32 of 0.997 (bf16) /
0.995 (int8) on the small model. bf16 is fast only on AMX (not capped by
``$ONEDNN_MAX_CPU_ISA`` / ``$ATEN_CPU_CAPABILITY``): with AVX512-BF16 alone it is
slower than fp32 (see :func:`native_bf16`), so int8 (AVX2 and up) is the fast path
everywhere else. Both fast paths compute the feed-forward GELU in place.

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


# oneDNN ISA names (``$ONEDNN_MAX_CPU_ISA``) that still allow its AMX kernels.
_ONEDNN_AMX = frozenset({"all", "avx512_core_amx", "avx512_core_amx_fp16", "avx10_1_512_amx", "avx10_1_512_amx_fp16"})


def isa_capped_below_amx() -> bool:
    """Whether the environment caps PyTorch below AMX (``$ONEDNN_MAX_CPU_ISA`` / ``$DNNL_MAX_CPU_ISA`` set to
    an ISA without AMX, or ``$ATEN_CPU_CAPABILITY`` avx2/default), as when a build is tried for other CPUs."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip().lower()
        if value and value not in _ONEDNN_AMX:
            return True
    return os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() in ("avx2", "default")


def native_bf16() -> bool:
    """Whether bf16 matrix products are faster than fp32 here: AMX-BF16, not capped.

    AVX512-BF16 alone (Zen 4, Cooper Lake) does not count: measured with oneDNN capped to
    AVX512_CORE_BF16, a bert-base encoder runs 0.6x fp32 in bf16 and 2.0x in int8."""
    return "amx_bf16" in cpu_flags() and not isa_capped_below_amx()


def fast_int8() -> bool:
    """Whether PyTorch has a fast x86 int8 engine here (it needs AVX2)."""
    engines = set(torch.backends.quantized.supported_engines)
    return bool({"onednn", "x86", "fbgemm"} & engines) and "avx2" in cpu_flags()


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


def int8_engine() -> str:
    """PyTorch's quantized engine for int8: oneDNN where the CPU has AMX-INT8 (1.4x fbgemm's passages/s there),
    else x86 / fbgemm (oneDNN's single queries are up to 1.6x slower on AVX2; passages within 5 %)."""
    engines = torch.backends.quantized.supported_engines
    if "onednn" in engines and "amx_int8" in cpu_flags() and not isa_capped_below_amx():
        return "onednn"
    return next((e for e in ("x86", "fbgemm", "onednn") if e in engines), engines[0])


class InplaceGELU(nn.Module):
    """Exact (erf) GELU written over its input when no gradient is recorded: the feed-forward layer's
    intermediate activation is used once, so this saves allocating and writing a second one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return nn.functional.gelu(x)
        return torch._C._nn.gelu_(x)


def inplace_activations(backbone: nn.Module) -> int:
    """Swap the exact GELUs of BERT-style feed-forward layers (``intermediate_act_fn``) for :class:`InplaceGELU`;
    the number swapped (same values: the same kernel, written in place)."""
    swapped = 0
    for module in backbone.modules():
        act = getattr(module, "intermediate_act_fn", None)
        if type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is nn.functional.gelu:
            module.intermediate_act_fn = InplaceGELU()
            swapped += 1
    return swapped


def apply_precision(backbone: nn.Module, precision: str) -> nn.Module:
    """``backbone`` in ``precision`` (int8: its linear layers dynamically quantised; a new module).

    The fast precisions also compute their feed-forward GELUs in place (:func:`inplace_activations`)."""
    if precision in ("bf16", "int8"):
        inplace_activations(backbone)
    if precision == "bf16":
        return backbone.to(torch.bfloat16)
    if precision == "int8":
        torch.backends.quantized.engine = int8_engine()
        with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return torch.ao.quantization.quantize_dynamic(backbone, {nn.Linear}, dtype=torch.qint8)
    return backbone


__all__ = ["PRECISIONS", "PRECISION_ENV", "InplaceGELU", "apply_precision", "cpu_flags", "fast_int8",
           "inplace_activations", "int8_engine", "isa_capped_below_amx", "native_bf16", "resolve_precision"]
