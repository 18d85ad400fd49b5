"""Keep large CPU buffers in the process's heap (glibc) so that encoding does not page-fault them in again.

PyTorch allocates each activation of a BERT layer anew (tens of MB for a batch
of passages). glibc serves blocks above its mmap threshold (at most 32 MB by
default) with fresh ``mmap`` calls, so every such block is faulted in page by
page and returned at ``free``: on a bert-base-sized encoder that is ~10 % of
the CPU time. Raising the mmap and trim thresholds lets freed blocks be reused
instead, as jemalloc or tcmalloc would (which is what PyTorch's CPU tuning guide
recommends preloading). The cost: up to the trim threshold of freed memory stays
with the process.

Applied once, when a model is loaded on the CPU; ``COLJA_MALLOC_TUNING=0`` leaves
the allocator alone. Only on Linux with glibc; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import platform

logger = logging.getLogger(__name__)

ENV = "COLJA_MALLOC_TUNING"
MMAP_THRESHOLD = 256 << 20  # blocks below this come from the heap (default: adaptive, at most 32 MiB)
TRIM_THRESHOLD = 512 << 20  # freed memory kept at the top of the heap before it is returned
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap / trim thresholds once per process; ``True`` if they were set."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    if done:
        logger.debug("glibc mmap threshold %d MiB, trim threshold %d MiB ($%s=0 to leave them)",
                     MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20, ENV)
    return done
