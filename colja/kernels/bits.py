"""Residual bucket (de)packing in the exact ColBERTv2 bit layout.

Each residual dimension ``j`` of a vector has a bucket index ``b_j`` in
``[0, 2**nbits)``. The bits of ``b_j`` are emitted LSB first (bit 0, then bit
1, ...), dimensions in order ``j = 0 .. dim-1``, giving ``dim * nbits`` bits per
vector; those bits are packed into bytes MSB first (``np.packbits`` default).
For ``nbits=2``::

    byte0 = b0.bit0<<7 | b0.bit1<<6 | b1.bit0<<5 | b1.bit1<<4
          | b2.bit0<<3 | b2.bit1<<2 | b3.bit0<<1 | b3.bit1

Both functions are vectorised torch code (no Python loop over vectors) and run
on any device.
"""

from __future__ import annotations

import torch

__all__ = ["packed_size", "pack_residual_buckets", "unpack_residual_buckets"]

_NBITS = (1, 2, 4)


def _check_nbits(nbits: object) -> int:
    if isinstance(nbits, bool) or not isinstance(nbits, int):
        raise TypeError(f"nbits must be an int (1, 2 or 4), found {type(nbits).__name__}")
    if nbits not in _NBITS:
        raise ValueError(f"nbits must be 1, 2 or 4, found {nbits}")
    return nbits


def packed_size(dim: int, nbits: int) -> int:
    """Packed bytes per vector, ``P = dim * nbits / 8`` (``dim * nbits`` must be a multiple of 8)."""
    _check_nbits(nbits)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
        raise ValueError(f"dim must be a non-negative int, found {dim!r}")
    if (dim * nbits) % 8:
        raise ValueError(
            f"dim * nbits must be a multiple of 8 to pack residuals into bytes, "
            f"found dim={dim}, nbits={nbits} (dim must be a multiple of {8 // nbits})"
        )
    return dim * nbits // 8


def pack_residual_buckets(buckets: torch.Tensor, nbits: int) -> torch.Tensor:
    """Pack bucket indices ``uint8 [n, dim]`` (values < 2**nbits) into ``uint8 [n, dim*nbits/8]``."""
    nbits = _check_nbits(nbits)
    if not isinstance(buckets, torch.Tensor):
        raise TypeError(f"buckets must be a torch.Tensor, found {type(buckets).__name__}")
    if buckets.dtype != torch.uint8:
        raise TypeError(f"buckets must have dtype torch.uint8, found {buckets.dtype}")
    if buckets.dim() != 2:
        raise ValueError(f"buckets must be 2-D [n, dim], found shape {tuple(buckets.shape)}")
    n, dim = buckets.shape
    P = packed_size(dim, nbits)
    if buckets.numel() and int(buckets.max()) >= (1 << nbits):
        raise ValueError(
            f"buckets must be < 2**nbits = {1 << nbits}, found max {int(buckets.max())}"
        )
    # bits[i, j, q] = bit q (LSB first) of bucket j of vector i; flattened, 8 per byte
    shifts = torch.arange(nbits, device=buckets.device, dtype=torch.uint8)
    bits = ((buckets.unsqueeze(-1) >> shifts) & 1).reshape(n, P, 8)
    packed = torch.zeros((n, P), dtype=torch.uint8, device=buckets.device)
    for q in range(8):  # MSB first within each byte
        packed |= bits[:, :, q] << (7 - q)
    return packed


def unpack_residual_buckets(packed: torch.Tensor, nbits: int, dim: int) -> torch.Tensor:
    """Inverse of :func:`pack_residual_buckets`: ``uint8 [n, P]`` -> bucket indices ``uint8 [n, dim]``."""
    nbits = _check_nbits(nbits)
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"packed must be a torch.Tensor, found {type(packed).__name__}")
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must have dtype torch.uint8, found {packed.dtype}")
    if packed.dim() != 2:
        raise ValueError(f"packed must be 2-D [n, P], found shape {tuple(packed.shape)}")
    P = packed_size(dim, nbits)
    if packed.shape[1] != P:
        raise ValueError(
            f"packed must have P = dim*nbits/8 = {P} columns for dim={dim}, nbits={nbits}, "
            f"found {packed.shape[1]}"
        )
    n = packed.shape[0]
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.uint8)
    bits = ((packed.unsqueeze(-1) >> shifts) & 1).reshape(n, dim, nbits)
    buckets = torch.zeros((n, dim), dtype=torch.uint8, device=packed.device)
    for q in range(nbits):  # bit q of each bucket, LSB first
        buckets |= bits[:, :, q] << q
    return buckets
