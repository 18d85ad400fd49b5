"""Progress bars: tqdm when wanted, a no-op otherwise."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

# Batches above which ``show_progress=None`` turns a bar on.
AUTO_MIN_STEPS = 10


def progress_enabled(show_progress: bool | None, steps: int) -> bool:
    if os.environ.get("COLJA_DISABLE_PROGRESS"):
        return False
    if show_progress is None:
        return steps >= AUTO_MIN_STEPS
    return bool(show_progress)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", show: bool = False, unit: str = "it") -> Iterator[T]:
    if not show:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)
