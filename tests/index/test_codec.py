"""Residual codec: the reference's fit rule, bit layout, round trips for 1/2/4 bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colja.index.assign import TwoLevelAssigner, agreement, assign_exact
from colja.index.codec import ResidualCodec, bytes_per_vector, check_dims
from colja.index.kmeans import train_centroids

from .index_helpers import clustered_docs


@pytest.fixture(scope="module")
def data():
    vectors = torch.from_numpy(np.concatenate(clustered_docs(n_docs=400, seed=5)))
    centroids = torch.from_numpy(train_centroids(vectors[:4000].numpy(), 128, niters=4, seed=123))
    return vectors, centroids


def test_fit_follows_the_reference_formulas(data):
    vectors, centroids = data
    held = vectors[-500:]
    codec = ResidualCodec.fit(centroids, held, nbits=2)
    codes = (centroids @ held.T).argmax(0)
    r = held - centroids[codes]
    assert codec.avg_residual == pytest.approx(r.abs().mean(0).mean().item(), rel=1e-6)
    torch.testing.assert_close(codec.bucket_cutoffs, torch.quantile(r.flatten(), torch.tensor([0.25, 0.5, 0.75])))
    torch.testing.assert_close(codec.bucket_weights, torch.quantile(r.flatten(), torch.tensor([0.125, 0.375, 0.625, 0.875])))
    # stored centroids are the float16 values
    torch.testing.assert_close(codec.centroids, centroids.half().float(), rtol=0, atol=0)


def test_bit_layout_matches_numpy_packbits(data):
    vectors, centroids = data
    codec = ResidualCodec.fit(centroids, vectors[-500:], nbits=2)
    embs = vectors[:300]
    codes, packed = codec.compress(embs)
    r = embs - codec.centroids[codes.long()]
    buckets = torch.bucketize(r, codec.bucket_cutoffs).to(torch.uint8)
    bits = ((buckets.unsqueeze(-1) >> torch.arange(2, dtype=torch.uint8)) & 1).flatten().numpy()  # LSB first
    expected = np.packbits(bits).reshape(300, 32)  # big-endian within a byte
    np.testing.assert_array_equal(packed.numpy(), expected)


def test_bucketize_is_left_closed_at_cutoffs():
    centroids = torch.zeros((1, 16))
    codec = ResidualCodec(centroids, torch.tensor([-0.5, 0.0, 0.5]), torch.tensor([-1.0, -0.25, 0.25, 1.0]), 0.1, 2)
    values = [-0.5, 0.0, 0.5, -0.6, 0.1, 0.6, -0.4, 0.49] + [0.0] * 8
    _, packed = codec.compress(torch.tensor([values]))
    from colja.kernels import unpack_residual_buckets

    # right=False: a value equal to a cutoff goes to the lower bucket
    assert unpack_residual_buckets(packed, 2, 16).tolist() == [[0, 1, 2, 0, 2, 3, 1, 2] + [1] * 8]


def test_round_trip_closer_with_more_bits(data):
    vectors, centroids = data
    held, embs = vectors[-1000:], vectors[:2000]
    errors = {}
    for bits in (1, 2, 4):
        codec = ResidualCodec.fit(centroids, held, nbits=bits)
        codes, packed = codec.compress(embs)
        assert codes.dtype == torch.int32 and packed.dtype == torch.uint8
        assert packed.shape == (2000, 128 * bits // 8)
        out = codec.decompress(codes, packed)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(2000), atol=1e-5, rtol=0)
        errors[bits] = (out - embs).norm(dim=1).mean().item()
        centroid_only = (codec.centroids[codes.long()] - embs).norm(dim=1).mean().item()
        print(f"nbits={bits}: mean |decompressed - original| = {errors[bits]:.4f} (centroid only {centroid_only:.4f})")
        assert errors[bits] < centroid_only
        cosine = (out * embs).sum(1).mean().item()
        print(f"   mean cosine {cosine:.4f}")
        assert cosine > {1: 0.95, 2: 0.98, 4: 0.995}[bits]
    assert errors[4] < errors[2] < errors[1]


def test_norms_are_lengths_before_normalising(data):
    vectors, centroids = data
    codec = ResidualCodec.fit(centroids, vectors[-500:], nbits=2)
    codes, packed = codec.compress(vectors[:700])
    raw = codec.decompress(codes, packed, normalize=False)
    torch.testing.assert_close(codec.norms(codes, packed), raw.norm(dim=1))
    torch.testing.assert_close(codec.decompress(codes, packed), torch.nn.functional.normalize(raw, dim=1))


def test_exact_assignment_is_argmax(data):
    vectors, centroids = data
    codes = assign_exact(vectors[:3000], centroids)
    expected = (centroids @ vectors[:3000].T).argmax(0).to(torch.int32)
    assert torch.equal(codes, expected)
    assert assign_exact(vectors[:0], centroids).shape == (0,)


def test_two_level_assignment_mostly_agrees(data):
    vectors, centroids = data
    assigner = TwoLevelAssigner(centroids, probe=4)
    approx = assigner(vectors[:3000])
    exact = assign_exact(vectors[:3000], centroids)
    assert approx.dtype == torch.int32
    assert agreement(approx.numpy(), exact.numpy()) > 0.9
    # probing every cell is exact
    full = TwoLevelAssigner(centroids, probe=10**6)(vectors[:3000])
    assert torch.equal(full, exact)


def test_dims_and_sizes():
    check_dims(128, 4)
    with pytest.raises(ValueError):
        check_dims(100, 2)
    with pytest.raises(ValueError):
        check_dims(16, 4)  # needs a multiple of 32
    with pytest.raises(ValueError):
        ResidualCodec(torch.zeros((2, 16)), torch.zeros(2), torch.zeros(4), 0.0, 2)
    assert bytes_per_vector(128, 2) == 40
