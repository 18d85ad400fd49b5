"""Training ColBERT models: data, losses, the trainer, hard-negative mining.

>>> from colja.train import train
>>> train("cl-tohoku/bert-base-japanese-v3", "train.jsonl", output_dir="my-colbert", max_steps=1000)

See :mod:`colja.train.data` for the data schema, :mod:`colja.train.losses` for
the losses and :class:`TrainingArguments` for every setting. Names load on
first use (torch is imported only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colja._lazy import lazy_exports

_LAZY = {
    "DEFAULT_BACKBONE": "colja.train.arguments",
    "TrainingArguments": "colja.train.arguments",
    "CheckpointError": "colja.train.checkpoint",
    "TrainingDataError": "colja.train.data",
    "TrainingExample": "colja.train.data",
    "load_training_data": "colja.train.data",
    "write_jsonl": "colja.train.data",
    "contrastive_loss": "colja.train.losses",
    "distillation_loss": "colja.train.losses",
    "maxsim_grouped": "colja.train.losses",
    "maxsim_pairwise": "colja.train.losses",
    "minmax_normalize": "colja.train.losses",
    "MiningError": "colja.train.mining",
    "mine_negatives": "colja.train.mining",
    "write_negatives": "colja.train.mining",
    "Trainer": "colja.train.trainer",
    "TrainResult": "colja.train.trainer",
    "train": "colja.train.trainer",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # pragma: no cover
    from colja.train.arguments import DEFAULT_BACKBONE, TrainingArguments
    from colja.train.checkpoint import CheckpointError
    from colja.train.data import TrainingDataError, TrainingExample, load_training_data, write_jsonl
    from colja.train.losses import (contrastive_loss, distillation_loss, maxsim_grouped, maxsim_pairwise,
                                    minmax_normalize)
    from colja.train.mining import MiningError, mine_negatives, write_negatives
    from colja.train.trainer import Trainer, TrainResult, train
