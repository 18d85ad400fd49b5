"""Build-on-first-use loader of the C++ (and CUDA) kernel extensions.

* The extension is compiled with ``torch.utils.cpp_extension.load`` (ninja) in a
  **subprocess** with a timeout, so a hung or crashing compiler can never hang
  or crash the caller. The built ``.so`` is then imported in-process.
* Cache: ``$COLJA_CACHE_DIR/kernels`` (default ``$XDG_CACHE_HOME/colja/kernels``,
  i.e. ``~/.cache/colja/kernels``), one folder per build key. The key hashes the
  sources' bytes, torch / Python / platform versions, the compiler flags and the
  CPU feature flags (``-march=native`` is used only when the CPU flags can be
  read and keyed, else ``-mavx2 -mfma -mf16c`` after a CPU check, else generic).
* Lock: ``<key>.lock`` created with ``O_CREAT | O_EXCL`` holding pid, host and
  time; a lock whose pid is dead (same host) or older than the build timeout is
  stale and removed. Other processes wait for the holder, then import its result.
* Failure (no compiler, no ninja, compile error, timeout, import error): ONE
  :class:`colja.errors.KernelFallbackWarning` per process and kind, then every
  call uses the PyTorch reference; no retry within the process.

Environment:
  ``COLJA_KERNELS``        ``auto`` (default), ``torch`` (never build, always use
                           the PyTorch path) or ``cpp`` (a failed build raises
                           :class:`KernelBuildError` instead of warning).
  ``COLJA_CACHE_DIR``      colja's cache root (kernels go to ``<root>/kernels``).
  ``COLJA_BUILD_TIMEOUT``  seconds a build may take (default 900).
  ``COLJA_KERNELS_CFLAGS`` extra compiler flags (part of the key), e.g.
                           ``-DCOLJA_DISABLE_AVX512`` to build the AVX2 path.
  ``COLJA_KERNELS_SRC``    use this source folder instead of the packaged one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from colja.errors import KernelBuildError, KernelFallbackWarning
from colja.kernels._toolkit import find_toolkit, install_hint

logger = logging.getLogger("colja.kernels")

CPU_MODULE = "colja_kernels_cpu"
CUDA_MODULE = "colja_kernels_cuda"
DEFAULT_TIMEOUT_S = 900.0

__all__ = [
    "KernelBuildError",
    "kernels_mode",
    "source_dir",
    "cache_root",
    "get_module",
    "require_module",
    "backend",
    "backend_info",
]


class _BuildFailure(Exception):
    """Internal: why a build/load failed, plus how to fix it."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass
class _State:
    module: ModuleType | None = None
    reason: str = ""  # why module is None
    forced: bool = False  # COLJA_KERNELS=torch
    warned: bool = False
    info: dict = field(default_factory=dict)


_states: dict[str, _State] = {}
_mutex = threading.RLock()


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
def kernels_mode() -> str:
    """``COLJA_KERNELS``: ``auto`` | ``torch`` | ``cpp``."""
    mode = os.environ.get("COLJA_KERNELS", "auto").strip().lower() or "auto"
    if mode not in ("auto", "torch", "cpp"):
        raise ValueError(
            f"COLJA_KERNELS must be 'auto', 'torch' or 'cpp', found {mode!r}; "
            "unset it to use the compiled kernels when they build"
        )
    return mode


