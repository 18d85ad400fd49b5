"""The training loop: AdamW, linear warm-up and decay, accumulation, AMP, checkpoints, DDP.

>>> from colja.train import train
>>> result = train("cl-tohoku/bert-base-japanese-v3", "train.jsonl", output_dir="my-colbert",
...                max_steps=1000, batch_size=32, lr=1e-5)
>>> result.model.encode_queries(["日本の首都は？"]).shape
torch.Size([1, 32, 128])

A run is a pure function of its arguments and the data: batches and hard
negatives come from the seed (see :mod:`colja.train.batching`), the learning
rate from the step, and a checkpoint stores weights, optimizer moments, RNG
states and the step. Resuming from step ``n`` therefore reproduces the
uninterrupted run (bit for bit on CPU).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colja._progress import progress_enabled
from colja.train import checkpoint as ckpt
from colja.train import distributed as dist_utils
from colja.train.arguments import DATA_ORDER_ARGS, DEFAULT_BACKBONE, TrainingArguments
from colja.train.batching import Batch, BatchSchedule, EncodedData, make_batch
from colja.train.data import TrainingDataError, TrainingExample, load_training_data
from colja.train.losses import contrastive_loss, distillation_loss, maxsim_grouped, maxsim_pairwise

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns: the trained model (eval mode) and the run's record."""

    model: Any
    output_dir: Path
    global_step: int
    final_loss: float
    log_history: list[dict[str, float]] = field(default_factory=list)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then linear decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, (total - step) / max(1, total - warmup))


class _DualEncoder(nn.Module):
    """Queries and documents in one forward call (what DDP needs)."""

    def __init__(self, colbert: nn.Module):
        super().__init__()
        self.colbert = colbert

    def forward(self, q_ids, q_attention, d_ids, d_attention):
        return self.colbert(q_ids, q_attention), self.colbert(d_ids, d_attention)


