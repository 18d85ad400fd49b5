"""One or many processes: plain single-process training, or DDP under ``torchrun``.

``torchrun --nproc_per_node=4 -m colja.cli train …`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL
on GPUs, Gloo on CPU) and gives each process its own GPU. Each process takes
its own slice of every global batch, gradients are averaged by DDP, in-batch
negatives stay local to a process, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | torch.device | None) -> tuple[DistributedContext, torch.device]:
    """The process's rank and device; joins the process group under ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return DistributedContext(), torch.device(device)
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        here = True
    logger.info("distributed training: rank %d of %d on %s", rank, world, dev)
    return DistributedContext(rank, world, local_rank, here), dev


def wrap(module: torch.nn.Module, ctx: DistributedContext, device: torch.device) -> torch.nn.Module:
    """``module`` in DDP when several processes train, else unchanged."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)


def no_sync(module: torch.nn.Module, skip: bool):
    """Skip DDP's gradient all-reduce on accumulation micro-steps."""
    if skip and hasattr(module, "no_sync"):
        return module.no_sync()
    return contextlib.nullcontext()


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def mean(value: float, ctx: DistributedContext, device: torch.device) -> float:
    """Average a float over processes (for logging)."""
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def gather(obj: Any, ctx: DistributedContext) -> list[Any]:
    """Every process's ``obj`` (e.g. RNG states for a checkpoint), in rank order."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def teardown(ctx: DistributedContext) -> None:
    if ctx.initialized_here:
        import torch.distributed as dist

        dist.destroy_process_group()
