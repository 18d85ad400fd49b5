"""Which torch device a build or a search runs on."""

from __future__ import annotations

from typing import Any

import torch


def resolve_device(device: Any) -> torch.device | None:
    """``device`` as a :class:`torch.device` (None stays None: the caller's default).

    ``"cuda"`` where torch sees no CUDA device is a ``ValueError`` that says so,
    never a crash later in a kernel.
    """
    if device is None:
        return None
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (or a torch.device), got {device!r}") from exc
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but torch sees no CUDA device "
                             f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use device='cpu'")
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    elif found.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return found


__all__ = ["resolve_device"]
