"""Synthetic compressed collections for search tests (no model, no files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colja import kernels
from colja.search.plaid import SearchArrays


def make_arrays(n_docs: int = 300, dim: int = 64, n_centroids: int = 32, nbits: int = 2, seed: int = 0,
                min_len: int = 5, max_len: int = 40):
    """A clustered collection compressed like ColBERTv2 (nearest centroid + bucketed residual)."""
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((n_centroids, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    doclens = rng.integers(min_len, max_len + 1, size=n_docs)
    n = int(doclens.sum())
    owner = rng.integers(0, n_centroids, size=n)
    vectors = (centroids[owner] + 1.4 / np.sqrt(dim) * rng.standard_normal((n, dim))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    C = torch.from_numpy(centroids).half()
    V = torch.from_numpy(vectors)
    codes = (V @ C.float().T).argmax(1).to(torch.int32)
    residual = V - C.float()[codes.long()]
    cut_q = torch.arange(1, 2 ** nbits, dtype=torch.float32) / 2 ** nbits
    w_q = (torch.arange(2 ** nbits, dtype=torch.float32) + 0.5) / 2 ** nbits
    cutoffs = torch.quantile(residual.flatten(), cut_q)
    weights = torch.quantile(residual.flatten(), w_q)
    buckets = torch.bucketize(residual, cutoffs).to(torch.uint8)
    residuals = kernels.pack_residual_buckets(buckets, nbits)
    norms = kernels.vector_norms(codes, residuals, C, weights, nbits)
    doc_offsets = torch.zeros(n_docs + 1, dtype=torch.long)
    doc_offsets[1:] = torch.from_numpy(doclens).cumsum(0)
    pid_of = torch.repeat_interleave(torch.arange(n_docs), torch.from_numpy(doclens))
    ivf_lists = [torch.unique(pid_of[codes == c]) for c in range(n_centroids)]
    ivf = torch.cat(ivf_lists).to(torch.int32)
    ivf_offsets = torch.zeros(n_centroids + 1, dtype=torch.long)
    ivf_offsets[1:] = torch.tensor([len(x) for x in ivf_lists]).cumsum(0)
    arrays = SearchArrays(centroids=C.float(), codes=codes, residuals=residuals, norms=norms,
                          bucket_weights=weights, nbits=nbits, doc_offsets=doc_offsets, ivf=ivf, ivf_offsets=ivf_offsets)
    return arrays, V, doclens


def make_query(arrays: SearchArrays, V: torch.Tensor, doc_offsets, pid: int, length: int = 16, seed: int = 0):
    """A query built from one passage's vectors plus noise (so that passage should win)."""
    g = torch.Generator().manual_seed(seed)
    rows = V[doc_offsets[pid]:doc_offsets[pid + 1]]
    pick = rows[torch.randint(0, rows.shape[0], (length,), generator=g)]
    q = pick + 0.05 * torch.randn(pick.shape, generator=g)
    return torch.nn.functional.normalize(q, dim=1)


@pytest.fixture(scope="module")
def collection():
    return make_arrays()
