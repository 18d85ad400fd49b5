"""Find a checkpoint (local folder or Hugging Face hub) and read its parts.

Three layouts are understood:

* ``stanford`` — Stanford ``HF_ColBERT`` (the JaColBERT family): backbone weights
  under ``bert.`` (the backbone's ``base_model_prefix``), ``linear.weight``
  ``[dim, hidden]`` without bias, settings in ``artifact.metadata``;
* ``pylate`` — a sentence-transformers pipeline (``modules.json``) with a
  Transformer and a bias-free ``Dense`` module, settings in
  ``config_sentence_transformers.json``;
* ``backbone`` — a plain encoder such as ``cl-tohoku/bert-base-japanese-v3``;
  the caller adds a fresh projection.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from colja._hub import looks_like_path
from colja.errors import ModelLoadError
from colja.model.settings import ColBERTSettings

logger = logging.getLogger("colja.model")

# Files worth downloading from the hub (weights in either format, configs, tokenizer).
_HUB_PATTERNS = [
    "*.json",
    "*.txt",
    "*.model",
    "artifact.metadata",
    "*.safetensors",
    "*.safetensors.index.json",
    "1_Dense/*",
    "2_Dense/*",
]
_HUB_BIN_PATTERNS = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` found in a folder."""

    folder: Path
    layout: str  # "stanford" | "pylate" | "backbone"
    backbone_folder: Path
    settings: ColBERTSettings
    linear_weight: torch.Tensor | None


def resolve_folder(name_or_path: str | os.PathLike, *, revision: str | None = None, cache_dir: str | None = None, local_files_only: bool | None = None) -> Path:
    """A local folder for ``name_or_path``, downloading from the hub when needed."""
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists():
        raise ModelLoadError(f"{name!r} is a file; from_pretrained expects a model folder or a hub id such as 'answerdotai/JaColBERTv2.5'")
    if looks_like_path(name):
        raise ModelLoadError(f"model folder {name!r} does not exist")
    return _download(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)


def _download(repo_id: str, *, revision: str | None, cache_dir: str | None, local_files_only: bool | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub comes with transformers
        raise ModelLoadError(f"cannot download {repo_id!r}: huggingface_hub is not installed ({e})") from e
    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=_HUB_PATTERNS,
            local_files_only=local_files_only,
        )
        folder = Path(folder)
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.safetensors.index.json")):
            folder = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    cache_dir=cache_dir,
                    allow_patterns=_HUB_PATTERNS + _HUB_BIN_PATTERNS,
                    local_files_only=local_files_only,
                )
            )
        return folder
    except Exception as e:  # the hub raises many types (offline, 404, HTTP, DNS)
        where = "the local cache (offline mode)" if local_files_only else "the Hugging Face Hub"
        raise ModelLoadError(
            f"could not load model {repo_id!r}: it is not a local folder and fetching it from {where} failed "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "To work offline, download it once on a connected machine "
            f"(`huggingface-cli download {repo_id}`) and either set HF_HUB_OFFLINE=1 to use the cache "
            "or pass the downloaded folder: ColBERT.from_pretrained('/path/to/folder')."
        ) from e


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e


def detect_layout(folder: Path) -> str:
    if (folder / "modules.json").is_file():
        return "pylate"
    if (folder / "artifact.metadata").is_file():
        return "stanford"
    config_path = folder / "config.json"
    if config_path.is_file():
        archs = read_json(config_path).get("architectures") or []
        return "stanford" if "HF_ColBERT" in archs else "backbone"
    raise ModelLoadError(f"{folder} holds no model: expected config.json (plus artifact.metadata or modules.json)")


def read_checkpoint(folder: Path) -> Checkpoint:
    layout = detect_layout(folder)
    if layout == "stanford":
        return _read_stanford(folder)
    if layout == "pylate":
        return _read_pylate(folder)
    return Checkpoint(folder, "backbone", folder, ColBERTSettings(), None)


