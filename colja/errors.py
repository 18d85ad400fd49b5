"""Every exception and warning colja raises, in one place.

Each class subclasses the closest built-in so ``except ValueError`` and friends
keep working; messages say what was wrong, what was found and what to do.
"""

from __future__ import annotations


class ColjaError(Exception):
    """Base class of every colja error."""


class ModelLoadError(ColjaError, OSError):
    """A model could not be found, downloaded or read."""


class UntrustedCodeError(ModelLoadError):
    """A model would run its own Python code, and the caller did not pass ``trust_remote_code=True``.

    What an index folder records is never taken as that permission: only the
    caller's argument (``Index.load(path, trust_remote_code=True)``) is.
    """


class IndexNotFoundError(ColjaError, FileNotFoundError):
    """No (complete) index exists at the given path."""


class IndexExistsError(ColjaError, FileExistsError):
    """An index already exists where a new one was to be written."""


class IndexFormatError(ColjaError, ValueError):
    """An index folder is truncated, corrupted, foreign or from a newer colja."""


class MissingDependencyError(ColjaError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


class TrainingDataError(ColjaError, ValueError):
    """Training data are malformed; the message names the row and the field."""


class CheckpointError(ColjaError, ValueError):
    """A checkpoint folder is incomplete or does not match the run resuming from it."""


class MiningError(ColjaError, RuntimeError):
    """Negatives could not be mined (missing index, ids that do not match the corpus…)."""


class KernelBuildError(ColjaError, RuntimeError):
    """The kernels were requested explicitly (``impl="cpp"``/``"cuda"`` or
    ``COLJA_KERNELS=cpp``) but could not be built or loaded."""


class KernelFallbackWarning(UserWarning):
    """The C++/CUDA kernels could not be built or loaded; the PyTorch path is used."""


class TruncationWarning(UserWarning):
    """Input was longer than the model accepts and was cut."""


class FilterError(ColjaError, ValueError):
    """A ``where=`` metadata filter is malformed (unknown operator, bad value); see :mod:`colja.index.filters`."""


class UnknownDocumentError(ColjaError, KeyError):
    """``delete`` / ``update`` named document ids the index does not hold (nothing was written)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


class CollectionError(ColjaError, ValueError):
    """Documents, doc ids or metadata given to build or change an index are invalid (nothing was written)."""


class DiskFullError(ColjaError, OSError):
    """The disk (or quota) filled up while an index was written; the index is as it was before the write."""


class ServerError(ColjaError, RuntimeError):
    """A colja server could not answer: unreachable, overloaded, timed out, or an internal error (``status``: HTTP)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AuthenticationError(ServerError, PermissionError):
    """A colja server refused the API key: missing or wrong (401), or read-only for a write (403)."""


class ShardError(ColjaError, RuntimeError):
    """A shard of a sharded index did not answer, even after one retry on a restarted actor.

    The message names the shard; ``shard`` is its number and ``path`` its folder.
    Pass ``allow_partial=True`` to ``ShardedIndex.load`` to get the other shards' hits instead.
    """

    def __init__(self, message: str, shard: int = -1, path: str | None = None):
        super().__init__(message)
        self.shard = shard
        self.path = path

    def __reduce__(self):  # keep the fields through pickling (Ray, process pools)
        return (type(self), (str(self), self.shard, self.path))


class BuildWorkerError(ColjaError, RuntimeError):
    """A worker of a distributed build died or failed; the batches written so far are kept,
    and running the same build again resumes from them."""


class StaleIndexWarning(UserWarning):
    """The collection has drifted far from what the index centroids were trained on."""


__all__ = [
    "ColjaError",
    "ModelLoadError",
    "DiskFullError",
    "UntrustedCodeError",
    "IndexNotFoundError",
    "IndexExistsError",
    "IndexFormatError",
    "MissingDependencyError",
    "KernelBuildError",
    "KernelFallbackWarning",
    "TruncationWarning",
    "StaleIndexWarning",
    "FilterError",
    "UnknownDocumentError",
    "CollectionError",
    "TrainingDataError",
    "CheckpointError",
    "MiningError",
    "ServerError",
    "AuthenticationError",
    "ShardError",
    "BuildWorkerError",
]
