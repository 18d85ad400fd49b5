"""Every training knob in one dataclass, round-tripping through JSON (no heavy imports here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_BACKBONE = "cl-tohoku/bert-base-japanese-v3"
LOSSES = ("auto", "contrastive", "distillation")
PRECISIONS = ("auto", "no", "bf16", "fp16")
NORMALIZE_CHOICES = ("both", "student", "teacher", "none")

# Arguments that decide which data a step sees: a resumed run must keep them.
DATA_ORDER_ARGS = ("seed", "batch_size", "grad_accum_steps", "nway", "shuffle")


@dataclass
class TrainingArguments:
    """How to train.

    Attributes:
        output_dir: where the final model (Stanford layout) is written,
            with ``training_args.json`` and ``training_log.jsonl`` beside it.
        max_steps: optimizer steps; when None, ``epochs`` passes over the data.
        epochs: passes over the data (default 1 when ``max_steps`` is None).
        batch_size: queries per micro-batch and process.
        grad_accum_steps: micro-batches per optimizer step.
        lr: peak learning rate (AdamW); 1e-5…3e-5 suits pre-trained BERTs,
            1e-4…5e-4 models trained from scratch.
        warmup: linear warm-up length, in steps (>= 1) or as a fraction of
            ``max_steps`` (< 1); then linear decay to 0.
        weight_decay: AdamW decay (not applied to biases and LayerNorm).
        max_grad_norm: gradient clipping (None: off).
        loss: ``contrastive``, ``distillation`` (needs teacher scores) or
            ``auto`` (distillation when the data have scores).
        temperature: contrastive logits are raw MaxSim / temperature (1.0 =
            Stanford ColBERT; raw scores span ± the query length).
        nway: documents per query: the positive and ``nway - 1`` hard negatives.
        in_batch_negatives: also contrast each query with the other queries'
            documents in its micro-batch.
        ib_weight: weight of the in-batch term added to a distillation loss.
        normalize_scores: min-max normalisation in the distillation loss:
            ``both`` (default), ``student`` (PyLate), ``teacher`` or ``none``.
        distillation_temperature: softmax temperature of both distributions.
        seed: seeds python, numpy and torch, the data order and negatives.
        shuffle: a new random order of the examples every epoch.
        save_steps: checkpoint every this many steps (0/None: only the final model).
        save_total_limit: newest checkpoints kept (None: all).
        checkpoint_dir: the folder checkpoints go to (default
            ``<output_dir>/checkpoints``); point it elsewhere to keep the model
            folder clean.
        resume_from: a checkpoint folder, a run folder, or ``"latest"``.
        logging_steps: log (and refresh the progress bar's loss) every this many steps.
        mixed_precision: ``auto`` (bf16 on GPUs that have it, else fp16; off
            on CPU), ``no``, ``bf16`` or ``fp16`` (GPU only, with loss scaling).
        gradient_checkpointing: recompute activations in the backward pass
            (less memory, ~30 % slower).
        device: ``cpu``/``cuda``/``cuda:1``; default CUDA when available
            (under ``torchrun`` each process takes ``cuda:LOCAL_RANK``).
        show_progress: progress bar (None: on, unless COLJA_DISABLE_PROGRESS).
    """

    output_dir: str
    max_steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    lr: float = 1e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    loss: str = "auto"
    temperature: float = 1.0
    nway: int = 2
    in_batch_negatives: bool = True
    ib_weight: float = 1.0
    normalize_scores: str = "both"
    distillation_temperature: float = 1.0
    seed: int = 42
    shuffle: bool = True
    save_steps: int | None = 500
    save_total_limit: int | None = 2
    checkpoint_dir: str | None = None
    resume_from: str | None = None
    logging_steps: int = 10
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    device: str | None = None
    show_progress: bool | None = None

    def __post_init__(self) -> None:
        self.output_dir = str(self.output_dir)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)
        if self.resume_from is not None and not isinstance(self.resume_from, bool):
            self.resume_from = str(self.resume_from)
        self.validate()

    def validate(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

        for name in ("batch_size", "grad_accum_steps", "nway", "logging_steps"):
            positive_int(name)
        if self.max_steps is not None:
            positive_int("max_steps")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.warmup < 0 or (self.warmup >= 1 and float(self.warmup) != int(self.warmup)):
            raise ValueError(f"warmup is a number of steps (an int >= 1) or a fraction of the run (0 <= x < 1), got {self.warmup!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.normalize_scores not in NORMALIZE_CHOICES:
            raise ValueError(f"normalize_scores must be one of {NORMALIZE_CHOICES}, got {self.normalize_scores!r}")
        for name in ("temperature", "distillation_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.save_steps is not None and self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0 (0 or None: no checkpoints), got {self.save_steps!r}")
        if self.nway == 1 and not self.in_batch_negatives:
            raise ValueError("nway=1 without in_batch_negatives leaves nothing to contrast the positive with; "
                             "raise nway or set in_batch_negatives=True")

    def warmup_steps(self, total: int) -> int:
        return int(self.warmup) if self.warmup >= 1 else int(round(self.warmup * total))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingArguments":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training arguments {unknown}; valid names are {sorted(names)}")
        return cls(**data)
