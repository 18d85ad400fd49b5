"""IndexSettings round trips and the reference's sizing formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from colja.index.planning import (
    choose_num_centroids,
    heldout_size,
    plan_centroids,
    plan_sample,
    reference_num_partitions,
    sample_passage_count,
)
from colja.index.settings import IndexSettings, resolve_settings


def test_settings_round_trip_through_json():
    s = IndexSettings(nbits=4, kmeans_niters=3, num_centroids=256, kmeans="two_level", assignment="two_level")
    again = IndexSettings.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


def test_unknown_setting_lists_valid_names():
    with pytest.raises(ValueError) as err:
        IndexSettings.from_dict({"nbit": 2})
    assert "nbit" in str(err.value) and "kmeans_niters" in str(err.value)
    with pytest.raises(ValueError, match="unknown index setting"):
        resolve_settings(None, kmean_iters=3)


@pytest.mark.parametrize("bad", [dict(nbits=3), dict(kmeans="hnsw"), dict(assignment="fast"), dict(kmeans_niters=0),
                                 dict(heldout_fraction=1.5), dict(num_centroids=0), dict(chunk_passages=True)])
def test_invalid_values_raise(bad):
    with pytest.raises(ValueError):
        IndexSettings(**bad)


def test_resolve_merges_keywords_and_ignores_none():
    s = resolve_settings({"nbits": 4}, nbits=None, kmeans_niters=2)
    assert s.nbits == 4 and s.kmeans_niters == 2
    assert resolve_settings(None).nbits == 2
    ref = IndexSettings.reference()
    assert ref.max_points_per_centroid == 256 and ref.assignment == "exact" and ref.kmeans == "flat"


def test_reference_formulas():
    # sample passages: min(1 + int(16*sqrt(120*N)), N)
    assert sample_passage_count(1159) == 1159
    assert sample_passage_count(10_000) == 10_000
    assert sample_passage_count(1_000_000) == 1 + int(16 * math.sqrt(120 * 1_000_000))
    assert sample_passage_count(0) == 0
    # partitions: 2**floor(log2(16*sqrt(n_emb)))
    assert reference_num_partitions(70179.0009689331) == 4096  # the fixture's plan.json
    assert reference_num_partitions(1_000_000) == 8192
    assert reference_num_partitions(100_000_000) == 131072
    assert reference_num_partitions(1_199_709) == 16384  # bench S
    # held-out: int(min(0.05*n, 50_000))
    assert heldout_size(70179) == 3508
    assert heldout_size(10_000_000) == 50_000


def test_tiny_collections_get_a_floor():
    assert choose_num_centroids(5.0, 5) == 4  # formula says 32; capped at a power of two <= 5
    assert choose_num_centroids(1.0, 1) == 1
    assert choose_num_centroids(70179.0, 66671) == 4096
    assert choose_num_centroids(10.0, 7, requested=50) == 7
    with pytest.raises(ValueError):
        choose_num_centroids(0.0, 0)
    plan = plan_centroids(1, np.array([1]), IndexSettings())
    assert plan.num_centroids == 1 and plan.num_heldout == 0 and plan.num_train == 1


def test_plan_sample_is_seeded_sorted_and_complete_when_small():
    s = IndexSettings(sample_passages=50)
    a, b = plan_sample(1000, s), plan_sample(1000, s)
    assert np.array_equal(a.pids, b.pids) and len(a.pids) == 50
    assert np.all(np.diff(a.pids) > 0)
    assert not np.array_equal(a.pids, plan_sample(1000, s.replace(seed=7)).pids)
    assert np.array_equal(plan_sample(30, IndexSettings()).pids, np.arange(30))
