"""The reference's sizing formulas: passage sample, number of centroids, held-out split.

Formulas (colbert-ai ``CollectionIndexer``):

* passages sampled for k-means: ``min(1 + int(16 * sqrt(120 * N)), N)``
  (120 is a "typical doclen", independent of the model's ``doc_maxlen``);
* centroids: ``2 ** floor(log2(16 * sqrt(N * avg_doclen_est)))`` where the
  average length is estimated on the sample;
* held-out vectors for the codec: ``int(min(0.05 * n_sample_vectors, 50_000))``.

colja adds floors so tiny collections still build: at least one centroid and
never more centroids than training vectors (rounded down to a power of two),
and an empty held-out split falls back to fitting the codec on the sample.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from colja.index.settings import IndexSettings

logger = logging.getLogger(__name__)

TYPICAL_DOCLEN = 120


def sample_passage_count(num_passages: int) -> int:
    """Passages to encode for k-means: ``min(1 + int(16*sqrt(120*N)), N)``."""
    if num_passages <= 0:
        return 0
    return min(1 + int(16 * math.sqrt(TYPICAL_DOCLEN * num_passages)), num_passages)


def reference_num_partitions(num_embeddings_est: float) -> int:
    """``2 ** floor(log2(16 * sqrt(num_embeddings_est)))`` (reference formula, >= 1)."""
    if num_embeddings_est <= 0:
        return 1
    return max(1, int(2 ** math.floor(math.log2(16 * math.sqrt(num_embeddings_est)))))


def heldout_size(num_sample_vectors: int, fraction: float = 0.05, maximum: int = 50_000) -> int:
    """``int(min(fraction * n, maximum))`` held-out vectors (reference formula)."""
    return int(min(fraction * num_sample_vectors, maximum))


def choose_num_centroids(num_embeddings_est: float, num_train_vectors: int, requested: int | None = None) -> int:
    """The reference number of centroids (or ``requested``), floored for tiny collections.

    k-means cannot place more centroids than it has training vectors: the
    formula's value is capped at the largest power of two <= ``num_train_vectors``,
    a ``requested`` value at ``num_train_vectors`` (with a warning).
    """
    if num_train_vectors < 1:
        raise ValueError("cannot train centroids: the sample has no vectors")
    if requested is not None:
        if requested > num_train_vectors:
            logger.warning(
                "num_centroids=%d is more than the %d sample vectors k-means trains on; using %d",
                requested, num_train_vectors, num_train_vectors,
            )
            return num_train_vectors
        return requested
    cap = 2 ** int(math.floor(math.log2(num_train_vectors)))
    return max(1, min(reference_num_partitions(num_embeddings_est), cap))


@dataclass(frozen=True)
class SamplePlan:
    """Which passages are encoded for k-means (sorted passage ids)."""

    num_passages: int
    pids: np.ndarray  # int64 [n_sample], sorted


def plan_sample(num_passages: int, settings: IndexSettings) -> SamplePlan:
    """Draw the k-means passage sample (seeded, sorted pids)."""
    n = settings.sample_passages if settings.sample_passages is not None else sample_passage_count(num_passages)
    n = min(n, num_passages)
    rng = np.random.default_rng(settings.seed)
    if n == num_passages:
        pids = np.arange(num_passages, dtype=np.int64)
    else:
        pids = np.sort(rng.choice(num_passages, size=n, replace=False)).astype(np.int64)
    return SamplePlan(num_passages=num_passages, pids=pids)


@dataclass(frozen=True)
class CentroidPlan:
    """Sizes decided once the sample is encoded."""

    avg_doclen_est: float
    num_embeddings_est: float
    num_centroids: int
    num_heldout: int
    num_train: int


def plan_centroids(num_passages: int, sample_doclens: np.ndarray, settings: IndexSettings) -> CentroidPlan:
    """Estimate the collection size from the sample and size k-means and the held-out split."""
    sample_doclens = np.asarray(sample_doclens)
    avg = float(sample_doclens.mean()) if sample_doclens.size else 0.0
    est = num_passages * avg
    total = int(sample_doclens.sum())
    held = heldout_size(total, settings.heldout_fraction, settings.heldout_max)
    train = total - held
    if train < 1:  # a one-vector sample: train on it, fit the codec on it too
        held, train = 0, total
    k = choose_num_centroids(est, train, settings.num_centroids)
    return CentroidPlan(avg_doclen_est=avg, num_embeddings_est=est, num_centroids=k, num_heldout=held, num_train=train)