class Trainer:
    """Train a ColBERT model; see :class:`TrainingArguments` for every knob.

    Args:
        model: a :class:`~colja.ColBERT`, or a name/folder for
            ``ColBERT.from_pretrained`` (a plain backbone gets a fresh
            projection, created after seeding so it is reproducible).
        data: training data in any form :func:`~colja.train.load_training_data` reads.
        args: a :class:`TrainingArguments`.
        negatives: the mined negatives JSONL when ``data`` is a BEIR folder.
        model_kwargs: passed to ``from_pretrained`` (e.g. ``dim``, ``doc_maxlen``).
    """

    def __init__(self, model: Any, data: Any, args: TrainingArguments, *, negatives: str | os.PathLike | None = None,
                 model_kwargs: dict[str, Any] | None = None):
        from colja.model.colbert import ColBERT

        if not isinstance(args, TrainingArguments):
            raise TypeError(f"args must be a TrainingArguments, got {type(args).__name__}")
        self.args = args
        self.ctx, self.device = dist_utils.setup(args.device)
        self.examples: list[TrainingExample] = load_training_data(data, negatives=negatives)
        set_seed(args.seed)
        if isinstance(model, ColBERT):
            if model_kwargs:
                raise ValueError("model_kwargs only apply when the model is given by name or folder")
            self.model = model
        elif isinstance(model, (str, os.PathLike)):
            self.model = ColBERT.from_pretrained(model, device="cpu", **{"precision": "fp32", **(model_kwargs or {})})
        else:
            raise TypeError(f"model must be a ColBERT, a folder or a hub id, got {type(model).__name__}")
        self.loss_kind = self._resolve_loss()
        self.precision = self._resolve_precision()

    # ------------------------------------------------------------ set-up
    def _resolve_loss(self) -> str:
        has_scores = self.examples[0].has_scores
        kind = self.args.loss
        if kind == "auto":
            kind = "distillation" if has_scores else "contrastive"
        if kind == "distillation":
            if not has_scores:
                raise TrainingDataError("loss='distillation' needs teacher 'scores' on every row; "
                                        "use loss='contrastive' or add scores")
            if self.args.nway < 2:
                raise ValueError("distillation needs nway >= 2 (the positive and at least one negative)")
        return kind

    def _resolve_precision(self) -> str:
        p = self.args.mixed_precision
        cuda = self.device.type == "cuda"
        if p == "auto":
            return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
        if p == "fp16" and not cuda:
            raise ValueError("mixed_precision='fp16' needs a GPU; on CPU use 'bf16' or 'no'")
        return p

    def _autocast(self):
        if self.precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.args.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.args.lr, betas=(self.args.adam_beta1, self.args.adam_beta2),
                                 eps=self.args.adam_eps)

    def _total_steps(self, schedule: BatchSchedule) -> int:
        if self.args.max_steps is not None:
            return self.args.max_steps
        epochs = self.args.epochs if self.args.epochs is not None else 1.0
        return max(1, int(epochs * schedule.batches_per_epoch) // self.args.grad_accum_steps)

    @property
    def checkpoint_root(self) -> Path:
        return Path(self.args.checkpoint_dir or Path(self.args.output_dir) / "checkpoints")

    # ------------------------------------------------------------- loss
    def compute_loss(self, Q: torch.Tensor, D: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The loss of one micro-batch from its query and document vectors (float32 scores)."""
        a = self.args
        Q, D = Q.float(), D.float()
        q_mask = self.model.query_mask(batch.q_ids)
        d_keep = self.model.doc_mask(batch.d_ids)
        B, nway = Q.shape[0], batch.nway
        if a.in_batch_negatives:
            scores = maxsim_pairwise(Q, D, d_keep, q_mask)  # [B, B * nway]
            own = torch.arange(B, device=Q.device)[:, None] * nway + torch.arange(nway, device=Q.device)
            grouped = scores.gather(1, own)
        else:
            scores = None
            grouped = maxsim_grouped(Q, D, d_keep, q_mask)  # [B, nway]
        if self.loss_kind == "contrastive":
            if scores is not None:
                return contrastive_loss(scores, torch.arange(B, device=Q.device) * nway, temperature=a.temperature)
            return contrastive_loss(grouped, 0, temperature=a.temperature)
        loss = distillation_loss(grouped, batch.teacher, normalize=a.normalize_scores,
                                 temperature=a.distillation_temperature)
        if scores is not None and a.ib_weight > 0:
            ib = contrastive_loss(scores, torch.arange(B, device=Q.device) * nway, temperature=a.temperature)
            loss = loss + a.ib_weight * ib
        return loss

    # ------------------------------------------------------------ train
    def train(self) -> TrainResult:
        """Run to ``max_steps`` (resuming when asked), save the model to ``output_dir``."""
        a, ctx = self.args, self.ctx
        model = self.model
        model.to(self.device)
        model.train()
        _freeze_unused(model)
        if a.gradient_checkpointing:
            _set_checkpointing(model.bert, True)
        data = EncodedData(self.examples, model, show_progress=a.show_progress if ctx.is_main else False)
        if a.nway - 1 > data.min_negatives():
            logger.info("some examples have fewer than nway-1=%d negatives (fewest: %d); theirs are repeated",
                        a.nway - 1, data.min_negatives())
        schedule = BatchSchedule(len(data), a.batch_size, seed=a.seed, world_size=ctx.world_size, shuffle=a.shuffle)
        total = self._total_steps(schedule)
        warmup = a.warmup_steps(total)
        optimizer = self._optimizer()
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        dual = dist_utils.wrap(_DualEncoder(model), ctx, self.device)

        set_seed(a.seed + ctx.rank)
        start, log_history, window = 0, [], []
        resume = ckpt.resolve_resume(a.resume_from, self.checkpoint_root)
        if resume is not None:
            start, log_history, window = self._resume(resume, optimizer, scaler, total, len(data))

        show = ctx.is_main and progress_enabled(a.show_progress, total - start)
        bar = _bar(total, start, show)
        loss_value = math.nan
        t0 = time.perf_counter()
        for step in range(start, total):
            lr = lr_at(step, a.lr, warmup, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = self._accumulate(dual, data, schedule, step, scaler)
            self._apply_gradients(optimizer, scaler)
            done = step + 1
            window.append(step_loss)
            if done % a.logging_steps == 0 or done == total:
                loss_value = dist_utils.mean(sum(window) / len(window), ctx, self.device)
                window = []
                epoch_f = done * a.grad_accum_steps / schedule.batches_per_epoch
                entry = {"step": done, "loss": round(loss_value, 6), "lr": lr, "epoch": round(epoch_f, 4),
                         "elapsed_s": round(time.perf_counter() - t0, 1)}
                log_history.append(entry)
                logger.info("step %d/%d loss %.4f lr %.3g epoch %.2f", done, total, loss_value, lr, epoch_f)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if bar is not None:
                bar.update(1)
            if a.save_steps and done % a.save_steps == 0 and done < total:
                self._save_checkpoint(done, optimizer, scaler, schedule, total, len(data), log_history, window)
        if bar is not None:
            bar.close()
        if math.isnan(loss_value) and log_history:
            loss_value = log_history[-1]["loss"]
        if ctx.is_main:
            self._save_final(total, warmup, log_history)
        dist_utils.barrier(ctx)
        if a.gradient_checkpointing:
            _set_checkpointing(model.bert, False)
        model.eval()
        dist_utils.teardown(ctx)
        return TrainResult(model, Path(a.output_dir), total, loss_value, log_history)

    def _accumulate(self, dual: nn.Module, data: EncodedData, schedule: BatchSchedule, step: int, scaler) -> float:
        """Forward and backward over the micro-batches of one step; returns the step's loss."""
        a = self.args
        total = 0.0
        for micro in range(a.grad_accum_steps):
            indices, epoch = schedule.indices(step * a.grad_accum_steps + micro, self.ctx.rank)
            batch = make_batch(data, indices, epoch, self.model, nway=a.nway, seed=a.seed).to(self.device)
            with dist_utils.no_sync(dual, skip=micro < a.grad_accum_steps - 1):
                with self._autocast():
                    Q, D = dual(batch.q_ids, batch.q_attention, batch.d_ids, batch.d_attention)
                loss = self.compute_loss(Q, D, batch) / a.grad_accum_steps
                (scaler.scale(loss) if scaler is not None else loss).backward()
            total += float(loss.detach())
        return total

    def _apply_gradients(self, optimizer: torch.optim.Optimizer, scaler) -> None:
        if scaler is not None:
            scaler.unscale_(optimizer)
        if self.args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------- checkpoints
    def _trainer_state(self, step: int, scaler, schedule: BatchSchedule, total: int, n_examples: int,
                       log_history: list[dict], window: list[float]) -> dict[str, Any]:
        micro = step * self.args.grad_accum_steps
        epoch, in_epoch = schedule.position(micro)
        return {
            "step": step,
            "total_steps": total,
            "micro_batch": micro,
            "epoch": epoch,
            "batch_in_epoch": in_epoch,
            "n_examples": n_examples,
            "world_size": self.ctx.world_size,
            "loss_kind": self.loss_kind,
            "precision": self.precision,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "args": self.args.to_dict(),
            "log_history": log_history,
            "loss_window": window,
            "versions": _versions(),
        }

    def _save_checkpoint(self, step: int, optimizer, scaler, schedule, total: int, n_examples: int,
                         log_history: list[dict], window: list[float]) -> None:
        rng = dist_utils.gather(ckpt.capture_rng(), self.ctx)
        if self.ctx.is_main:
            folder = ckpt.step_dir(self.checkpoint_root, step)
            state = self._trainer_state(step, scaler, schedule, total, n_examples, log_history, window)
            ckpt.save_checkpoint(folder, model=self.model, optimizer=optimizer, trainer_state=state, rng_states=rng)
            ckpt.prune_checkpoints(self.checkpoint_root, self.args.save_total_limit)
            logger.info("saved checkpoint %s", folder)
        dist_utils.barrier(self.ctx)

    def _resume(self, folder: Path, optimizer, scaler, total: int, n_examples: int) -> tuple[int, list[dict], list[float]]:
        state = ckpt.read_state(folder)
        saved = state.get("args", {})
        changed = [k for k in DATA_ORDER_ARGS if k in saved and saved[k] != getattr(self.args, k)]
        if state.get("world_size") != self.ctx.world_size:
            changed.append(f"world_size ({state.get('world_size')} -> {self.ctx.world_size})")
        if state.get("n_examples") != n_examples:
            changed.append(f"number of examples ({state.get('n_examples')} -> {n_examples})")
        if changed:
            raise ckpt.CheckpointError(f"cannot resume from {folder}: {', '.join(map(str, changed))} differ from "
                                       "the run that wrote it, so the data order would change; resume with the "
                                       "same data and arguments")
        if state.get("total_steps") != total:
            logger.warning("resuming %s with %d total steps instead of %d: the learning-rate schedule changes",
                           folder, total, state.get("total_steps"))
        ckpt.load_model_weights(self.model, folder)
        ckpt.load_optimizer(optimizer, folder)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.load_rng(folder, state, self.ctx.rank)
        step = int(state["step"])
        if step >= total:
            logger.warning("checkpoint %s is at step %d, the run has %d steps: nothing left to train", folder, step, total)
        logger.info("resumed from %s at step %d", folder, step)
        return step, list(state.get("log_history", [])), list(state.get("loss_window", []))

    def _save_final(self, total: int, warmup: int, log_history: list[dict]) -> None:
        a = self.args
        out = Path(a.output_dir)
        extra = self.model.settings.extra
        extra.update({"bsize": a.batch_size, "accumsteps": a.grad_accum_steps, "lr": a.lr, "maxsteps": total,
                      "warmup": warmup, "nway": a.nway, "use_ib_negatives": a.in_batch_negatives})
        if self.loss_kind == "distillation":
            extra.update({"kldiv_loss": True, "normalise_training_scores": a.normalize_scores != "none",
                          "normalization_method": "minmax"})
        self.model.save_pretrained(out)
        (out / "training_args.json").write_text(json.dumps({**a.to_dict(), "loss_kind": self.loss_kind,
                                                            "precision": self.precision, "total_steps": total,
                                                            "n_examples": len(self.examples),
                                                            "versions": _versions()},
                                                           indent=2, ensure_ascii=False), encoding="utf-8")
        with open(out / "training_log.jsonl", "w", encoding="utf-8") as f:
            for entry in log_history:
                f.write(json.dumps(entry) + "\n")
        logger.info("saved the trained model to %s", out)


def train(model: Any = DEFAULT_BACKBONE, data: Any = None, *, output_dir: str | os.PathLike,
          negatives: str | os.PathLike | None = None, model_kwargs: dict[str, Any] | None = None,
          **training_args: Any) -> TrainResult:
    """Train ``model`` on ``data`` and save it to ``output_dir`` (Stanford layout).

    ``training_args`` are :class:`TrainingArguments` fields (``max_steps``,
    ``batch_size``, ``lr``, ``nway``, ``resume_from``…); ``model_kwargs`` go to
    ``ColBERT.from_pretrained`` when ``model`` is a name (``dim``, ``doc_maxlen``…).
    """
    if data is None:
        raise TypeError("train() needs data: rows, a datasets.Dataset, a JSONL file or a BEIR folder")
    try:
        args = TrainingArguments(output_dir=str(output_dir), **training_args)
    except TypeError as e:
        raise TypeError(f"{e}; valid training arguments are the fields of colja.train.TrainingArguments") from None
    return Trainer(model, data, args, negatives=negatives, model_kwargs=model_kwargs).train()


def _set_checkpointing(backbone: nn.Module, on: bool) -> None:
    """Activation (gradient) checkpointing on the backbone; transformers 5 renamed the methods."""
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):
        if on:
            backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            backbone.activation_checkpointing_disable()
    elif on:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_disable()


def _freeze_unused(model) -> None:
    """The BERT pooler never reaches a ColBERT score; freezing it keeps DDP from waiting for its gradients."""
    pooler = getattr(model.bert, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)


def _bar(total: int, start: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="Training", unit="step", dynamic_ncols=True)


def _versions() -> dict[str, str]:
    import colja

    return {"colja": colja.__version__, "torch": torch.__version__}
