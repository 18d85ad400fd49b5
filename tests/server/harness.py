"""Start a real ``colja serve`` in a subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

from tests.conftest import REPO, SHARED

START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


def start(indexes: dict[str, str | os.PathLike], log_dir: Path, *args: str) -> Server:
    """``colja serve --index name=path ... args`` on a free port; returns once ``/readyz`` answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "colja.cli", "serve", "--port", str(port), "--no-access-log", *args]
    for name, path in indexes.items():
        cmd += ["--index", f"{name}={path}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", COLJA_DISABLE_PROGRESS="1", COLJA_SHARED=str(SHARED),
               PYTHONPATH=str(REPO))
    log = log_dir / f"server-{port}.log"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"colja serve exited with {proc.returncode}:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(server.url + "/readyz", timeout=2)
            if r.status_code == 200:
                return server
            if r.json().get("status") == "failed":
                server.stop()
                raise RuntimeError(f"colja serve could not load its indexes: {r.text}\n{server.output()}")
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"colja serve was not ready within {START_TIMEOUT:.0f} s:\n{server.output()}")


@contextlib.contextmanager
def running(indexes: dict[str, str | os.PathLike], log_dir: Path, *args: str) -> Iterator[Server]:
    server = start(indexes, log_dir, *args)
    try:
        yield server
    finally:
        server.stop()
