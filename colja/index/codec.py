"""The ColBERTv2 residual codec: centroid id + n-bit quantised residual per vector.

Bit-exact with colbert-ai's ``ResidualCodec`` (colbert-ai 0.2.x, ``colbert/indexing/codecs``):

* ``code = argmax(centroids @ emb)``; residual ``r = emb - centroids[code]``;
* fitted on held-out vectors: ``avg_residual`` = mean over dims of the per-dim
  mean ``|r|`` (a scalar); over the *flattened* residuals,
  ``bucket_cutoffs = quantile(r, [i/2^n for i in 1..2^n-1])`` and
  ``bucket_weights = quantile(r, [(i+0.5)/2^n for i in 0..2^n-1])``;
* ``bucket = torch.bucketize(r, bucket_cutoffs)`` (``right=False``), each bucket
  written as ``nbits`` bits least-significant first, the bit stream packed
  big-endian into bytes (``np.packbits``): ``dim*nbits/8`` bytes per vector;
* decompression adds ``bucket_weights[bucket]`` to the centroid and
  L2-normalises; ``norms`` keeps the length before that normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from colja.index.assign import assign_exact
from colja.kernels import decompress_residuals, pack_residual_buckets, unpack_residual_buckets, vector_norms

# Vectors compressed / decompressed per block (bounds temporaries).
_BLOCK = 1 << 16
# torch.quantile refuses inputs above this many elements.
_QUANTILE_LIMIT = 1 << 24


# --------------------------------------------------------------------------- bit packing
# The kernels (colja.kernels) implement packing, decompression and norms, each
# with a PyTorch reference beside it; the codec only adds the un-normalised view.


def decompress_unnormalized(codes: torch.Tensor, packed: torch.Tensor, centroids: torch.Tensor, bucket_weights: torch.Tensor, nbits: int) -> torch.Tensor:
    """float32 ``[n, dim]``: ``centroids[codes] + bucket_weights[buckets]`` (not normalised)."""
    buckets = unpack_residual_buckets(packed, nbits, centroids.shape[1]).long()
    return centroids[codes.long()].float() + bucket_weights.float()[buckets]


# --------------------------------------------------------------------------- quantiles


def _quantiles(flat: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """``torch.quantile(flat, qs)`` (linear interpolation), also above its size limit."""
    flat = flat.float().reshape(-1)
    if flat.numel() <= _QUANTILE_LIMIT:
        return torch.quantile(flat, qs)
    values = torch.sort(flat).values
    pos = qs.double() * (values.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    return torch.lerp(values[lo], values[hi], (pos - lo.double()).float())


# --------------------------------------------------------------------------- the codec


@dataclass
class ResidualCodec:
    """Centroids plus the residual quantiser.

    ``centroids``: float32 ``[C, dim]`` holding float16 values (unit norm);
    ``bucket_cutoffs``: float32 ``[2^nbits - 1]``; ``bucket_weights``: float32
    ``[2^nbits]``; ``avg_residual``: float.
    """

    centroids: torch.Tensor
    bucket_cutoffs: torch.Tensor
    bucket_weights: torch.Tensor
    avg_residual: float
    nbits: int

    def __post_init__(self) -> None:
        self.centroids = torch.as_tensor(self.centroids).float().contiguous()
        self.bucket_cutoffs = torch.as_tensor(self.bucket_cutoffs).float().contiguous()
        self.bucket_weights = torch.as_tensor(self.bucket_weights).float().contiguous()
        self.avg_residual = float(self.avg_residual)
        check_dims(self.dim, self.nbits)
        options = 2**self.nbits
        if self.bucket_cutoffs.shape != (options - 1,) or self.bucket_weights.shape != (options,):
            raise ValueError(
                f"a {self.nbits}-bit codec needs {options - 1} cutoffs and {options} weights, "
                f"got {tuple(self.bucket_cutoffs.shape)} and {tuple(self.bucket_weights.shape)}"
            )

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def num_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def packed_dim(self) -> int:
        """Bytes per packed residual: ``dim * nbits / 8``."""
        return self.dim * self.nbits // 8

    @classmethod
    def fit(cls, centroids: torch.Tensor, heldout: torch.Tensor, nbits: int, *, stored_centroids: torch.Tensor | None = None) -> "ResidualCodec":
        """Fit cutoffs, weights and ``avg_residual`` on held-out vectors (the reference rule).

        ``centroids``: float32 ``[C, dim]`` unit-norm k-means centroids, used (as
        by the reference) at full precision for the fit; ``stored_centroids``
        (default: ``centroids`` rounded to float16) are what the codec keeps.
        ``heldout``: ``[n, dim]`` vectors (float16 or float32).
        """
        centroids = torch.as_tensor(centroids).float()
        heldout = torch.as_tensor(heldout).float()
        check_dims(centroids.shape[1], nbits)
        if heldout.shape[0] == 0:
            raise ValueError("cannot fit the residual codec on zero held-out vectors")
        codes = assign_exact(heldout, centroids)
        residuals = heldout - centroids[codes.long()]
        avg_residual = residuals.abs().mean(dim=0).mean().item()
        options = 2**nbits
        quantiles = torch.arange(0, options, dtype=torch.float32) * (1 / options)
        cutoffs = _quantiles(residuals, quantiles[1:])
        weights = _quantiles(residuals, quantiles + (0.5 / options))
        if stored_centroids is None:
            stored_centroids = centroids.half().float()
        return cls(centroids=stored_centroids, bucket_cutoffs=cutoffs, bucket_weights=weights, avg_residual=avg_residual, nbits=nbits)

    def to(self, device: torch.device | str) -> "ResidualCodec":
        """The same codec with its tensors on ``device`` (compress on a GPU; same codes)."""
        return ResidualCodec(self.centroids.to(device), self.bucket_cutoffs.to(device), self.bucket_weights.to(device),
                             self.avg_residual, self.nbits)

    # ----------------------------------------------------------------- compress

    def binarize(self, residuals: torch.Tensor) -> torch.Tensor:
        """float32 ``[n, dim]`` residuals -> uint8 ``[n, dim*nbits/8]`` packed buckets."""
        buckets = torch.bucketize(residuals.float(), self.bucket_cutoffs, right=False).to(torch.uint8)
        return pack_residual_buckets(buckets, self.nbits)

    def compress(self, embs: torch.Tensor, *, assign: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Compress float ``[n, dim]`` vectors: ``(codes int32 [n], residuals uint8 [n, dim*nbits/8])``.

        ``assign`` maps float32 ``[b, dim]`` to int32 codes; default: exact argmax.
        Pass float16-rounded vectors to match the reference (it compresses float16).
        """
        embs = torch.as_tensor(embs)
        if embs.dim() != 2 or embs.shape[1] != self.dim:
            raise ValueError(f"expected vectors [n, {self.dim}], got {tuple(embs.shape)}")
        n = embs.shape[0]
        device = self.centroids.device
        codes = torch.empty(n, dtype=torch.int32, device=device)
        packed = torch.empty((n, self.packed_dim), dtype=torch.uint8, device=device)
        for start in range(0, n, _BLOCK):
            block = embs[start : start + _BLOCK].to(device, torch.float32)
            if assign is not None:  # a CPU assigner (two-level); its codes move to the codec's device
                block_codes = assign(block.cpu()).to(device)
            else:
                block_codes = assign_exact(block, self.centroids)
            residuals = block - self.centroids[block_codes.long()]
            codes[start : start + _BLOCK] = block_codes
            packed[start : start + _BLOCK] = self.binarize(residuals)
        return codes, packed

    # ----------------------------------------------------------------- decompress

    def decompress(self, codes: torch.Tensor, residuals: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """float32 ``[n, dim]`` vectors from ``codes`` int32 ``[n]`` and ``residuals`` uint8 ``[n, P]``.

        L2-normalised (as the reference decompresses) unless ``normalize=False``.
        """
        codes = torch.as_tensor(codes)
        residuals = torch.as_tensor(residuals)
        parts = []
        for start in range(0, codes.shape[0], _BLOCK):
            c, r = codes[start : start + _BLOCK], residuals[start : start + _BLOCK]
            if normalize:
                parts.append(decompress_residuals(c, r, self.centroids, self.bucket_weights, self.nbits))
            else:
                parts.append(decompress_unnormalized(c, r, self.centroids, self.bucket_weights, self.nbits))
        return torch.cat(parts) if parts else torch.empty((0, self.dim), device=self.centroids.device)

    def norms(self, codes: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        """float32 ``[n]``: length of ``centroid + residual`` before normalisation."""
        parts = [
            vector_norms(codes[s : s + _BLOCK], residuals[s : s + _BLOCK], self.centroids, self.bucket_weights, self.nbits)
            for s in range(0, codes.shape[0], _BLOCK)
        ]
        return torch.cat(parts) if parts else torch.empty(0, device=self.centroids.device)


def check_dims(dim: int, nbits: int) -> None:
    """The reference needs ``dim % (8 * nbits) == 0`` (whole bytes per vector and per bucket group)."""
    if nbits not in (1, 2, 4):
        raise ValueError(f"nbits must be 1, 2 or 4, got {nbits!r}")
    if dim % 8 != 0 or dim % (nbits * 8) != 0:
        raise ValueError(f"vector dim {dim} must be a multiple of {8 * nbits} for {nbits}-bit residuals")


def bytes_per_vector(dim: int, nbits: int) -> int:
    """Stored bytes per vector: int32 code + packed residual + float32 norm."""
    return 4 + dim * nbits // 8 + 4


__all__ = ["ResidualCodec", "decompress_unnormalized", "check_dims", "bytes_per_vector"]
