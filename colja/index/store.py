"""The index folder on disk: generations, manifest, checksums, atomic switch, validation.

Layout::

    <path>/CURRENT            "gen-000002\\n": the live generation
    <path>/gen-000002/        manifest.json, *.npy, docs.sqlite
    <path>/.tmp-gen-000003-*  a generation being written (removed on failure)

Writing (:class:`GenerationWriter`): files go into a temporary sibling folder
and are fsynced; the manifest (sizes and sha256 of every file) is written
last; the folder is renamed to ``gen-NNNNNN``; ``CURRENT`` is replaced through
``os.replace`` of a fsynced temporary file. Killing the process at any point
leaves the previous generation current, or no ``CURRENT`` at all for a first build.

Readers in other processes and threads never lose a generation under them:

* every open snapshot holds a shared ``flock`` on its generation's ``.readers``
  file (:func:`pin_generation`), released when the snapshot closes or the
  process dies;
* a generation that stops being current gets a ``.retired`` mark with the time;
  a writer removes it (:func:`cleanup`, on each commit) only when it was retired
  more than ``$COLJA_GENERATION_GRACE_S`` seconds ago (default 2: the window
  between a reader reading ``CURRENT`` and pinning the generation it names) and
  no reader holds its lock;
* a reader that still loses the race (the generation vanished between reading
  ``CURRENT`` and pinning it) reads ``CURRENT`` again (:func:`open_generation`).

So a stale ``Index`` object keeps its whole generation — first stages it has
not loaded yet included — until it is closed or refreshed.

Reading (:func:`open_generation`) checks the format and version, then the
presence, size and (optionally) sha256 of every file, and the ``.npy`` headers
against the manifest's counts, raising :class:`~colja.errors.IndexFormatError`
that names the file and what is wrong.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None
from typing import Any, Callable

import numpy as np

from colja.errors import DiskFullError, IndexExistsError, IndexFormatError, IndexNotFoundError

logger = logging.getLogger(__name__)

FORMAT = "colja-index"
FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DOCSTORE = "docs.sqlite"
GEN_RE = re.compile(r"^gen-(\d{6,})$")
TMP_PREFIX = ".tmp-gen-"
FAULT_ENV = "COLJA_FAULT_AT"
LOCK = ".lock"
READERS = ".readers"  # in a generation: readers hold a shared flock on it
RETIRED = ".retired"  # in a generation: when it stopped being current (unix time)
GRACE_ENV = "COLJA_GENERATION_GRACE_S"
DEFAULT_GRACE_S = 2.0

#: array files of a generation: name -> (dtype, ndim)
ARRAYS: dict[str, tuple[str, int]] = {
    "centroids.npy": ("float16", 2),
    "bucket_cutoffs.npy": ("float32", 1),
    "bucket_weights.npy": ("float32", 1),
    "codes.npy": ("int32", 1),
    "residuals.npy": ("uint8", 2),
    "norms.npy": ("float32", 1),
    "doclens.npy": ("int64", 1),
    "ivf.npy": ("int32", 1),
    "ivf_lengths.npy": ("int64", 1),
}
REQUIRED_FILES = tuple(ARRAYS) + (DOCSTORE,)


# --------------------------------------------------------------------------- fault injection


def fault_point(name: str) -> None:
    """Test hook: if ``$COLJA_FAULT_AT == name``, the process kills itself (SIGKILL) here."""
    if os.environ.get(FAULT_ENV) == name:
        logger.warning("fault injection: killing the process at %r", name)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # pragma: no cover - not reached


# --------------------------------------------------------------------------- small helpers


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a ``.npy`` file (no pickle), then fsync."""
    array = np.asarray(array)
    with NpyWriter(path, array.dtype, array.shape) as out:
        out.write(array)


