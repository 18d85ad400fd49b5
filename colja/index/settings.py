"""Build-time settings of an index, recorded in its manifest.

Every field has the reference (ColBERTv2 / colbert-ai) meaning unless its
comment says otherwise; ``None`` means "use the reference formula"
(see :mod:`colja.index.planning`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

NBITS_CHOICES = (1, 2, 4)
KMEANS_CHOICES = ("flat", "two_level")
ASSIGNMENT_CHOICES = ("exact", "two_level")


@dataclass
class IndexSettings:
    """How an index is built. Round-trips through JSON with ``to_dict`` / ``from_dict``.

    The defaults are the fast setup measured in ``benchmarks/build.py`` (same
    fidelity as the reference setup, about 4x faster to build); the
    colbert-ai reference setup is ``IndexSettings.reference()``.
    """

    #: bits per residual dimension: 1, 2 or 4
    nbits: int = 2
    #: k-means iterations (reference: 4)
    kmeans_niters: int = 4
    #: seed of the passage sample, the held-out split and k-means (reference: 123 for k-means)
    seed: int = 123
    #: number of centroids; ``None`` = ``2**floor(log2(16*sqrt(estimated vectors)))``
    num_centroids: int | None = None
    #: passages encoded for k-means; ``None`` = ``min(1 + int(16*sqrt(120*N)), N)``
    sample_passages: int | None = None
    #: k-means trains on at most this many sample vectors per centroid (faiss's
    #: ``max_points_per_centroid``; the reference leaves faiss's default of 256)
    max_points_per_centroid: int = 256
    #: share of the sample vectors held out to fit the residual codec
    heldout_fraction: float = 0.05
    #: cap on the held-out vectors
    heldout_max: int = 50_000
    #: "two_level" (faiss k-means into ``kmeans_cells`` cells, then each cell into
    #: its share of the k centroids) or "flat" (one faiss k-means, the reference)
    kmeans: str = "two_level"
    #: coarse cells of ``kmeans="two_level"``; ``None`` = ``round(num_centroids / 512)``
    kmeans_cells: int | None = None
    #: global Lloyd iterations over all centroids after a two-level k-means
    #: (moves border vectors to the right cell; one costs about one assignment pass)
    kmeans_refine_iters: int = 1
    #: "exact" (argmax over all centroids, the reference) or "two_level" (probe
    #: the ``assignment_probe`` best cells of a coarse quantizer over the centroids)
    assignment: str = "exact"
    #: coarse cells probed per vector when ``assignment="two_level"``
    assignment_probe: int = 8
    #: round vectors to float16 before compressing (the reference stores and
    #: compresses float16 vectors on CPU too)
    round_to_fp16: bool = True
    #: passages encoded and compressed per chunk (bounds memory)
    chunk_passages: int = 4096

    def __post_init__(self) -> None:
        if self.nbits not in NBITS_CHOICES:
            raise ValueError(f"nbits must be one of {NBITS_CHOICES}, got {self.nbits!r}")
        if self.kmeans not in KMEANS_CHOICES:
            raise ValueError(f"kmeans must be one of {KMEANS_CHOICES}, got {self.kmeans!r}")
        if self.assignment not in ASSIGNMENT_CHOICES:
            raise ValueError(f"assignment must be one of {ASSIGNMENT_CHOICES}, got {self.assignment!r}")
        positive = {
            "kmeans_niters": self.kmeans_niters,
            "max_points_per_centroid": self.max_points_per_centroid,
            "heldout_max": self.heldout_max,
            "assignment_probe": self.assignment_probe,
            "chunk_passages": self.chunk_passages,
        }
        for name in ("num_centroids", "sample_passages", "kmeans_cells"):
            value = getattr(self, name)
            if value is not None:
                positive[name] = value
        if not isinstance(self.kmeans_refine_iters, int) or isinstance(self.kmeans_refine_iters, bool) or self.kmeans_refine_iters < 0:
            raise ValueError(f"kmeans_refine_iters must be a non-negative integer, got {self.kmeans_refine_iters!r}")
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 < float(self.heldout_fraction) < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")

    @classmethod
    def reference(cls, **overrides: Any) -> "IndexSettings":
        """The colbert-ai setup: faiss's 256 points per centroid, exact assignment."""
        base = dict(max_points_per_centroid=256, kmeans="flat", assignment="exact", kmeans_niters=4, kmeans_refine_iters=0)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IndexSettings":
        """Build from a mapping; unknown keys raise ``ValueError`` listing the valid names."""
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown index setting(s) {unknown}; valid names: {', '.join(cls.field_names())}"
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "IndexSettings":
        """A copy with ``changes`` applied (validated like ``from_dict``)."""
        data = self.to_dict()
        data.update(changes)
        return type(self).from_dict(data)


def resolve_settings(settings: "IndexSettings | Mapping[str, Any] | None", **overrides: Any) -> IndexSettings:
    """Merge ``settings`` (object, dict or None) with keyword overrides (``None`` values ignored)."""
    if settings is None:
        base = IndexSettings()
    elif isinstance(settings, IndexSettings):
        base = settings
    elif isinstance(settings, Mapping):
        base = IndexSettings.from_dict(settings)
    else:
        raise TypeError(f"settings must be an IndexSettings, a dict or None, got {type(settings).__name__}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**changes) if changes else base
