"""Argument validation at the Python boundary of colja.kernels.

Messages name the argument, what was expected and what was found. Every
checked tensor is returned ``.contiguous()`` (a no-op when it already is).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


def _dtype_name(dt: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dt, str(dt).replace("torch.", ""))


def tensor(
    name: str,
    x: object,
    dtypes: Sequence[torch.dtype],
    shape: str,
    ndim: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Check type, dtype, rank and device of ``x``; return it contiguous.

    ``shape`` is the documented shape, e.g. ``"[n, P]"``, used in messages.
    """
    expected = " or ".join(_dtype_name(d) for d in dtypes)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor ({expected} {shape}), found {type(x).__name__}")
    if x.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {expected} ({shape}), found {_dtype_name(x.dtype)}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape}, found shape {tuple(x.shape)}")
    if device is not None and x.device != device:
        raise ValueError(f"{name} must be on the same device as the other inputs ({device}), found {x.device}")
    return x.contiguous()


def size(name: str, x: torch.Tensor, axis: int, expected: int, what: str) -> None:
    if x.shape[axis] != expected:
        raise ValueError(
            f"{name} must have {what} = {expected} along dim {axis}, found shape {tuple(x.shape)}"
        )


def nbits(value: object, dim: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"nbits must be an int (1, 2 or 4), found {type(value).__name__}")
    if value not in (1, 2, 4):
        raise ValueError(f"nbits must be 1, 2 or 4, found {value}")
    if dim is not None and (dim * value) % 8:
        raise ValueError(
            f"dim * nbits must be a multiple of 8, found dim={dim}, nbits={value} "
            f"(with nbits={value}, dim must be a multiple of {8 // value})"
        )
    return value


def count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, found {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, found {value}")
    return value


def impl(value: object) -> str:
    if value not in ("auto", "torch", "cpp", "cuda"):
        raise ValueError(f"impl must be 'auto', 'torch', 'cpp' or 'cuda', found {value!r}")
    return value  # type: ignore[return-value]