class NpyWriter:
    """A ``.npy`` file written block by block with plain ``write`` calls, then fsynced.

    Never through a memory map: on a full disk a mapped write kills the process
    with SIGBUS, a plain write raises ``OSError(ENOSPC)``.
    """

    def __init__(self, path: str | Path, dtype: Any, shape: tuple[int, ...]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.rows = 0
        self._file = open(self.path, "wb")
        try:
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
            np.lib.format.write_array_header_2_0(self._file, header) if len(str(header)) > 60_000 \
                else np.lib.format.write_array_header_1_0(self._file, header)
        except BaseException:
            self._file.close()
            raise

    def write(self, block: np.ndarray) -> None:
        """Append rows (their trailing shape must match)."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or (block.ndim == 0) != (len(self.shape) == 0):
            raise ValueError(f"{self.path.name}: rows of shape {block.shape[1:]}, expected {self.shape[1:]}")
        if block.size:
            self._file.write(memoryview(block.reshape(-1)).cast("B"))
        self.rows += block.shape[0] if block.ndim else 1

    def close(self) -> None:
        expected = self.shape[0] if self.shape else 1
        if self.rows != expected:
            self._file.close()
            raise RuntimeError(f"{self.path.name}: {self.rows} rows written, {expected} declared")  # a bug
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) means the disk or the quota is full."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, OSError) and exc.errno is None and " requested and " in str(exc):
            return True  # numpy's short write
        if isinstance(exc, sqlite3.Error) and ("disk is full" in str(exc) or getattr(exc, "sqlite_errorcode", None) == 13):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def disk_full_error(root: Path, exc: BaseException) -> DiskFullError:
    """The error a write that filled the disk raises (after its partial generation was removed)."""
    try:
        free = shutil.disk_usage(root).free
        free_text = f"{free / 1e6:.1f} MB free now"
    except OSError:
        free_text = "free space unknown"
    current = current_generation_name(root) if root.is_dir() else None
    kept = f"the index is unchanged ({current} is still current)" if current else "nothing was written"
    return DiskFullError(errno.ENOSPC, f"the disk holding {root} filled up while writing the index "
                         f"({type(exc).__name__}: {exc}); {kept}, the partial files were removed "
                         f"({free_text}). Free space (a write needs room for the files it rewrites) and retry")


def generation_number(name: str) -> int | None:
    match = GEN_RE.match(name)
    return int(match.group(1)) if match else None


def _tmp_number(name: str) -> int | None:
    if not name.startswith(TMP_PREFIX):
        return None
    digits = name[len(TMP_PREFIX) :].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def is_index_folder(path: Path) -> bool:
    return (Path(path) / CURRENT).is_file()


def _ours(name: str) -> bool:
    return (name in (CURRENT, LOCK) or name.startswith(CURRENT + ".") or generation_number(name) is not None
            or name.startswith(TMP_PREFIX))


def check_target(path: str | Path, *, overwrite: bool) -> Path:
    """Check that a new index may be written at ``path`` (changes nothing on disk).

    Allowed: a missing path, an empty folder, a folder left by an unfinished
    build, or (with ``overwrite=True``) an existing colja index.
    """
    path = Path(path)
    if not path.exists():
        return path
    if not path.is_dir():
        raise IndexExistsError(f"{path} exists and is not a folder; choose another path for the index")
    if is_index_folder(path):
        if not overwrite:
            raise IndexExistsError(
                f"an index already exists at {path}; pass overwrite=True to replace it, or choose another path"
            )
        return path
    foreign = sorted(p.name for p in path.iterdir() if not _ours(p.name))
    if foreign:
        raise IndexExistsError(
            f"{path} exists and is not a colja index (it holds {foreign[:5]}); "
            "choose an empty or new folder (colja never deletes files it did not write)"
        )
    return path


# --------------------------------------------------------------------------- writing


class GenerationWriter:
    """Write one new generation of the index at ``root`` and switch to it atomically.

    Use as a context manager; an exception (or a call to ``abort``) removes the
    temporary folder, and the index folder itself if this writer created it.
    Writers of one index are serialised by an exclusive lock on ``<root>/.lock``
    (a second writer waits); readers never lock.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._created_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self._lock()
        self.previous = current_generation_name(self.root)
        self.number = self._next_number()
        self.name = f"gen-{self.number:06d}"
        self.dir = self.root / f"{TMP_PREFIX}{self.number:06d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.dir.mkdir()
        except OSError as exc:
            self._unlock()
            if is_disk_full(exc):
                raise disk_full_error(self.root, exc) from exc
            raise
        self.committed = False
        self._known: dict[str, dict[str, Any]] = {}  # linked files whose checksums are known

    def _next_number(self) -> int:
        numbers = [0]
        for child in self.root.iterdir():
            n = generation_number(child.name)
            if n is None:
                n = _tmp_number(child.name)
            if n is not None:
                numbers.append(n)
        return max(numbers) + 1

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover - not POSIX
            return
        self._lock_fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> "GenerationWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()
        self._unlock()
        if exc is not None and not isinstance(exc, DiskFullError) and is_disk_full(exc):
            raise disk_full_error(self.root, exc) from exc

    # ------------------------------------------------------------ files

    def path(self, name: str) -> Path:
        return self.dir / name

    def save_array(self, name: str, array: np.ndarray) -> None:
        save_array(self.path(name), array)

    def link(self, name: str, source_dir: str | Path, entry: dict[str, Any] | None = None) -> None:
        """Hard-link an unchanged file from another generation (copy where links fail).

        ``name`` may be a relative path (``firststage/bm25/x.npy``). ``entry``: the
        file's manifest entry in that generation (``bytes`` / ``sha256``), reused at
        commit instead of hashing the file again when its size still matches.
        """
        src = Path(source_dir) / name
        dst = self.path(name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        if entry is not None:
            self._known[name] = dict(entry)

    def link_tree(self, name: str, source_dir: str | Path, files: dict[str, dict[str, Any]] | None = None) -> None:
        """``link`` every file under the folder ``name`` of another generation (``files``: its manifest entries)."""
        base = Path(source_dir)
        for file in sorted((base / name).rglob("*")):
            if file.is_file():
                rel = file.relative_to(base).as_posix()
                self.link(rel, base, (files or {}).get(rel))

    # ------------------------------------------------------------ commit

    def commit(self, manifest: dict[str, Any], *, keep_lock: bool = False) -> Path:
        """Checksum, write the manifest, rename into place, switch ``CURRENT``; returns the generation folder.

        The writer's lock is released, unless ``keep_lock`` (then at the context's exit): a caller
        that opens the new generation first keeps other writers from replacing it meanwhile.
        """
        files: dict[str, dict[str, Any]] = {}
        for child in sorted(self.dir.rglob("*")):
            rel = child.relative_to(self.dir).as_posix()
            if rel == MANIFEST or not child.is_file():
                continue
            size = child.stat().st_size
            known = self._known.get(rel)
            if known is not None and known.get("bytes") == size and known.get("sha256"):
                files[rel] = {"bytes": size, "sha256": known["sha256"]}
                continue
            fsync_file(child)
            files[rel] = {"bytes": size, "sha256": sha256_file(child)}
        for folder in sorted({p.parent for p in self.dir.rglob("*") if p.is_file()} - {self.dir}):
            fsync_dir(folder)
        missing = [f for f in REQUIRED_FILES if f not in files]
        if missing:
            raise RuntimeError(f"generation is missing {missing}")  # a bug, not a user error
        manifest = dict(manifest)
        manifest["files"] = files
        manifest["generation"] = self.number
        fault_point("before_manifest")
        tmp_manifest = self.path(MANIFEST + ".tmp")
        with open(tmp_manifest, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_manifest, self.path(MANIFEST))
        fsync_dir(self.dir)
        fault_point("before_rename")
        final = self.root / self.name
        (self.dir / READERS).touch()  # not in the manifest: readers lock it
        os.rename(self.dir, final)
        self.dir = final
        fsync_dir(self.root)
        fault_point("before_current")
        tmp_current = self.root / f"{CURRENT}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(tmp_current, "w", encoding="ascii") as f:
            f.write(self.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_current, self.root / CURRENT)
        fsync_dir(self.root)
        self.committed = True
        fault_point("after_current")
        cleanup(self.root)
        if not keep_lock:
            self._unlock()
        return final

    def abort(self) -> None:
        if self.committed:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._created_root:
            try:
                (self.root / LOCK).unlink()
                self.root.rmdir()  # only if nothing else is there
            except OSError:
                pass
        self._unlock()


def grace_seconds() -> float:
    """How long a retired generation is kept for readers that may be about to pin it."""
    raw = os.environ.get(GRACE_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_GRACE_S
    except ValueError:
        raise ValueError(f"{GRACE_ENV} must be a number of seconds, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"{GRACE_ENV} must be >= 0, got {raw!r}")
    return value


def pin_generation(gen: Path) -> int | None:
    """Hold a shared lock on ``gen`` so that no writer removes it; returns the fd to
    :func:`unpin_generation`, or None where the generation cannot be locked (read-only
    copies, older indexes, non-POSIX systems: nobody writes those)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    try:
        fd = os.open(gen / READERS, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:  # pragma: no cover - file systems without flock
        os.close(fd)
        return None
    return fd


def unpin_generation(fd: int | None, _close: Callable[[int], None] = os.close) -> None:
    # os.close is bound at definition: snapshots unpin from __del__, which may run at interpreter
    # exit after module globals are gone.
    if fd is not None:
        try:
            _close(fd)  # releases the lock
        except OSError:  # pragma: no cover
            pass


def _retired_since(gen: Path) -> float:
    """When ``gen`` stopped being current (marking it now if it has no mark yet)."""
    mark = gen / RETIRED
    try:
        return float(mark.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        now = time.time()
        try:
            mark.write_text(f"{now:.3f}\n", encoding="ascii")
        except OSError:
            pass
        return now


def _remove_if_unread(gen: Path) -> bool:
    """Remove ``gen`` unless a reader holds its lock; True when removed."""
    fd = None
    if fcntl is not None and (gen / READERS).exists():
        try:
            fd = os.open(gen / READERS, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: a reader has it
            if fd is not None:
                os.close(fd)
            return False
    try:
        # the lock file goes last, so a reader that opens it meanwhile finds no manifest and retries
        for child in sorted(gen.iterdir(), key=lambda p: p.name == READERS):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        gen.rmdir()
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
    return not gen.exists()


def cleanup(root: str | Path, *, grace: float | None = None) -> None:
    """Remove temporary files and the generations no reader can still need (errors ignored):
    retired more than ``grace`` seconds ago (default :func:`grace_seconds`) and not pinned.

    Call only from a writer: a concurrent writer's temporary folder would be removed too.
    """
    root = Path(root)
    current = current_generation_name(root)
    grace = grace_seconds() if grace is None else grace
    for child in root.iterdir():
        name = child.name
        if name == current or name == CURRENT:
            continue
        if generation_number(name) is not None:
            retired = _retired_since(child)
            if time.time() - retired >= grace:
                _remove_if_unread(child)
        elif name.startswith(TMP_PREFIX):
            shutil.rmtree(child, ignore_errors=True)
        elif name.startswith(CURRENT + ".tmp"):
            try:
                child.unlink()
            except OSError:
                pass


def new_manifest(**fields: Any) -> dict[str, Any]:
    """The common manifest head (format, versions, time) plus ``fields``."""
    import torch

    from colja._version import __version__

    head: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"colja": __version__, "torch": torch.__version__, "numpy": np.__version__},
    }
    head.update(fields)
    return head


# --------------------------------------------------------------------------- reading


def current_generation_name(root: Path) -> str | None:
    """The generation named by ``root/CURRENT``, or None when there is no such file."""
    try:
        text = (Path(root) / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{Path(root) / CURRENT}: unreadable ({exc})") from exc
    if generation_number(text) is None:
        raise IndexFormatError(f"{Path(root) / CURRENT}: expected a generation name like 'gen-000001', found {text[:40]!r}")
    return text


def locate_generation(path: str | Path) -> Path:
    """The live generation folder of the index at ``path`` (or ``path`` itself if it is one)."""
    path = Path(path)
    if not path.exists():
        raise IndexNotFoundError(f"no index at {path}: the folder does not exist")
    if not path.is_dir():
        raise IndexFormatError(f"{path} is a file, not an index folder")
    if (path / MANIFEST).is_file() and not (path / CURRENT).exists():
        return path  # a generation folder given directly
    for attempt in range(10):
        name = current_generation_name(path)
        if name is None:
            break
        gen = path / name
        if gen.is_dir():
            return gen
        time.sleep(0.02 * (attempt + 1))  # a writer may have just switched and removed it
    else:
        raise IndexFormatError(f"{path / CURRENT} names {name!r}, but that folder is missing (the index was damaged)")
    names = [p.name for p in path.iterdir()]
    if any(generation_number(n) is not None or n.startswith(TMP_PREFIX) or n == LOCK for n in names):
        raise IndexNotFoundError(
            f"no index at {path}: a build started there but did not finish (no {CURRENT} file); build it again"
        )
    if "metadata.json" in names and ("centroids.pt" in names or "ivf.pid.pt" in names):
        raise IndexFormatError(
            f"{path} is a colbert-ai / RAGatouille index, not a colja index; convert it with Index.import_stanford({str(path)!r})"
        )
    if not names:
        raise IndexNotFoundError(f"no index at {path}: the folder is empty")
    raise IndexFormatError(f"{path} is not a colja index (no {CURRENT} or {MANIFEST}; found {sorted(names)[:5]})")


def read_manifest(gen: Path) -> dict[str, Any]:
    """Parse and check the head of ``gen/manifest.json``."""
    file = gen / MANIFEST
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexFormatError(f"{file} is missing: the index folder is incomplete or not a colja index") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{file} is not valid JSON (truncated or corrupted?): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IndexFormatError(f"{file}: not a colja index manifest (format {found!r}, expected {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IndexFormatError(f"{file}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"{file}: index format version {version} was written by a newer colja; "
            f"this colja reads format version {FORMAT_VERSION} — upgrade colja to open it"
        )
    for key in ("codec", "counts", "files"):
        if not isinstance(manifest.get(key), dict):
            raise IndexFormatError(f"{file}: the {key!r} section is missing or malformed")
    return manifest


def verify_files(gen: Path, manifest: dict[str, Any], *, check_hashes: bool = True) -> None:
    """Every required file is listed, present, of the recorded size and (optionally) hash."""
    files = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in files:
            raise IndexFormatError(f"{gen / MANIFEST}: no entry for required file {name!r}")
    for name, entry in files.items():
        if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/") or not isinstance(entry, dict):
            raise IndexFormatError(f"{gen / MANIFEST}: bad file entry {name!r} (a relative path inside the generation)")
        file = gen / name
        if not file.is_file():
            raise IndexFormatError(f"{file} is missing (listed in the manifest)")
        size = file.stat().st_size
        if size != entry.get("bytes"):
            raise IndexFormatError(f"{file}: {size} bytes on disk, the manifest says {entry.get('bytes')} (truncated or replaced?)")
        if check_hashes and sha256_file(file) != entry.get("sha256"):
            raise IndexFormatError(f"{file}: sha256 checksum mismatch (the file is corrupted)")


def load_arrays(gen: Path, manifest: dict[str, Any], *, mmap: bool) -> dict[str, np.ndarray]:
    """Load every array (``mmap_mode="r"`` when ``mmap``) and check dtype and shape."""
    codec, counts = manifest["codec"], manifest["counts"]
    try:
        dim, nbits, ncent = int(codec["dim"]), int(codec["nbits"]), int(codec["num_centroids"])
        n_emb, n_pass = int(counts["embeddings"]), int(counts["passages"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"{gen / MANIFEST}: codec/counts incomplete ({exc})") from None
    expected = {
        "centroids.npy": (ncent, dim),
        "bucket_cutoffs.npy": (2**nbits - 1,),
        "bucket_weights.npy": (2**nbits,),
        "codes.npy": (n_emb,),
        "residuals.npy": (n_emb, dim * nbits // 8),
        "norms.npy": (n_emb,),
        "doclens.npy": (n_pass,),
        "ivf_lengths.npy": (ncent,),
    }
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, ndim) in ARRAYS.items():
        file = gen / name
        try:
            array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise IndexFormatError(f"{file}: not a readable .npy array ({exc})") from None
        if array.dtype != np.dtype(dtype) or array.ndim != ndim:
            raise IndexFormatError(f"{file}: expected {dtype} with {ndim} dimension(s), found {array.dtype} {array.shape}")
        if name in expected and array.shape != expected[name]:
            raise IndexFormatError(f"{file}: expected shape {expected[name]} from the manifest, found {array.shape}")
        arrays[name[:-4]] = array
    if int(arrays["doclens"].sum()) != n_emb:
        raise IndexFormatError(f"{gen / 'doclens.npy'}: passage lengths add up to {int(arrays['doclens'].sum())}, the index holds {n_emb} vectors")
    if int(arrays["ivf_lengths"].sum()) != arrays["ivf"].shape[0]:
        raise IndexFormatError(f"{gen / 'ivf_lengths.npy'}: lengths add up to {int(arrays['ivf_lengths'].sum())}, ivf.npy has {arrays['ivf'].shape[0]} entries")
    return arrays


def open_generation(path: str | Path, *, mmap: bool = False, check_hashes: bool = True,
                    pin: bool = False) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]] | tuple[Path, dict[str, Any], dict[str, np.ndarray], int | None]:
    """Locate, validate and load the live generation: ``(folder, manifest, arrays)``.

    ``pin=True`` also holds the generation for the caller (see :func:`pin_generation`)
    and returns the lock as a fourth item. A generation that a writer removed
    between reading ``CURRENT`` and opening it is retried on the new ``CURRENT``.
    """
    path = Path(path)
    for attempt in range(20):
        gen = locate_generation(path)
        fd = pin_generation(gen) if pin else None
        try:
            manifest = read_manifest(gen)
            verify_files(gen, manifest, check_hashes=check_hashes)
            arrays = load_arrays(gen, manifest, mmap=mmap)
        except (IndexFormatError, FileNotFoundError):
            unpin_generation(fd)
            if gen == path or attempt == 19 or not generation_switched(path, gen):
                raise
            time.sleep(0.01 * (attempt + 1))
            continue
        return (gen, manifest, arrays, fd) if pin else (gen, manifest, arrays)
    raise AssertionError("unreachable")  # pragma: no cover


def generation_switched(root: Path, gen: Path) -> bool:
    """True when ``root``'s ``CURRENT`` no longer names ``gen`` (or ``gen`` is gone): worth a retry."""
    try:
        return current_generation_name(root) != gen.name or not gen.is_dir()
    except IndexFormatError:
        return True


def folder_bytes(gen: Path) -> int:
    """Bytes of every file under ``gen`` (first-stage subfolders included)."""
    return sum(p.stat().st_size for p in Path(gen).rglob("*") if p.is_file())