def _read_stanford(folder: Path) -> Checkpoint:
    meta_path = folder / "artifact.metadata"
    metadata = read_json(meta_path) if meta_path.is_file() else {}
    if not meta_path.is_file():
        logger.warning("%s has no artifact.metadata; using Stanford ColBERT's defaults", folder)
        metadata = {"doc_maxlen": 220}
    try:
        settings = ColBERTSettings.from_artifact_metadata(metadata)
    except ValueError as e:
        raise ModelLoadError(f"{meta_path}: {e}") from e
    weight = load_tensor(folder, "linear.weight")
    if weight is None:
        raise ModelLoadError(f"{folder} is an HF_ColBERT checkpoint but its weights have no 'linear.weight'")
    if weight.shape[0] != settings.dim:
        settings = settings.replace(dim=int(weight.shape[0]))
    return Checkpoint(folder, "stanford", folder, settings, weight)


def _read_pylate(folder: Path) -> Checkpoint:
    modules = read_json(folder / "modules.json")
    transformer = [m for m in modules if m.get("type", "").endswith("Transformer")]
    dense = [m for m in modules if m.get("type", "").endswith("Dense")]
    others = [m for m in modules if m not in transformer and m not in dense]
    if len(transformer) != 1 or len(dense) != 1 or others:
        kinds = [m.get("type") for m in modules]
        raise ModelLoadError(f"{folder}/modules.json lists {kinds}; colja loads ColBERT pipelines of one Transformer and one Dense module")
    backbone_folder = folder / transformer[0].get("path", "")
    dense_folder = folder / dense[0]["path"]
    dense_config = read_json(dense_folder / "config.json")
    if dense_config.get("bias", False):
        raise ModelLoadError(f"{dense_folder}: a Dense layer with bias is not a ColBERT projection (bias must be false)")
    activation = str(dense_config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.endswith("Identity"):
        raise ModelLoadError(f"{dense_folder}: activation {activation!r} is not supported; ColBERT projections are linear (Identity)")
    weight = load_tensor(dense_folder, "linear.weight")
    if weight is None:
        raise ModelLoadError(f"{dense_folder} has no 'linear.weight'")
    st_config_path = folder / "config_sentence_transformers.json"
    st = read_json(st_config_path) if st_config_path.is_file() else {}
    values: dict[str, Any] = {"dim": int(weight.shape[0])}
    mapping = {
        "query_prefix": "query_token_id",
        "document_prefix": "doc_token_id",
        "query_length": "query_maxlen",
        "document_length": "doc_maxlen",
        "attend_to_expansion_tokens": "attend_to_mask_tokens",
        "do_query_expansion": "query_expansion",
        "skiplist_words": "skiplist_words",
    }
    for src, dst in mapping.items():
        if st.get(src) is not None:
            values[dst] = st[src]
    values.setdefault("query_token_id", "[Q] ")
    values.setdefault("doc_token_id", "[D] ")
    values.setdefault("doc_maxlen", 180)
    values["query_token_id"] = values["query_token_id"].strip()
    values["doc_token_id"] = values["doc_token_id"].strip()
    values["mask_punctuation"] = True
    if values.get("skiplist_words") == []:
        values["mask_punctuation"] = False
    try:
        settings = ColBERTSettings(**values)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{st_config_path}: {e}") from e
    return Checkpoint(folder, "pylate", backbone_folder, settings, weight)


def load_tensor(folder: Path, key: str) -> torch.Tensor | None:
    """Read one tensor from a folder's weights (safetensors, sharded or torch .bin)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index_path = folder / index_name
        if index_path.is_file():
            shard = read_json(index_path).get("weight_map", {}).get(key)
            if shard is None:
                return None
            return _read_from_file(folder / shard, key)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return _read_from_file(folder / name, key)
    raise ModelLoadError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")


def _read_from_file(path: Path, key: str) -> torch.Tensor | None:
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return f.get_tensor(key).clone() if key in f.keys() else None
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        value = state.get(key)
        return value.clone() if value is not None else None
    except Exception as e:
        raise ModelLoadError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
