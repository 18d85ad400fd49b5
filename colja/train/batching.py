"""From examples to tensors: tokenize once, then a seeded, resumable order of batches.

Every text is word-piece tokenized once (:class:`EncodedData`) and batches are
assembled from the cached ids. The order is a pure function of
``(seed, epoch)`` and the hard negatives of an example a pure function of
``(seed, epoch, example)``, so micro-batch ``m`` is the same whether a run
started at step 0 or resumed: the data position is just ``m``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from colja._progress import progress, progress_enabled
from colja.model.tokenization import doc_sequences, pad_batch, query_tensors, wordpiece_ids
from colja.train.data import TrainingExample

if TYPE_CHECKING:  # pragma: no cover
    from colja.model.colbert import ColBERT

logger = logging.getLogger(__name__)

_TOKENIZE_CHUNK = 256


@dataclass
class Batch:
    """One micro-batch.

    ``q_ids``/``q_attention``: long ``[B, Lq]``; ``d_ids``/``d_attention``: long
    ``[B * nway, Ld]``, query ``i``'s positive at row ``i * nway`` followed by
    its ``nway - 1`` negatives; ``teacher``: float ``[B, nway]`` or None.
    """

    q_ids: torch.Tensor
    q_attention: torch.Tensor
    d_ids: torch.Tensor
    d_attention: torch.Tensor
    teacher: torch.Tensor | None
    nway: int
    epoch: int

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.q_ids), move(self.q_attention), move(self.d_ids), move(self.d_attention),
                     move(self.teacher), self.nway, self.epoch)


class EncodedData:
    """Examples as indices into a table of unique, pre-tokenized texts."""

    def __init__(self, examples: Sequence[TrainingExample], model: "ColBERT", *, show_progress: bool | None = None):
        if not examples:
            raise ValueError("no training examples")
        table: dict[str, int] = {}

        def idx(text: str) -> int:
            return table.setdefault(text, len(table))

        self.queries = np.array([idx(e.query) for e in examples], dtype=np.int64)
        self.positives = np.array([idx(e.positive) for e in examples], dtype=np.int64)
        self.negatives = [np.array([idx(n) for n in e.negatives], dtype=np.int64) for e in examples]
        self.scores = None
        if examples[0].scores is not None:
            self.scores = [np.asarray(e.scores, dtype=np.float32) for e in examples]
        texts = list(table)
        show = progress_enabled(show_progress, len(texts) // _TOKENIZE_CHUNK)
        chunks = [texts[i : i + _TOKENIZE_CHUNK] for i in range(0, len(texts), _TOKENIZE_CHUNK)]
        pieces: list[list[int]] = []
        for chunk in progress(chunks, desc="Tokenizing", show=show, unit="chunk"):
            pieces.extend(wordpiece_ids(model.tokenizer, chunk))
        self.pieces = [np.asarray(p, dtype=np.int32) for p in pieces]
        logger.info("training data: %d examples, %d unique texts", len(examples), len(texts))

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def has_scores(self) -> bool:
        return self.scores is not None

    def min_negatives(self) -> int:
        return min(len(n) for n in self.negatives)


class BatchSchedule:
    """Which examples form micro-batch ``m`` on rank ``rank`` (deterministic, resumable).

    Each epoch is a fresh permutation of the examples drawn from ``(seed,
    epoch)``; incomplete global batches at the end of an epoch are dropped.
    Global batch = ``batch_size * world_size`` examples; rank ``r`` takes
    its contiguous slice.
    """

    def __init__(self, n_examples: int, batch_size: int, *, seed: int, world_size: int = 1, shuffle: bool = True):
        self.n = n_examples
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        global_batch = batch_size * world_size
        self.batches_per_epoch = n_examples // global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n_examples} training examples are fewer than one batch of {global_batch} "
                             f"(batch_size {batch_size} x {world_size} processes); lower batch_size or add data")
        self._cached: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            order = (np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle
                     else np.arange(self.n))
            self._cached = (epoch, order)
        return self._cached[1]

    def position(self, micro_batch: int) -> tuple[int, int]:
        """``(epoch, batch within the epoch)`` of global micro-batch ``micro_batch``."""
        return divmod(micro_batch, self.batches_per_epoch)

    def indices(self, micro_batch: int, rank: int = 0) -> tuple[np.ndarray, int]:
        epoch, offset = self.position(micro_batch)
        start = offset * self.batch_size * self.world_size + rank * self.batch_size
        return self.order(epoch)[start : start + self.batch_size], epoch


def choose_negatives(n_available: int, count: int, *, seed: int, epoch: int, example: int) -> np.ndarray:
    """``count`` positions among ``n_available`` negatives, drawn from ``(seed, epoch, example)``.

    Without repetition while there are enough; cycled when there are fewer.
    """
    if count == 0:
        return np.empty(0, dtype=np.int64)
    perm = np.random.default_rng([seed, epoch, example]).permutation(n_available)
    return np.resize(perm, count)


def make_batch(data: EncodedData, indices: np.ndarray, epoch: int, model: "ColBERT", *, nway: int, seed: int) -> Batch:
    """Tensors for examples ``indices``: each query with its positive and ``nway - 1`` negatives."""
    settings, special = model.settings, model.special_ids
    q_pieces = [data.pieces[data.queries[i]].tolist() for i in indices]
    q_ids, q_att = query_tensors(q_pieces, [settings.query_maxlen] * len(q_pieces), special, settings)
    doc_pieces: list[list[int]] = []
    teacher_rows = []
    for i in indices:
        i = int(i)
        chosen = choose_negatives(len(data.negatives[i]), nway - 1, seed=seed, epoch=epoch, example=i)
        doc_pieces.append(data.pieces[data.positives[i]].tolist())
        doc_pieces.extend(data.pieces[data.negatives[i][c]].tolist() for c in chosen)
        if data.scores is not None:
            s = data.scores[i]
            teacher_rows.append(np.concatenate([s[:1], s[1:][chosen]]))
    sequences, _ = doc_sequences(doc_pieces, special, settings)
    d_ids, d_att = pad_batch(sequences, special.pad)
    teacher = torch.from_numpy(np.stack(teacher_rows)) if teacher_rows else None
    return Batch(q_ids, q_att, d_ids, d_att, teacher, nway, epoch)