def build_timeout() -> float:
    raw = os.environ.get("COLJA_BUILD_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"COLJA_BUILD_TIMEOUT must be a number of seconds, found {raw!r}") from None
    return max(1.0, value)


def source_dir() -> Path:
    """Where the C++/CUDA sources are: ``$COLJA_KERNELS_SRC``, else the
    installed ``colja/_csrc`` (wheel), else the repository's ``csrc/``."""
    env = os.environ.get("COLJA_KERNELS_SRC")
    if env:
        return Path(env)
    pkg = Path(__file__).resolve().parent.parent  # .../colja
    installed = pkg / "_csrc"
    if installed.is_dir():
        return installed
    return pkg.parent / "csrc"


def cache_root() -> Path:
    base = os.environ.get("COLJA_CACHE_DIR")
    if base:
        root = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "colja"
    return root / "kernels"


def _cpu_identity() -> tuple[str, str]:
    """(feature string keyed into the build, description). Empty if unknown."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return "", "unreadable /proc/cpuinfo"
        model = flags = ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("flags", "features") and not flags:
                flags = " ".join(sorted(value.split()))
            elif key in ("model name", "cpu model") and not model:
                model = value.strip()
        return (f"{model}|{flags}" if flags else ""), model
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string", "machdep.cpu.features",
                 "machdep.cpu.leaf7_features"],
                capture_output=True, text=True, timeout=5,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return "", ""
        return out.strip().replace("\n", "|"), out.splitlines()[0] if out else ""
    return "", ""


def _cpu_cflags() -> tuple[list[str], str]:
    """Optimisation flags for this CPU and the CPU string keyed with them."""
    ident, _ = _cpu_identity()
    machine = platform.machine().lower()
    x86 = machine in ("x86_64", "amd64", "i686", "i386")
    if ident and x86:
        return ["-O3", "-march=native"], ident
    if ident and machine in ("aarch64", "arm64"):
        return ["-O3", "-mcpu=native"], ident
    low = ident.lower()
    if x86 and "avx2" in low and "fma" in low:
        return ["-O3", "-mavx2", "-mfma", "-mf16c"], ident
    return ["-O3"], ident or machine


def _extra_cflags() -> list[str]:
    return shlex.split(os.environ.get("COLJA_KERNELS_CFLAGS", ""))


def _sources(kind: str, src: Path) -> list[Path]:
    if kind == "cpu":
        files = sorted(p for p in src.iterdir() if p.suffix in (".cpp", ".h") and p.is_file())
    else:
        cdir = src / "cuda"
        files = sorted(
            p for p in cdir.iterdir() if p.suffix in (".cu", ".cpp", ".h", ".cuh") and p.is_file()
        ) if cdir.is_dir() else []
    return files


def _build_spec(kind: str) -> dict:
    """Everything needed to build, plus the cache key."""
    src = source_dir()
    if not src.is_dir():
        raise _BuildFailure(
            f"kernel sources not found at {src}",
            "reinstall colja (the wheel ships colja/_csrc) or set COLJA_KERNELS_SRC",
        )
    files = _sources(kind, src)
    compiled = [p for p in files if p.suffix in (".cpp", ".cu")]
    if not compiled:
        raise _BuildFailure(f"no {kind} kernel sources in {src}", "reinstall colja")
    opt, cpu_ident = _cpu_cflags()
    omp = [] if sys.platform == "darwin" else ["-fopenmp"]
    # hidden visibility: two colja builds (or other extensions) never interpose symbols
    cflags = opt + omp + ["-DNDEBUG", "-fvisibility=hidden"] + _extra_cflags()
    ldflags = list(omp)
    cuda_cflags: list[str] = []
    arch_list = ""
    if kind == "cuda":
        cuda_cflags = ["-O3", "-lineinfo"] + shlex.split(os.environ.get("COLJA_KERNELS_CUDA_CFLAGS", ""))
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
        if not arch_list and torch.cuda.is_available():
            caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
            arch_list = ";".join(f"{a}.{b}" for a, b in caps)
    h = hashlib.sha256()
    for part in (
        kind,
        torch.__version__,
        str(torch.version.cuda),
        str(getattr(torch.version, "git_version", "")),
        sys.version,
        platform.platform(),
        json.dumps([cflags, ldflags, cuda_cflags, arch_list]),
        cpu_ident,
        os.environ.get("CXX", "c++"),
    ):
        h.update(part.encode())
        h.update(b"\0")
    for p in files:
        h.update(str(p.relative_to(src)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    digest = h.hexdigest()[:20]
    key = f"{kind}-{digest}"
    # the module name includes the key: Python caches extension modules by name,
    # so a process that loads a second build (other flags/sources) gets that build
    name = f"{CPU_MODULE if kind == 'cpu' else CUDA_MODULE}_{digest[:12]}"
    return {
        "kind": kind,
        "name": name,
        "key": key,
        "sources": [str(p) for p in compiled],
        "include_dirs": [str(src)] if kind == "cpu" else [str(src / "cuda"), str(src)],
        "cflags": cflags,
        "ldflags": ldflags,
        "cuda_cflags": cuda_cflags,
        "arch_list": arch_list,
        "with_cuda": kind == "cuda",
    }


# ---------------------------------------------------------------------------
# lock file
# ---------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _lock_is_stale(path: Path, timeout: float) -> bool:
    try:
        st = path.stat()
        raw = path.read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    age = time.time() - st.st_mtime
    if age > timeout:
        return True
    try:
        info = json.loads(raw)
    except ValueError:
        return age > 10.0  # being written, or garbage: give the writer a moment
    if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return time.time() - float(info.get("time", 0)) > timeout


def _try_lock(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}, f)
    return True


def _unlock(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------
# build + import
# ---------------------------------------------------------------------------
_BUILD_SCRIPT = r"""
import json, sys
spec = json.loads(sys.argv[1])
from torch.utils.cpp_extension import load
load(
    name=spec["name"],
    sources=spec["sources"],
    extra_cflags=spec["cflags"],
    extra_ldflags=spec["ldflags"],
    extra_cuda_cflags=spec["cuda_cflags"],
    extra_include_paths=spec["include_dirs"],
    build_directory=spec["build_dir"],
    with_cuda=spec["with_cuda"],
    verbose=True,
)
print("COLJA_BUILD_OK")
"""


def _check_toolchain(kind: str) -> None:
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        raise _BuildFailure("ninja is not installed", "pip install ninja")
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        raise _BuildFailure(
            f"no C++ compiler found (looked for {cxx!r}, g++, clang++)",
            "install one (e.g. apt-get install g++ / xcode-select --install) or set CXX",
        )
    if kind == "cuda" and find_toolkit() is None:
        raise _BuildFailure("the CUDA toolkit (nvcc) was not found", install_hint())


def _run_build(spec: dict, build_dir: Path, log_path: Path, timeout: float) -> None:
    env = dict(os.environ)
    toolkit = find_toolkit() if spec["with_cuda"] else None
    if toolkit is not None:  # cpp_extension reads CUDA_HOME when it is imported (in the subprocess)
        env["CUDA_HOME"] = str(toolkit.home)
        env["PATH"] = f"{toolkit.home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if spec["arch_list"]:
        env["TORCH_CUDA_ARCH_LIST"] = spec["arch_list"]
    payload = json.dumps({**spec, "build_dir": str(build_dir)})
    with open(log_path, "w") as log:
        log.write(f"# colja kernel build {spec['key']}\n# flags {spec['cflags']}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BUILD_SCRIPT, payload],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(build_dir),
                start_new_session=True,
            )
        except OSError as e:
            raise _BuildFailure(f"could not start the build subprocess: {e}") from e
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise _BuildFailure(
                f"the build took longer than {timeout:.0f} s and was stopped (log: {log_path})",
                "raise COLJA_BUILD_TIMEOUT, or build once while the machine is idle",
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
    if rc != 0:
        tail = _log_tail(log_path)
        raise _BuildFailure(
            f"the compiler failed (exit code {rc}); log: {log_path}\n{tail}",
            "check that a C++17 compiler matching your PyTorch build is installed",
        )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the compiler processes too, not just python
    except (ProcessLookupError, PermissionError, OSError, AttributeError):
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errs = [ln for ln in text if "error" in ln.lower()]
    pick = (errs[:lines] if errs else text[-lines:])
    return "\n".join("    " + ln[:300] for ln in pick)


def _import_so(name: str, so_path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, so_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {so_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.simd()  # sanity check: the module works
    return module


def _so_suffix() -> str:
    return ".pyd" if sys.platform == "win32" else ".so"


def _build_or_load(kind: str) -> tuple[ModuleType, dict]:
    spec = _build_spec(kind)
    root = cache_root()
    final_dir = root / spec["key"]
    so_path = final_dir / (spec["name"] + _so_suffix())
    info = {"key": spec["key"], "path": str(so_path), "cflags": spec["cflags"], "built": False}
    # fast path: already built for this key
    if so_path.exists():
        try:
            t0 = time.perf_counter()
            module = _import_so(spec["name"], so_path)
            logger.info("colja %s kernels loaded from cache %s (%.2f s)", kind, so_path,
                        time.perf_counter() - t0)
            return module, info
        except Exception as e:  # corrupt/foreign .so: rebuild once below
            logger.warning("cached colja %s kernels at %s failed to import (%s); rebuilding",
                           kind, so_path, e)
            try:
                so_path.unlink()
            except OSError:
                pass

    _check_toolchain(kind)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _BuildFailure(f"cannot create the kernel cache {root}: {e}",
                            "set COLJA_CACHE_DIR to a writable folder") from e
    timeout = build_timeout()
    lock = root / (spec["key"] + ".lock")
    deadline = time.monotonic() + timeout + 60.0
    waited = False
    while True:
        if _try_lock(lock):
            break
        if _lock_is_stale(lock, timeout):
            logger.warning("removing stale kernel build lock %s", lock)
            _unlock(lock)
            continue
        if not waited:
            logger.info("waiting for another process building colja %s kernels (lock %s)", kind, lock)
            waited = True
        if time.monotonic() > deadline:
            raise _BuildFailure(
                f"timed out after {timeout:.0f} s waiting for another process's build (lock {lock})",
                "remove the lock file if no build is running",
            )
        time.sleep(0.25)
    try:
        if so_path.exists():  # another process finished while we waited
            module = _import_so(spec["name"], so_path)
            logger.info("colja %s kernels loaded from %s (built by another process)", kind, so_path)
            return module, info
        build_dir = root / f"{spec['key']}.build-{os.getpid()}"
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        log_path = root / f"{spec['key']}.log"
        logger.info("building colja %s kernels (%s) in %s; this takes about a minute",
                    kind, " ".join(spec["cflags"]), build_dir)
        t0 = time.perf_counter()
        notice = _BuildNotice(kind, final_dir)
        try:
            with notice:
                _run_build(spec, build_dir, log_path, timeout)
            built = build_dir / (spec["name"] + _so_suffix())
            if not built.exists():
                raise _BuildFailure(f"the build produced no {built.name} (log: {log_path})")
            final_dir.mkdir(parents=True, exist_ok=True)
            tmp = final_dir / (built.name + f".tmp-{os.getpid()}")
            shutil.copy2(built, tmp)
            os.replace(tmp, so_path)
            try:
                os.replace(log_path, final_dir / "build.log")
            except OSError:
                pass
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
        seconds = time.perf_counter() - t0
        (final_dir / "build.json").write_text(json.dumps(
            {"key": spec["key"], "seconds": seconds, "cflags": spec["cflags"],
             "torch": torch.__version__, "python": sys.version, "time": time.time()}, indent=1))
        module = _import_so(spec["name"], so_path)
        logger.info("built colja %s kernels in %.1f s -> %s", kind, seconds, so_path)
        info.update(built=True, build_seconds=seconds)
        return module, info
    except _BuildFailure:
        raise
    except ImportError as e:
        raise _BuildFailure(f"the built kernels failed to import: {e}",
                            "delete the cache folder " + str(final_dir)) from e
    finally:
        _unlock(lock)


QUIET_ENV = "COLJA_QUIET"


class _BuildNotice:
    """The one-time compile, said on stderr (not only in the log) with the time elapsed.

    On a terminal the line updates every second; elsewhere (CI logs, pipes) one line
    when the build starts and one when it ends. ``COLJA_QUIET=1`` silences it.
    """

    def __init__(self, kind: str, where: Path):
        self.label = "C++ search kernels" if kind == "cpu" else "CUDA kernels"
        self.where = where
        self.quiet = os.environ.get(QUIET_ENV, "").strip() not in ("", "0")
        self.tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _say(self, text: str, *, end: str = "\n") -> None:
        try:
            sys.stderr.write(text + end)
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed stderr never fails a build
            pass

    def _start_line(self) -> str:
        return (f"colja: compiling the {self.label} for this machine (first use only, about a minute; "
                f"cached in {self.where.parent}; `colja kernels build` does it ahead of time)")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._say(f"\r{self._start_line()} … {time.perf_counter() - self._t0:.0f} s", end="")

    def __enter__(self) -> "_BuildNotice":
        self._t0 = time.perf_counter()
        if self.quiet:
            return self
        if self.tty:
            self._say(self._start_line() + " …", end="")
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            self._say(self._start_line() + " …")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.quiet:
            return
        seconds = time.perf_counter() - self._t0
        outcome = f"done in {seconds:.0f} s" if exc_type is None else f"failed after {seconds:.0f} s"
        self._say(("\n" if self.tty else "") + f"colja: {self.label}: {outcome}")


def _load(kind: str) -> _State:
    with _mutex:
        state = _states.get(kind)
        if state is not None:
            return state
        state = _State()
        mode = kernels_mode()
        if mode == "torch":
            state.forced = True
            state.reason = "COLJA_KERNELS=torch"
            _states[kind] = state
            return state
        if kind == "cuda" and not torch.cuda.is_available():
            state.reason = "no CUDA device"
            _states[kind] = state
            return state
        try:
            state.module, state.info = _build_or_load(kind)
            state.info["simd"] = state.module.simd()
        except Exception as e:  # never crash the caller on a build problem
            if isinstance(e, _BuildFailure):
                reason, fix = e.reason, e.fix
            else:
                reason, fix = f"{type(e).__name__}: {e}", ""
            state.reason = reason
            _states[kind] = state
            label = "C++" if kind == "cpu" else "CUDA"
            if mode == "cpp":
                raise KernelBuildError(
                    f"colja {label} kernels are unavailable (COLJA_KERNELS=cpp): {reason}"
                    + (f"\nFix: {fix}" if fix else "")
                ) from e
            logger.warning("colja %s kernels unavailable: %s", label, reason)
            state.warned = True
            warnings.warn(
                f"colja {label} kernels could not be built or loaded, using the slower PyTorch "
                f"path instead. Reason: {reason}"
                + (f"\nFix: {fix}." if fix else "")
                + " Set COLJA_KERNELS=torch to skip the build and silence this warning.",
                KernelFallbackWarning,
                stacklevel=5,
            )
            return state
        _states[kind] = state
        return state


def get_module(kind: str = "cpu") -> ModuleType | None:
    """The extension module for ``kind`` ("cpu" or "cuda"), building it on first
    use; ``None`` (after one warning) when it is unavailable."""
    return _load(kind).module


def require_module(kind: str = "cpu") -> ModuleType:
    """Like :func:`get_module` but raises :class:`KernelBuildError` when unavailable."""
    state = _load(kind)
    if state.module is None:
        label = "C++" if kind == "cpu" else "CUDA"
        impl = "cpp" if kind == "cpu" else "cuda"
        raise KernelBuildError(
            f"impl={impl!r} was requested but the colja {label} kernels are unavailable: "
            f"{state.reason}"
        )
    return state.module


def backend(kind: str = "cpu") -> str:
    """``"cpp"`` / ``"cuda"`` when the compiled kernels are used for ``kind``,
    else ``"torch (fallback: <reason>)"`` (builds on first call)."""
    state = _load(kind)
    if state.module is not None:
        return "cpp" if kind == "cpu" else "cuda"
    return f"torch (fallback: {state.reason})"


def backend_info(kind: str = "cpu") -> dict:
    """Details: backend, SIMD flavour, cache key, .so path, build time."""
    state = _load(kind)
    return {"backend": backend(kind), "reason": state.reason, **state.info}


def _reset_for_tests() -> None:
    """Forget loaded modules / failures (the next call loads again)."""
    with _mutex:
        _states.clear()


# ---------------------------------------------------------------------------
# CUDA compile check (no GPU needed)
# ---------------------------------------------------------------------------
def cuda_compile_check(timeout: float = 600.0) -> tuple[bool, str]:
    """Compile the CUDA sources to object files with nvcc / the host compiler
    against torch's headers, without linking or running them.

    Lets a machine without a GPU verify that ``csrc/cuda`` builds. A success is
    remembered in the kernel cache (keyed by sources, torch, nvcc), so repeated
    checks are instant. Returns ``(ok, log)``; raises :class:`FileNotFoundError`
    when nvcc is missing.
    """
    import tempfile

    from torch.utils import cpp_extension

    toolkit = find_toolkit()
    if toolkit is None:
        raise FileNotFoundError(f"nvcc not found: {install_hint()}")
    nvcc, cuda_root = str(toolkit.nvcc), toolkit.home
    src = source_dir() / "cuda"
    files = sorted(p for p in src.iterdir() if p.suffix in (".cu", ".cpp", ".h", ".cuh"))
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    h = hashlib.sha256(version.encode() + torch.__version__.encode() + sys.version.encode() + str(cuda_root).encode())
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    marker = cache_root() / f"cuda-compile-check-{h.hexdigest()[:20]}.ok"
    where = f"# toolkit: {toolkit.home} ({toolkit.source}); {version.strip().splitlines()[-1] if version.strip() else ''}"
    if marker.exists():
        return True, f"{where}\ncached success: {marker}"
    torch_inc = cpp_extension.include_paths()  # cpu include dirs of torch
    with tempfile.TemporaryDirectory(prefix="colja-nvcc-") as tmp:
        # A CPU-only torch wheel lacks this generated header (CUDA wheels ship it).
        shim = Path(tmp) / "shim" / "c10" / "cuda" / "impl"
        if not any((Path(d) / "c10/cuda/impl/cuda_cmake_macros.h").exists() for d in torch_inc):
            shim.mkdir(parents=True)
            (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        incs = [f"-I{Path(tmp) / 'shim'}"] + [f"-I{d}" for d in torch_inc] + [f"-I{src}", f"-I{cuda_root / 'include'}"]
        abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
        py_inc = f"-I{sysconfig_include()}"
        cmds = []
        for p in files:
            out = str(Path(tmp) / (p.name + ".o"))
            if p.suffix == ".cu":
                cmds.append([nvcc, "-c", str(p), "-o", out, "-std=c++20", "-O3", "-Xcompiler", "-fPIC",
                             "--expt-relaxed-constexpr", "-gencode", "arch=compute_80,code=sm_80", abi] + incs)
            elif p.suffix == ".cpp":  # host code: a full front-end pass is enough
                cxx = os.environ.get("CXX", "c++")
                cmds.append([cxx, "-fsyntax-only", str(p), "-std=c++20", "-fPIC", abi, py_inc,
                             "-DTORCH_EXTENSION_NAME=colja_cuda_compile_check"] + incs)
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for cmd in cmds]  # in parallel
        logs, ok = [], True
        for cmd, proc in zip(cmds, procs):
            try:
                out_text, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                return False, f"timed out after {timeout:.0f} s: {' '.join(cmd[:3])}"
            errors = [ln for ln in out_text.splitlines() if "error" in ln.lower()]
            logs.append(f"$ {' '.join(cmd[:3])} ... -> exit {proc.returncode}\n" + "\n".join(errors[:40]))
            ok = ok and proc.returncode == 0
        logs.insert(0, where)
        if not ok:
            return False, "\n".join(logs)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("\n".join(logs))
    except OSError:
        pass
    return True, "\n".join(logs)


def sysconfig_include() -> str:
    import sysconfig

    return sysconfig.get_paths()["include"]
