"""Warnings that point at the user's line, not at colja's source."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _internal(filename: str) -> bool:
    """colja's own files, and the decorators between them (torch.inference_mode, contextlib)."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or os.sep + "torch" + os.sep in path or path.endswith(os.sep + "contextlib.py")


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside colja (the user's call)."""
    level = 2  # 1 would be this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


__all__ = ["warn_at_caller"]
