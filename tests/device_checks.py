"""Comparisons shared by the CPU device tests and the GPU tests: two indexes (or two
devices) must give the same files and the same answers."""

from __future__ import annotations

import numpy as np
import torch

from colja import Index

QUERIES = ["日本で一番高い山は？", "東京の人口", "ＡＢＣ abc ｶﾀｶﾅ 🍣", "江戸時代の文化について教えてください"]


def generated_collection(n: int = 300, dim: int = 128, seed: int = 0) -> list[torch.Tensor]:
    """ColBERT-like passages: unit vectors around a few hundred topics, 20-60 tokens each."""
    g = torch.Generator().manual_seed(seed)
    topics = torch.nn.functional.normalize(torch.randn(64, dim, generator=g), dim=-1)
    out = []
    for _ in range(n):
        length = int(torch.randint(20, 60, (1,), generator=g))
        picks = topics[torch.randint(0, 64, (length,), generator=g)]
        out.append(torch.nn.functional.normalize(picks + 0.3 * torch.randn(length, dim, generator=g), dim=-1))
    return out


def generated_queries(n: int = 16, dim: int = 128, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 32, dim, generator=g), dim=-1)


def assert_same_files(a: Index, b: Index, *, min_code_agreement: float = 1.0) -> None:
    """Same centroids and (nearly) the same codes / residuals in both indexes."""
    with a.snapshot() as sa, b.snapshot() as sb:
        assert torch.equal(sa.centroids, sb.centroids)
        assert torch.equal(sa.doclens, sb.doclens)
        assert torch.equal(sa.ivf_lengths, sb.ivf_lengths) or min_code_agreement < 1.0
        same = (sa.codes == sb.codes).float().mean().item()
        assert same >= min_code_agreement, f"codes agree on {same:.5f}"
        same_res = (sa.residuals == sb.residuals).all(dim=1).float().mean().item()
        assert same_res >= min_code_agreement, f"residuals agree on {same_res:.5f}"


def assert_same_answers(a: Index, b: Index, Q: torch.Tensor, k: int = 10, *, atol: float = 1e-4, **options) -> None:
    """Same top-k pids and scores within ``atol`` for every query, one at a time and as a batch."""
    batch_a, batch_b = a.search_embeddings(Q, k, **options), b.search_embeddings(Q, k, **options)
    np.testing.assert_array_equal(batch_a.pids, batch_b.pids)
    np.testing.assert_allclose(batch_a.scores, batch_b.scores, atol=atol, rtol=0)
    for i in range(min(4, Q.shape[0])):
        one_a, one_b = a.search_embeddings(Q[i], k, **options), b.search_embeddings(Q[i], k, **options)
        np.testing.assert_array_equal(one_a.pids, one_b.pids)
        np.testing.assert_allclose(one_a.scores, one_b.scores, atol=atol, rtol=0)
