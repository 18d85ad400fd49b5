"""Where the shards of a :class:`~colja.distributed.sharded.ShardedIndex` run: threads of this
process (:class:`LocalShards`) or Ray actors (:class:`RayShards`).

Both give ``call(i, method, *args)`` and ``call_all(method, *args)`` on the
shards' :class:`~colja.distributed.shard.ShardServer`. An error the shard's
index raises (a bad filter, an unknown id) reaches the caller as itself. A Ray
shard whose actor died is called once more (Ray restarts it, up to
``max_restarts`` times, from the shard's folder); if that fails too the call
raises :class:`~colja.errors.ShardError` naming the shard (waiting for the restart is
not a retry: a call submitted while the actor restarts is answered "unavailable"
by Ray, so the shard is polled until it is back), or, in ``call_all``
with ``allow_partial=True``, leaves the shard out and says so.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from colja.distributed.shard import ShardServer
from colja.errors import MissingDependencyError, ShardError


class LocalShards:
    """Every shard in this process; ``call_all`` runs them on a thread pool (the kernels release the GIL)."""

    def __init__(self, paths: Sequence[str], *, model: Any = None, mmap: bool = False, device: Any = None):
        self.paths = [os.fspath(p) for p in paths]
        self.servers = [ShardServer(i, p, model=model, mmap=mmap, device=device) for i, p in enumerate(self.paths)]
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.servers)), thread_name_prefix="colja-shard")

    def __len__(self) -> int:
        return len(self.servers)

    def call(self, i: int, method: str, *args: Any) -> Any:
        return getattr(self.servers[i], method)(*args)

    def call_all(self, method: str, *args: Any, shards: Sequence[int] | None = None,
                 allow_partial: bool = False) -> tuple[dict[int, Any], list[int]]:
        """``({shard: result}, shards left out)``: every shard's answer (none is left out here)."""
        which = list(range(len(self.servers))) if shards is None else list(shards)
        if len(which) == 1:
            return {which[0]: self.call(which[0], method, *args)}, []
        futures = {i: self._pool.submit(getattr(self.servers[i], method), *args) for i in which}
        return {i: f.result() for i, f in futures.items()}, []

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for s in self.servers:
            s.close()


def _ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingDependencyError('Ray is not installed; pip install "colja[ray]"') from None
    return ray


def connect(address: str | None) -> Any:
    """``ray`` connected to ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``; None:
    the running connection, else a new local Ray)."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False if address is None else None)
    return ray


class RayShards:
    """Each shard in a Ray actor (any node; restarted by Ray when it dies, ``max_restarts`` times).

    The shard folders must be readable at the same path on every node (one
    machine, or a shared file system).
    """

    def __init__(self, paths: Sequence[str], *, address: str | None = None, model: Any = None,
                 mmap: bool = False, max_restarts: int = 1, num_cpus: float = 0, timeout_s: float | None = None,
                 restart_timeout_s: float = 120.0):
        ray = connect(address)
        self.ray = ray
        self.paths = [os.fspath(p) for p in paths]
        self.timeout_s = timeout_s
        self.restart_timeout_s = restart_timeout_s
        actor = ray.remote(ShardServer)
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None  # objects stay on the driver
        self.actors = [actor.options(max_restarts=max_restarts, max_task_retries=0, num_cpus=num_cpus,
                                     scheduling_strategy="SPREAD").remote(i, p, name, mmap)
                       for i, p in enumerate(self.paths)]
        self.call_all("pid")  # every actor started (its index loaded and checked) before the first query

    def __len__(self) -> int:
        return len(self.actors)

    def _submit(self, i: int, method: str, args: tuple) -> Any:
        return getattr(self.actors[i], method).remote(*args)

    def _get(self, i: int, ref: Any, method: str, args: tuple) -> Any:
        ray = self.ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        for attempt in (0, 1):
            try:
                return ray.get(ref, timeout=self.timeout_s)
            except RayTaskError as exc:  # the shard's own error: raise it as itself
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            except (RayActorError, GetTimeoutError) as exc:
                if attempt == 1 or not self._await_restart(i):
                    first = str(exc).splitlines()[0] if str(exc) else ""
                    how = "after one retry on a restarted actor" if attempt else "and its actor was not restarted"
                    raise ShardError(f"shard {i} ({self.paths[i]}) did not answer {method}() {how}: "
                                     f"{type(exc).__name__}: {first}", shard=i, path=self.paths[i]) from None
                ref = self._submit(i, method, args)  # the one retry, on the restarted actor
        raise AssertionError("not reached")  # pragma: no cover

    def _await_restart(self, i: int) -> bool:
        """Wait (up to ``restart_timeout_s``) until Ray has restarted shard ``i``'s actor; False if it will not."""
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        deadline = time.monotonic() + self.restart_timeout_s
        while time.monotonic() < deadline:
            try:
                self.ray.get(self.actors[i].pid.remote(), timeout=max(0.1, deadline - time.monotonic()))
                return True
            except (ActorUnavailableError, GetTimeoutError):  # restarting: ask again
                time.sleep(0.1)
            except RayActorError:  # dead for good (no restarts left)
                return False
        return False

    def call(self, i: int, method: str, *args: Any) -> Any:
        return self._get(i, self._submit(i, method, args), method, args)

    def call_all(self, method: str, *args: Any, shards: Sequence[int] | None = None,
                 allow_partial: bool = False) -> tuple[dict[int, Any], list[int]]:
        which = list(range(len(self.actors))) if shards is None else list(shards)
        args = tuple(self.ray.put(a) if _large(a) else a for a in args)  # one copy for every shard
        refs = {i: self._submit(i, method, args) for i in which}
        out: dict[int, Any] = {}
        missing: list[int] = []
        for i, ref in refs.items():
            try:
                out[i] = self._get(i, ref, method, args)
            except ShardError:
                if not allow_partial:
                    raise
                missing.append(i)
        return out, missing

    def pids(self) -> list[int]:
        """The process id of each shard's actor (a test kills one to see it restarted)."""
        return [self.call(i, "pid") for i in range(len(self.actors))]

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []


def _large(value: Any) -> bool:
    import numpy as np

    return isinstance(value, np.ndarray) and value.nbytes > 100_000


__all__ = ["LocalShards", "RayShards", "connect"]
