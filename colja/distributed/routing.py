"""Which shard owns a document, and how a shard's passage ids become one id space.

A document goes to shard ``blake2b(utf-8 id, 8 bytes) mod N``: the same id
lands on the same shard in every process, on every machine, in every Python
version (unlike ``hash()``). Every passage split from a document goes with it
(routing uses the document id, not the passage id ``"d#j"``).

Search results name a passage by a global id ``shard << 40 | local pid``:
ordering global ids orders by shard, then by the shard's passage id, which is
the deterministic tie-break of a merge.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

#: bits of a global passage id that hold the shard's own passage id
LOCAL_BITS = 40
_LOCAL_MASK = (1 << LOCAL_BITS) - 1


def shard_of(doc_id: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) that owns document ``doc_id``."""
    if num_shards == 1:
        return 0
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def shards_of(doc_ids: Sequence[str], num_shards: int) -> np.ndarray:
    """:func:`shard_of` of each id, as an int64 array."""
    return np.fromiter((shard_of(d, num_shards) for d in doc_ids), dtype=np.int64, count=len(doc_ids))


def global_pids(shard: int, local: np.ndarray) -> np.ndarray:
    """Global ids of shard ``shard``'s passages ``local`` (``-1`` padding stays ``-1``)."""
    local = np.asarray(local, dtype=np.int64)
    return np.where(local >= 0, (np.int64(shard) << LOCAL_BITS) | local, -1)


def split_pid(pid: int) -> tuple[int, int]:
    """``(shard, local pid)`` of a global passage id."""
    pid = int(pid)
    if pid < 0:
        raise ValueError(f"passage id {pid} is padding, not a passage")
    return pid >> LOCAL_BITS, pid & _LOCAL_MASK


__all__ = ["shard_of", "shards_of", "global_pids", "split_pid", "LOCAL_BITS"]
