"""Encoder settings, in the vocabulary of Stanford ColBERT's ``artifact.metadata``.

The field names are the reference's own, so a checkpoint's ``artifact.metadata``
maps onto :class:`ColBERTSettings` one to one and colja writes files the
reference (colbert-ai, RAGatouille, PyLate) reads back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Keys of artifact.metadata that describe training or indexing runs, not the
# encoder. They are kept verbatim (``ColBERTSettings.extra``) so a save/load
# round trip loses nothing, but they do not change how colja encodes.
_REFERENCE_NON_ENCODER_KEYS = frozenset(
    """
    ncells centroid_score_threshold ndocs load_index_with_mmap index_path index_bsize
    nbits kmeans_niters resume pool_factor clustering_mode protected_tokens bsize
    accumsteps lr maxsteps save_every warmup warmup_bert relu nway use_ib_negatives
    reranker distillation_alpha ignore_scores model_name checkpoint triples collection
    queries index_name overwrite root experiment index_root name rank nranks amp gpus
    avoid_fork_if_possible meta schedule_free schedule_free_wd kldiv_loss marginmse_loss
    kldiv_weight marginmse_weight ib_loss_weight normalise_training_scores
    normalization_method quant_aware highest_quant_level lowest_quant_level cap_padding
    """.split()
)

SUPPORTED_SIMILARITIES = ("cosine",)
SUPPORTED_INTERACTIONS = ("colbert",)


@dataclass
class ColBERTSettings:
    """How a ColBERT encoder turns text into token vectors.

    Attributes:
        dim: output dimension of the linear projection.
        query_maxlen: query length in tokens, marker included (queries are
            padded to it with ``[MASK]``).
        doc_maxlen: longest document in tokens, marker included; longer ones
            are truncated.
        query_token_id, doc_token_id: vocabulary tokens used as markers,
            inserted at position 1 (resolved with ``convert_tokens_to_ids``).
        query_token, doc_token: display names of the markers (unused for ids).
        attend_to_mask_tokens: let BERT attend to the ``[MASK]`` expansion.
        mask_punctuation: drop punctuation tokens from documents.
        similarity, interaction: only ``cosine`` / ``colbert`` are supported.
        dynamic_query_maxlen: pad each query to the next multiple of
            ``dynamic_querylen_multiples`` (at least ``query_maxlen``, capped
            below the model's max positions) instead of cutting at
            ``query_maxlen`` — JaColBERTv2.5's published numbers use this.
        query_expansion: pad queries with ``[MASK]`` (ColBERT's query
            augmentation); ``False`` only for PyLate models saved without it.
        skiplist_words: explicit punctuation words (PyLate); ``None`` means the
            reference rule (first word piece of each ``string.punctuation`` char).
        extra: other ``artifact.metadata`` keys, kept for round trips.
    """

    dim: int = 128
    query_maxlen: int = 32
    doc_maxlen: int = 300
    query_token_id: str = "[unused0]"
    doc_token_id: str = "[unused1]"
    query_token: str = "[Q]"
    doc_token: str = "[D]"
    attend_to_mask_tokens: bool = False
    mask_punctuation: bool = True
    similarity: str = "cosine"
    interaction: str = "colbert"
    dynamic_query_maxlen: bool = False
    dynamic_querylen_multiples: int = 32
    query_expansion: bool = True
    skiplist_words: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim must be positive, got {self.dim}")
        if self.query_maxlen < 4:
            raise ValueError(f"query_maxlen must be at least 4 (CLS, marker, one token, SEP), got {self.query_maxlen}")
        if self.doc_maxlen < 4:
            raise ValueError(f"doc_maxlen must be at least 4, got {self.doc_maxlen}")
        if self.dynamic_querylen_multiples <= 0:
            raise ValueError(f"dynamic_querylen_multiples must be positive, got {self.dynamic_querylen_multiples}")
        if self.similarity not in SUPPORTED_SIMILARITIES:
            raise ValueError(
                f"similarity={self.similarity!r} is not supported; colja implements {SUPPORTED_SIMILARITIES}"
            )
        if self.interaction not in SUPPORTED_INTERACTIONS:
            raise ValueError(
                f"interaction={self.interaction!r} is not supported; colja implements {SUPPORTED_INTERACTIONS}"
            )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    def to_dict(self) -> dict[str, Any]:
        """The encoder settings (without ``extra``), JSON-serialisable."""
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> "ColBERTSettings":
        """Build from a dict; unknown keys raise unless ``strict=False``."""
        known = set(cls.field_names())
        unknown = sorted(set(data) - known - {"extra"})
        if strict and unknown:
            raise ValueError(f"unknown ColBERT settings {unknown}; valid names are {sorted(known)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        return cls(**kwargs, extra=dict(data.get("extra", {})))

    @classmethod
    def from_artifact_metadata(cls, metadata: dict[str, Any]) -> "ColBERTSettings":
        """Read Stanford's ``artifact.metadata`` (unknown keys kept in ``extra``)."""
        known = set(cls.field_names())
        kwargs = {k: v for k, v in metadata.items() if k in known and v is not None}
        extra = {k: v for k, v in metadata.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def to_artifact_metadata(self) -> dict[str, Any]:
        """Stanford-compatible ``artifact.metadata`` content."""
        out: dict[str, Any] = dict(self.extra)
        out.update(self.to_dict())
        # Fields the reference does not know are still harmless there: its loader
        # ignores unrecognised keys.
        if out.get("skiplist_words") is None:
            out.pop("skiplist_words", None)
        meta = dict(out.get("meta") or {})
        meta.setdefault("version", "colbert-v0.4")
        out["meta"] = meta
        return out

    def replace(self, **changes: Any) -> "ColBERTSettings":
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(f"unknown ColBERT settings {unknown}; valid names are {sorted(self.field_names())}")
        return dataclasses.replace(self, **changes)
