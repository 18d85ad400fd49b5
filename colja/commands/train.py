"""``colja train``: train or fine-tune a ColBERT model (mirrors :func:`colja.train.train`).

Single process (CPU or one GPU)::

    colja train --data train.jsonl --output my-colbert --max-steps 1000

Several GPUs::

    torchrun --nproc_per_node=4 -m colja.cli train --data train.jsonl --output my-colbert
"""

from __future__ import annotations

import argparse
import os
import sys

from colja.train.arguments import DEFAULT_BACKBONE, LOSSES, NORMALIZE_CHOICES, PRECISIONS, TrainingArguments


def _warmup(text: str) -> float:
    value = float(text)
    if value < 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError("a number of steps (int >= 1) or a fraction of the run (0 <= x < 1)")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from colja.errors import ColjaError
    from colja.train import train

    model_kwargs = {k: v for k, v in (("dim", args.dim), ("query_maxlen", args.query_maxlen),
                                      ("doc_maxlen", args.doc_maxlen)) if v is not None}
    try:
        result = _run(train, args, model_kwargs)
    except ColjaError:
        raise
    except (ValueError, FileNotFoundError) as e:
        print(f"colja train: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {result.global_step} steps, final loss {result.final_loss:.4f}; model saved to {result.output_dir}")
    return 0


def _run(train, args: argparse.Namespace, model_kwargs: dict):
    return train(
        args.model, args.data, output_dir=args.output, negatives=args.negatives, model_kwargs=model_kwargs or None,
        max_steps=args.max_steps, epochs=args.epochs, batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum, lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm or None, loss=args.loss, temperature=args.temperature, nway=args.nway,
        in_batch_negatives=args.in_batch_negatives, ib_weight=args.ib_weight, normalize_scores=args.normalize,
        seed=args.seed, save_steps=args.save_steps, save_total_limit=args.save_total_limit,
        checkpoint_dir=args.checkpoint_dir, resume_from=args.resume, logging_steps=args.logging_steps,
        mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
        device=args.device, show_progress=False if args.no_progress else None,
    )


def add_parser(sub) -> None:
    d = TrainingArguments(output_dir="")
    p = sub.add_parser("train", help="train a ColBERT model (from a backbone or a checkpoint)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("model and data")
    io.add_argument("--model", default=DEFAULT_BACKBONE,
                    help=f"backbone or ColBERT checkpoint, folder or hub id (default {DEFAULT_BACKBONE})")
    io.add_argument("--data", required=True,
                    help="JSONL of {query, positive, negatives[, scores]}, a saved datasets.Dataset, or a BEIR folder")
    io.add_argument("--negatives", help="mined negatives JSONL for a BEIR folder (see `colja mine-negatives`)")
    io.add_argument("--output", required=True, help="folder for the trained model (Stanford layout)")
    io.add_argument("--dim", type=int, help="projection size for a fresh backbone (default 128)")
    io.add_argument("--query-maxlen", type=int, help="override the model's query length")
    io.add_argument("--doc-maxlen", type=int, help="override the model's document length")
    run = p.add_argument_group("schedule")
    run.add_argument("--max-steps", type=int, help="optimizer steps (default: --epochs passes)")
    run.add_argument("--epochs", type=float, help="passes over the data when --max-steps is not given (default 1)")
    run.add_argument("--batch-size", type=int, default=d.batch_size, help="queries per micro-batch and process")
    run.add_argument("--grad-accum", type=int, default=d.grad_accum_steps, help="micro-batches per optimizer step")
    run.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    run.add_argument("--warmup", type=_warmup, default=d.warmup, help="warm-up steps, or a fraction of the run (default 0.1)")
    run.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW weight decay (default {d.weight_decay})")
    run.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm, help="clipping; 0 turns it off")
    run.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    loss = p.add_argument_group("loss")
    loss.add_argument("--loss", choices=LOSSES, default=d.loss,
                      help="auto: distillation when the data have teacher scores, else contrastive")
    loss.add_argument("--temperature", type=float, default=d.temperature, help="contrastive temperature on raw MaxSim")
    loss.add_argument("--nway", type=int, default=d.nway, help="documents per query: positive + nway-1 negatives")
    loss.add_argument("--in-batch-negatives", action=argparse.BooleanOptionalAction, default=d.in_batch_negatives,
                      help="contrast with the other queries' documents too (default on)")
    loss.add_argument("--ib-weight", type=float, default=d.ib_weight, help="in-batch term weight with distillation")
    loss.add_argument("--normalize", choices=NORMALIZE_CHOICES, default=d.normalize_scores,
                      help="min-max normalisation for distillation (default both)")
    ck = p.add_argument_group("checkpoints and hardware")
    ck.add_argument("--save-steps", type=int, default=d.save_steps, help="checkpoint every N steps (0: never)")
    ck.add_argument("--save-total-limit", type=int, default=d.save_total_limit, help="checkpoints kept")
    ck.add_argument("--checkpoint-dir", help="where checkpoints go (default OUTPUT/checkpoints)")
    ck.add_argument("--resume", nargs="?", const="latest", default=None,
                    help="resume from a checkpoint folder, or the newest one (no value / 'latest')")
    ck.add_argument("--logging-steps", type=int, default=d.logging_steps, help=f"log the loss every N steps (default {d.logging_steps})")
    ck.add_argument("--mixed-precision", choices=PRECISIONS, default=d.mixed_precision,
                    help="auto: bf16/fp16 on GPU, off on CPU")
    ck.add_argument("--gradient-checkpointing", action="store_true", help="save GPU memory, ~30%% slower")
    ck.add_argument("--device", help="cpu or cuda (default cuda when available; torchrun sets it per process)")
    ck.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
