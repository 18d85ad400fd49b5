"""Loading models from the Hugging Face Hub: fail once and fast when it cannot work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from colja.errors import ModelLoadError


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def offline_advice(repo_id: str, loader: str) -> str:
    return ("To work offline, download it once on a connected machine "
            f"(`huggingface-cli download {repo_id}`) and either set HF_HUB_OFFLINE=1 to use the cache "
            f"or pass the downloaded folder: {loader}('/path/to/folder').")


def hub_load_options(name: str, *, revision: str | None = None, loader: str = "load") -> dict[str, Any]:
    """Check, once and fast, that hub id ``name`` can be loaded; the extra keywords for the loader.

    A local folder needs nothing. Offline (``HF_HUB_OFFLINE``) or with the hub
    unreachable, a model in the local cache loads from it (``local_files_only``);
    one that is not there fails now with :class:`ModelLoadError` and the offline
    advice, instead of a minute of retries inside the loader.
    """
    if Path(os.path.expanduser(name)).is_dir() or looks_like_path(name):
        return {}
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:  # pragma: no cover - comes with transformers
        return {}
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    reason = "HF_HUB_OFFLINE is set"
    if not offline:
        try:
            HfApi().model_info(name, revision=revision, timeout=10)
            return {}
        except Exception as e:  # noqa: BLE001 - the hub raises many types
            kind = type(e).__name__
            if kind in ("RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError"):
                raise ModelLoadError(f"could not load model {name!r}: the Hugging Face Hub says {kind} "
                                     f"({str(e).splitlines()[0] if str(e) else ''}); check the id") from e
            reason = f"the Hugging Face Hub is unreachable ({kind})"
    try:
        snapshot_download(name, revision=revision, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - not in the cache
        raise ModelLoadError(f"could not load model {name!r}: it is not a local folder, {reason}, and it is not "
                             f"in the local cache. {offline_advice(name, loader)}") from e
    return {"local_files_only": True}


__all__ = ["hub_load_options", "offline_advice"]
