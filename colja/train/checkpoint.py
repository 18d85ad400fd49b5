"""Resumable training checkpoints in safetensors + JSON (no pickle).

A checkpoint is a folder ``<root>/step-00000100/`` (``root`` defaults to
``<output_dir>/checkpoints``):

==========================  ================================================
model files                 the model in the Stanford layout (loadable with
                            ``ColBERT.from_pretrained``)
``optimizer.safetensors``   every tensor of the optimizer state, named
                            ``state.<param>.<key>``
``optimizer.json``          the rest of the optimizer state: param groups and
                            which tensor goes where
``rng.safetensors``         torch (CPU and CUDA) and numpy RNG states, one set
                            per process (``rank<r>.…``)
``trainer_state.json``      step, data position, python RNG state, loss
                            scaler, arguments, log; written last, so its
                            presence marks a complete checkpoint
==========================  ================================================

The folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colja._atomic import atomic_folder, write_json
from colja.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT = "colja-train-checkpoint"
FORMAT_VERSION = 1
STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


# ------------------------------------------------------------ JSON helpers
def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a JSON checkpoint")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


# ------------------------------------------------------- optimizer state
def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` as (named tensors, JSON structure)."""
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    for pid, entry in state_dict["state"].items():
        out = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                name = f"state.{pid}.{key}"
                tensors[name] = value.detach().to("cpu").contiguous()
                out[key] = {"tensor": name}
            else:
                out[key] = {"value": _to_json(value)}
        state[str(pid)] = out
    structure = {"state": state, "param_groups": _to_json(state_dict["param_groups"])}
    return tensors, structure


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], structure: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in structure["state"].items():
        state[int(pid)] = {key: tensors[v["tensor"]] if "tensor" in v else _from_json(v["value"])
                           for key, v in entry.items()}
    return {"state": state, "param_groups": _from_json(structure["param_groups"])}


# ------------------------------------------------------------- RNG state
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states as (tensors, JSON): torch CPU/CUDA, numpy, python."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    info = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": _to_json(random.getstate())}
    return tensors, info


def restore_rng(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = info["numpy"]
    np.random.set_state((n["kind"], tensors["numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(_from_json(info["python"]))


# ----------------------------------------------------------- the folder
def step_dir(root: str | os.PathLike, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``root`` (or in ``root/checkpoints``), oldest first."""
    root = Path(root)
    if not any(_STEP_DIR.match(p.name) for p in root.glob("step-*")) and (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str | os.PathLike | bool | None, root: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: a folder, or the newest one for ``True``/``"latest"``.

    ``"latest"``/``True`` with no checkpoint yet starts from scratch (logged),
    so the same command can be rerun after an interruption.
    """
    if resume in (None, False, ""):
        return None
    if resume is True or str(resume) == "latest":
        found = list_checkpoints(root)
        if not found:
            logger.info("no checkpoint under %s yet; starting from step 0", root)
            return None
        return found[-1]
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1]
    raise CheckpointError(f"{path} is not a training checkpoint (no {STATE_FILE}) and holds none under "
                          "checkpoints/; pass a checkpoint folder, the run's output folder, or 'latest'")


def save_checkpoint(folder: Path, *, model, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any],
                    rng_states: list[tuple[dict[str, torch.Tensor], dict[str, Any]]]) -> Path:
    """Write a complete checkpoint to ``folder`` (atomically); ``rng_states`` has one entry per rank."""

    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        _write_checkpoint(tmp, model=model, optimizer=optimizer, trainer_state=trainer_state, rng_states=rng_states)
    return folder


def _write_checkpoint(tmp: Path, *, model, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any],
                      rng_states: list[tuple[dict[str, torch.Tensor], dict[str, Any]]]) -> None:
    from safetensors.torch import save_file

    model.save_pretrained(tmp)
    tensors, structure = flatten_optimizer_state(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    write_json(tmp / "optimizer.json", structure)
    rng_tensors: dict[str, torch.Tensor] = {}
    rng_info = []
    for rank, (t, info) in enumerate(rng_states):
        rng_tensors.update({f"rank{rank}.{k}": v.contiguous() for k, v in t.items()})
        rng_info.append(info)
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **trainer_state, "rng": rng_info}
    write_json(tmp / STATE_FILE, state)


def read_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a colja training checkpoint (format={state.get('format')!r})")
    if not isinstance(state.get("format_version"), int) or state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {state.get('format_version')!r}; this colja reads "
                              f"up to {FORMAT_VERSION}")
    return state


def load_model_weights(model, folder: Path) -> None:
    """Copy a checkpoint's ``model.safetensors`` into ``model`` (every tensor must match)."""
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{folder} has no model.safetensors")
    saved = load_file(str(path))
    prefix = getattr(model.bert, "base_model_prefix", "bert") or "bert"
    state = {("bert." + k[len(prefix) + 1:] if k.startswith(prefix + ".") else k): v for k, v in saved.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}; "
                              "resume with the model the run started from")
    model.load_state_dict(state, strict=True)


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    from safetensors.torch import load_file

    folder = Path(folder)
    structure = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    optimizer.load_state_dict(unflatten_optimizer_state(tensors, structure))


def load_rng(folder: Path, state: dict[str, Any], rank: int) -> None:
    from safetensors.torch import load_file

    infos = state.get("rng") or []
    if rank >= len(infos):
        logger.warning("%s holds RNG states for %d processes, not for rank %d; dropout will differ from the "
                       "original run", folder, len(infos), rank)
        return
    tensors = load_file(str(Path(folder) / "rng.safetensors"))
    prefix = f"rank{rank}."
    restore_rng({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, infos[rank])


def prune_checkpoints(root: str | os.PathLike, keep: int | None) -> None:
    """Delete all but the newest ``keep`` checkpoints in ``root`` (``None`` keeps everything)."""
    if keep is None or keep <= 0:
        return
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


