"""Validation of an index generation read from disk: an index folder from someone else is untrusted.

A checksum proves a file is what the manifest says, not that its values make
sense: whoever forged the folder recomputed the checksums. So every load
checks structure *and values* before the first search, and a failure is an
:class:`~colja.errors.IndexFormatError` naming the file and the invariant.

Two depths:

* **load** (:func:`open_checked`, run by every ``Index.load`` and refresh, and
  by a writer on a generation another process wrote; a generation a writer has
  just committed itself skips the value checks): the manifest is read with limits (size, UTF-8, finite numbers,
  nesting depth) and checked against its schema before anything is allocated;
  files are regular files of the recorded size (and sha256); ``.npy`` headers
  match the manifest and the file sizes; every array's dtype, shape and value
  ranges hold (finite centroids and bucket weights, codes < centroids,
  non-negative lengths that add up, IVF pids < passages and sorted within each
  list, IVF lists no longer than their centroid's vectors); the document store
  is tables only (no views or triggers) of the expected columns, with a unique
  live-doc-id index, pids exactly ``0..n-1``, text columns that are text and
  metadata that is a JSON object; stored first stages have a valid manifest.
  Array checks are vectorised and run in chunks over memory maps: time is
  linear in the arrays, extra memory bounded.
* **deep** (:func:`verify`, ``Index.verify`` and ``colja verify``): all of
  that, reporting every problem instead of the first, plus what costs more than
  a load should: the IVF recomputed from codes and doc lengths, the stored
  norms recomputed, SQLite's ``integrity_check``, duplicate live doc ids
  scanned without the index, and each stored first stage opened (its model is
  never loaded).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from colja.errors import IndexFormatError
from colja.index.store import (ARRAYS, DOCSTORE, FORMAT, FORMAT_VERSION, MANIFEST, REQUIRED_FILES,
                               generation_switched, load_arrays, locate_generation, pin_generation, sha256_file,
                               unpin_generation)

#: limits checked before anything is allocated
MAX_MANIFEST_BYTES = 64 << 20
MAX_STAGE_MANIFEST_BYTES = 4 << 20
MAX_JSON_DEPTH = 32
MAX_FILES = 100_000
MAX_FIRST_STAGES = 64
MAX_COUNT = 1 << 40  # passages or vectors
MAX_CENTROIDS = 1 << 22
MAX_DIM = 1 << 14
MAX_FILE_BYTES = 1 << 50
NBITS = (1, 2, 4)
CHUNK = 1 << 22  # array elements checked at a time

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STAGE_FILES = {"bm25": ("colja_bm25.json", "colja-bm25"), "dense": ("colja_dense.json", "colja-dense"),
                "static": ("colja_static.json", "colja-static")}
_DOCS_COLUMNS = ("pid", "doc_id", "text", "metadata", "deleted")
_LIVE_UNIQUE = "CREATE UNIQUE INDEX docs_live_doc_id ON docs(doc_id) WHERE deleted = 0"


@dataclass(frozen=True)
class Problem:
    """One broken invariant: the file, the invariant, what was found."""

    file: str
    invariant: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.invariant}" + (f" ({self.detail})" if self.detail else "")


class Report:
    """Where checks send problems: raise at the first (``collect=False``, loading) or collect them all."""

    def __init__(self, collect: bool = False):
        self.collect = collect
        self.problems: list[Problem] = []

    def fail(self, file: Path | str, invariant: str, detail: str = "") -> None:
        problem = Problem(str(file), invariant, detail)
        if not self.collect:
            error = IndexFormatError(f"{problem} — the index folder is damaged or was crafted; do not use it "
                                     "(`colja verify PATH` lists every problem)")
            error.file, error.invariant = problem.file, invariant  # type: ignore[attr-defined]
            raise error
        self.problems.append(problem)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- JSON with limits


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def read_json_limited(file: Path, report: Report, max_bytes: int, what: str) -> Any:
    """Parse ``file`` as UTF-8 JSON of at most ``max_bytes`` bytes, finite numbers, bounded nesting; None on failure."""
    try:
        info = file.lstat()
    except FileNotFoundError:
        report.fail(file, f"{what} is missing", "the index folder is incomplete or not a colja index")
        return None
    if not stat.S_ISREG(info.st_mode):
        report.fail(file, f"{what} is a regular file", "found a link or a special file")
        return None
    if info.st_size > max_bytes:
        report.fail(file, f"{what} is at most {max_bytes:,} bytes", f"found {info.st_size:,}")
        return None
    try:
        with open(file, "rb") as f:
            raw = f.read(max_bytes + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.fail(file, f"{what} is not valid JSON: not UTF-8 text", str(exc)[:120])
        return None
    except OSError as exc:
        report.fail(file, f"{what} is readable", str(exc))
        return None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
    except RecursionError:
        report.fail(file, f"{what} is not valid JSON: nested at most {MAX_JSON_DEPTH} levels", "nested deeper")
        return None
    except ValueError as exc:  # JSONDecodeError included
        report.fail(file, f"{what} is not valid JSON (truncated or corrupted?)", str(exc)[:200])
        return None
    if _depth(value) > MAX_JSON_DEPTH:
        report.fail(file, f"{what} is nested at most {MAX_JSON_DEPTH} levels", f"found {_depth(value)}")
        return None
    return value


# --------------------------------------------------------------------------- manifest schema


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def read_manifest(gen: Path, report: Report) -> dict[str, Any] | None:
    """``gen/manifest.json`` parsed with limits and checked against the schema; None when unusable."""
    file = gen / MANIFEST
    manifest = read_json_limited(file, report, MAX_MANIFEST_BYTES, "manifest.json")
    if manifest is None:
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        report.fail(file, "not a colja index manifest", f"format {str(found)[:40]!r}, expected {FORMAT!r}")
        return None
    version = manifest.get("format_version")
    if not _is_int(version, 1, 1 << 31):
        report.fail(file, "format_version is a positive integer", f"invalid format_version {str(version)[:40]}")
        return None
    if version > FORMAT_VERSION:
        report.fail(file, f"index format version {version} was written by a newer colja",
                    f"this colja reads format version {FORMAT_VERSION} — upgrade colja to open it")
        return None
    ok = True
    for key in ("codec", "counts", "files"):
        if not isinstance(manifest.get(key), dict):
            report.fail(file, f"the {key!r} section is a JSON object", "missing or malformed")
            ok = False
    if not ok:
        return None
    before = len(report.problems)
    _check_codec(file, manifest["codec"], report)
    _check_counts(file, manifest["counts"], report)
    _check_files_section(file, manifest["files"], report)
    _check_optional(file, manifest, report)
    return manifest if len(report.problems) == before else None


def _check_codec(file: Path, codec: dict[str, Any], report: Report) -> None:
    nbits, dim, ncent = codec.get("nbits"), codec.get("dim"), codec.get("num_centroids")
    if type(nbits) is not int or nbits not in NBITS:
        report.fail(file, f"codec.nbits is one of {NBITS}", f"found {str(nbits)[:40]}")
    if not _is_int(dim, 8, MAX_DIM):
        report.fail(file, f"codec.dim is an integer in [8, {MAX_DIM}]", f"found {str(dim)[:40]}")
    elif type(nbits) is int and nbits in NBITS and dim % (8 * nbits):
        report.fail(file, "codec.dim is a multiple of 8 * nbits", f"dim {dim}, nbits {nbits}")
    if not _is_int(ncent, 1, MAX_CENTROIDS):
        report.fail(file, f"codec.num_centroids is an integer in [1, {MAX_CENTROIDS}]", f"found {str(ncent)[:40]}")
    if "avg_residual" in codec and not _is_number(codec["avg_residual"]):
        report.fail(file, "codec.avg_residual is a finite number", f"found {str(codec['avg_residual'])[:40]}")


def _check_counts(file: Path, counts: dict[str, Any], report: Report) -> None:
    for key in ("passages", "embeddings"):
        if not _is_int(counts.get(key), 0, MAX_COUNT):
            report.fail(file, f"counts.{key} is an integer in [0, 2**40]", f"found {str(counts.get(key))[:40]}")
    live = counts.get("live_passages")
    if live is not None and not (_is_int(live, 0, MAX_COUNT) and _is_int(counts.get("passages"), live, MAX_COUNT)):
        report.fail(file, "counts.live_passages is an integer in [0, passages]", f"found {str(live)[:40]}")


def _check_files_section(file: Path, files: dict[str, Any], report: Report) -> None:
    if len(files) > MAX_FILES:
        report.fail(file, f"'files' lists at most {MAX_FILES:,} files", f"found {len(files):,}")
        return
    for name in REQUIRED_FILES:
        if name not in files:
            report.fail(file, f"no entry for required file {name!r}", "every generation lists it")
    for name, entry in files.items():
        parts = name.split("/")
        if (len(name) > 1024 or name.startswith("/") or "\\" in name or "\x00" in name
                or any(p in ("", ".", "..") for p in parts)):
            report.fail(file, "bad file entry: a relative path inside the generation", repr(name[:80]))
            continue
        if not isinstance(entry, dict) or not _is_int(entry.get("bytes"), 0, MAX_FILE_BYTES) \
                or not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
            report.fail(file, f"bad file entry {name!r}: bytes (an integer) and sha256 (64 hex digits)",
                        str(entry)[:80])


def _check_optional(file: Path, manifest: dict[str, Any], report: Report) -> None:
    model = manifest.get("model")
    if model is not None and (not isinstance(model, dict) or not isinstance(model.get("name_or_path"), (str, type(None)))):
        report.fail(file, "model is null or an object with a name_or_path string", str(model)[:80])
    for key in ("trained_passages", "next_default_id", "generation"):
        if key in manifest and manifest[key] is not None and not _is_int(manifest[key], 0, 1 << 62):
            report.fail(file, f"{key} is a non-negative integer", f"found {str(manifest[key])[:40]}")
    for key in ("settings", "source"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            report.fail(file, f"{key} is an object", f"found {type(manifest[key]).__name__}")
    stages = manifest.get("first_stages")
    if stages is None:
        return
    if not isinstance(stages, dict) or len(stages) > MAX_FIRST_STAGES:
        report.fail(file, f"first_stages is an object of at most {MAX_FIRST_STAGES} entries",
                    f"found {type(stages).__name__}")
        return
    passages = manifest["counts"].get("passages")
    for name, entry in stages.items():
        where = f"first_stages[{name[:40]!r}]"
        if not isinstance(entry, dict):
            report.fail(file, f"{where} is an object", f"found {type(entry).__name__}")
            continue
        if not re.fullmatch(r"[\w\-][\w\-.]{0,99}", name, flags=re.ASCII) or name in ("plaid", "hybrid"):
            report.fail(file, f"{where}: the name is letters, digits, '-', '_' or '.'", repr(name[:40]))
            continue
        if entry.get("kind") not in _STAGE_FILES:
            report.fail(file, f"{where}.kind is one of {sorted(_STAGE_FILES)}", str(entry.get("kind"))[:40])
        if entry.get("path") != f"firststage/{name}":
            report.fail(file, f"{where}.path is 'firststage/{name}'", str(entry.get("path"))[:80])
        if not _is_int(entry.get("passages"), 0, MAX_COUNT) or entry.get("passages") != passages:
            report.fail(file, f"{where}.passages equals counts.passages", f"{str(entry.get('passages'))[:40]} != {passages}")
        settings = entry.get("settings", {})
        if not isinstance(settings, dict) or not all(
                isinstance(k, str) and (v is None or type(v) in (str, int, float, bool)) for k, v in settings.items()):
            report.fail(file, f"{where}.settings is an object of plain values", str(settings)[:80])


# --------------------------------------------------------------------------- files and .npy headers


def check_files(gen: Path, manifest: dict[str, Any], report: Report, *, check_hashes: bool) -> set[str]:
    """Each listed file is a regular file inside ``gen`` of the recorded size (and sha256); returns the bad ones."""
    bad: set[str] = set()
    for name, entry in manifest["files"].items():
        file = gen / name
        try:
            info = file.lstat()
        except (FileNotFoundError, NotADirectoryError):
            report.fail(file, "is missing (listed in the manifest)")
            bad.add(name)
            continue
        if not stat.S_ISREG(info.st_mode):
            report.fail(file, "is a regular file", "found a symbolic link, folder or special file")
            bad.add(name)
            continue
        if info.st_size != entry["bytes"]:
            report.fail(file, f"{info.st_size} bytes on disk, the manifest says {entry['bytes']}",
                        "truncated or replaced?")
            bad.add(name)
            continue
        if check_hashes and sha256_file(file) != entry["sha256"]:
            report.fail(file, "sha256 checksum mismatch", "the file is corrupted")
            bad.add(name)
    return bad


def _expected_shapes(manifest: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    codec, counts = manifest["codec"], manifest["counts"]
    dim, nbits, ncent = codec["dim"], codec["nbits"], codec["num_centroids"]
    n_emb, n_pass = counts["embeddings"], counts["passages"]
    return {"centroids.npy": (ncent, dim), "bucket_cutoffs.npy": (2**nbits - 1,), "bucket_weights.npy": (2**nbits,),
            "codes.npy": (n_emb,), "residuals.npy": (n_emb, dim * nbits // 8), "norms.npy": (n_emb,),
            "doclens.npy": (n_pass,), "ivf.npy": None, "ivf_lengths.npy": (ncent,)}


def check_npy_headers(gen: Path, manifest: dict[str, Any], report: Report, skip: set[str] = frozenset()) -> bool:
    """Every array's ``.npy`` header: C order, the expected dtype and shape, data filling the file exactly."""
    ok = True
    shapes = _expected_shapes(manifest)
    for name, (dtype, ndim) in ARRAYS.items():
        if name in skip:
            ok = False
            continue
        file = gen / name
        try:
            with open(file, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, found = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, found = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                offset = f.tell()
            size = file.stat().st_size
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            report.fail(file, "not a readable .npy array", str(exc)[:160])
            ok = False
            continue
        if found != np.dtype(dtype) or len(shape) != ndim or fortran:
            report.fail(file, f"expected {dtype} with {ndim} dimension(s) in C order", f"found {found} {shape}")
            ok = False
            continue
        want = shapes[name]
        if want is not None and tuple(shape) != want:
            report.fail(file, f"expected shape {want} from the manifest", f"found {tuple(shape)}")
            ok = False
            continue
        if any(int(s) > MAX_COUNT for s in shape) or offset + math.prod(int(s) for s in shape) * found.itemsize != size:
            report.fail(file, "header shape matches the file size", f"{tuple(shape)} in a {size:,}-byte file")
            ok = False
    return ok


# --------------------------------------------------------------------------- array values


def _chunks(array: np.ndarray, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, array.shape[0], size):
        yield start, np.asarray(array[start : start + size])


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_arrays(gen: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], report: Report) -> None:
    """Value invariants of every array, vectorised in chunks (time linear in the arrays, memory bounded)."""
    ncent = manifest["codec"]["num_centroids"]
    n_pass, n_emb = manifest["counts"]["passages"], manifest["counts"]["embeddings"]

    def finite(name: str, *, nonnegative: bool = False) -> None:
        for start, part in _chunks(arrays[name]):
            values = part.astype(np.float32, copy=False)
            bad = ~np.isfinite(values) if not nonnegative else ~(np.isfinite(values) & (values >= 0))
            if bad.any():
                where = np.unravel_index(_first(bad.reshape(-1)), values.shape)
                index = (start + int(where[0]),) + tuple(int(i) for i in where[1:])
                rule = "finite, non-negative values" if nonnegative else "finite values"
                report.fail(gen / f"{name}.npy", rule, f"{name}{list(index)} = {values[where]}")
                return

    finite("centroids")
    finite("bucket_cutoffs")
    finite("bucket_weights")
    finite("norms", nonnegative=True)
    cutoffs = np.asarray(arrays["bucket_cutoffs"], dtype=np.float32)
    if cutoffs.size > 1 and np.any(np.diff(cutoffs) < 0):
        report.fail(gen / "bucket_cutoffs.npy", "cutoffs are non-decreasing", str(cutoffs[:8].tolist()))

    counts = np.zeros(ncent, dtype=np.int64)
    codes_ok = True
    for start, part in _chunks(arrays["codes"]):
        bad = (part < 0) | (part >= ncent)
        if bad.any():
            i = _first(bad)
            report.fail(gen / "codes.npy", f"codes are in [0, num_centroids={ncent})",
                        f"codes[{start + i}] = {int(part[i])}")
            codes_ok = False
            break
        counts += np.bincount(part, minlength=ncent)

    doclens = np.asarray(arrays["doclens"])
    doclens_ok = False
    if doclens.size and (doclens.min() < 0 or doclens.max() > n_emb):
        i = _first((doclens < 0) | (doclens > n_emb))
        report.fail(gen / "doclens.npy", f"passage lengths are in [0, embeddings={n_emb}]",
                    f"doclens[{i}] = {int(doclens[i])}")
    elif int(doclens.sum()) != n_emb:
        report.fail(gen / "doclens.npy", f"passage lengths add up to the {n_emb} vectors", f"they add up to {int(doclens.sum())}")
    else:
        doclens_ok = True

    lengths = np.asarray(arrays["ivf_lengths"])
    ivf = arrays["ivf"]
    if lengths.size and (lengths.min() < 0 or lengths.max() > n_pass):
        i = _first((lengths < 0) | (lengths > n_pass))
        report.fail(gen / "ivf_lengths.npy", f"list lengths are in [0, passages={n_pass}]",
                    f"ivf_lengths[{i}] = {int(lengths[i])}")
        return
    if int(lengths.sum()) != ivf.shape[0]:
        report.fail(gen / "ivf_lengths.npy", f"list lengths add up to the {ivf.shape[0]} entries of ivf.npy",
                    f"they add up to {int(lengths.sum())}")
        return
    if codes_ok:
        bad = (lengths > counts) | ((lengths > 0) != (counts > 0))
        if bad.any():
            c = _first(bad)
            report.fail(gen / "ivf_lengths.npy", "each centroid's list holds at most its vectors' passages, "
                        "and is empty exactly when no vector has that centroid",
                        f"centroid {c}: list of {int(lengths[c])}, {int(counts[c])} vectors")
    starts = np.cumsum(lengths)[:-1]  # positions where a new list begins
    previous = None
    for start, part in _chunks(ivf):
        bad = (part < 0) | (part >= n_pass)
        if bad.any():
            i = _first(bad)
            report.fail(gen / "ivf.npy", f"passage ids are in [0, passages={n_pass})", f"ivf[{start + i}] = {int(part[i])}")
            return
        seq = part.astype(np.int64) if previous is None else np.concatenate(([previous], part.astype(np.int64)))
        first_pos = start if previous is None else start - 1
        drops = np.flatnonzero(np.diff(seq) <= 0) + first_pos + 1  # position of the element not above its left
        if drops.size:
            at = np.searchsorted(starts, drops)
            allowed = (at < starts.size) & (starts[np.minimum(at, starts.size - 1)] == drops)
            if not allowed.all():
                j = int(drops[~allowed][0])
                report.fail(gen / "ivf.npy", "each centroid's passage ids are strictly increasing (sorted, unique)",
                            f"ivf[{j - 1}] = {int(ivf[j - 1])}, ivf[{j}] = {int(ivf[j])}")
                return
        previous = int(part[-1]) if part.size else previous
    if codes_ok and doclens_ok and _ivf_fingerprint_from_codes(arrays["codes"], doclens) != _ivf_fingerprint_stored(ivf, lengths):
        report.fail(gen / "ivf.npy", "the IVF lists exactly the (centroid, passage) pairs of codes.npy and doclens.npy",
                    "a fingerprint of the stored lists differs from the one of the codes; "
                    "`colja verify` names the first differing entry")


def _mix(codes: np.ndarray, pids: np.ndarray) -> np.uint64:
    """Sum (mod 2**64) of a 64-bit hash (splitmix64) of each ``(code, pid)`` pair: equal for equal sets."""
    with np.errstate(over="ignore"):
        z = (codes.astype(np.uint64) << np.uint64(32)) | pids.astype(np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        return np.sum(z, dtype=np.uint64)


def _ivf_fingerprint_from_codes(codes: np.ndarray, doclens: np.ndarray) -> int:
    """Fingerprint of the unique ``(code, pid)`` pairs, a chunk of passages at a time (bounded memory)."""
    from colja.index.ivf import chunk_pairs

    offsets = np.zeros(len(doclens) + 1, dtype=np.int64)
    np.cumsum(doclens, out=offsets[1:])
    total, p0, n = np.uint64(0), 0, len(doclens)
    while p0 < n:
        p1 = max(p0 + 1, int(np.searchsorted(offsets, offsets[p0] + CHUNK, side="right")) - 1)
        p1 = min(p1, n)
        c, p = chunk_pairs(np.asarray(codes[offsets[p0] : offsets[p1]]), doclens[p0:p1], p0)
        with np.errstate(over="ignore"):
            total = total + _mix(c, p)
        p0 = p1
    return int(total)


def _ivf_fingerprint_stored(ivf: np.ndarray, lengths: np.ndarray) -> int:
    """Fingerprint of the stored IVF's ``(centroid, pid)`` entries, in chunks."""
    ends = np.cumsum(lengths)
    total = np.uint64(0)
    for start, part in _chunks(ivf):
        centroid = np.searchsorted(ends, np.arange(start, start + part.size), side="right")
        with np.errstate(over="ignore"):
            total = total + _mix(centroid, part)
    return int(total)


def check_arrays_deep(gen: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], report: Report) -> None:
    """What costs more than a load should: the IVF and the norms recomputed from codes and residuals."""
    import torch

    from colja import kernels
    from colja.index.ivf import build_ivf

    ivf, lengths = build_ivf(np.asarray(arrays["codes"]), np.asarray(arrays["doclens"]),
                             manifest["codec"]["num_centroids"])
    if not np.array_equal(lengths, np.asarray(arrays["ivf_lengths"])):
        c = _first(lengths != np.asarray(arrays["ivf_lengths"]))
        report.fail(gen / "ivf_lengths.npy", "the IVF is the one codes.npy and doclens.npy give",
                    f"centroid {c}: {int(arrays['ivf_lengths'][c])} passages stored, {int(lengths[c])} expected")
    elif not np.array_equal(ivf, np.asarray(arrays["ivf"])):
        j = _first(ivf != np.asarray(arrays["ivf"]))
        report.fail(gen / "ivf.npy", "the IVF is the one codes.npy and doclens.npy give",
                    f"ivf[{j}] = {int(arrays['ivf'][j])}, expected {int(ivf[j])}")
    nbits = manifest["codec"]["nbits"]
    centroids = torch.from_numpy(np.array(arrays["centroids"], dtype=np.float32))
    weights = torch.from_numpy(np.array(arrays["bucket_weights"], dtype=np.float32))
    for start in range(0, arrays["codes"].shape[0], 1 << 16):
        stop = start + (1 << 16)
        codes = torch.from_numpy(np.array(arrays["codes"][start:stop]))
        residuals = torch.from_numpy(np.array(arrays["residuals"][start:stop]))
        norms = kernels.vector_norms(codes, residuals, centroids, weights, nbits).numpy()
        stored = np.asarray(arrays["norms"][start:stop])
        bad = ~np.isclose(norms, stored, rtol=1e-3, atol=1e-3)
        if bad.any():
            i = _first(bad)
            report.fail(gen / "norms.npy", "the norms are those of the decompressed vectors",
                        f"norms[{start + i}] = {float(stored[i])}, expected {float(norms[i])}")
            return


# --------------------------------------------------------------------------- document store


def check_docstore(file: Path, n_passages: int, report: Report, *, deep: bool = False) -> None:
    """``docs.sqlite``: tables only, the expected columns, unique live doc ids, pids ``0..n-1``, valid values."""
    from colja.index.readonly_sqlite import connect_readonly

    try:
        conn = connect_readonly(file)
    except (sqlite3.Error, OSError) as exc:
        report.fail(file, "is an SQLite database", str(exc))
        return
    try:
        _check_docstore(conn, file, n_passages, report, deep)
    except sqlite3.Error as exc:
        report.fail(file, "is a readable SQLite database", f"{type(exc).__name__}: {exc}")
    except IndexFormatError as exc:  # the work bound stopped a query
        if not report.collect:
            raise
        report.fail(file, "queries finish within their work bound", str(exc))
    finally:
        conn.close()


def _check_docstore(conn: sqlite3.Connection, file: Path, n: int, report: Report, deep: bool) -> None:
    schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    kinds = {name: kind for kind, name, _, _ in schema}
    extra = [f"{kind} {name}" for kind, name, _, _ in schema if kind not in ("table", "index")]
    if extra:
        report.fail(file, "holds tables and indexes only (no views or triggers)", ", ".join(extra[:5]))
        return
    for table in ("docs", "info"):
        if kinds.get(table) != "table":
            report.fail(file, f"{table!r} is a table", f"found {kinds.get(table) or 'nothing'}")
            return
    docs_sql = next(sql for kind, name, _, sql in schema if name == "docs") or ""
    if "WITHOUT ROWID" in docs_sql.upper():
        report.fail(file, "'docs' is a rowid table", "found WITHOUT ROWID")
        return
    columns = {row[1]: row for row in conn.execute("PRAGMA table_info(docs)")}
    missing = [c for c in _DOCS_COLUMNS if c not in columns]
    if missing:
        report.fail(file, f"'docs' has the columns {list(_DOCS_COLUMNS)}", f"missing {missing}")
        return
    pid = columns["pid"]
    if str(pid[2]).upper() != "INTEGER" or pid[5] != 1 or sum(1 for r in columns.values() if r[5]) != 1:
        report.fail(file, "'docs.pid' is the INTEGER PRIMARY KEY", f"found type {pid[2]!r}, pk {pid[5]}")
        return
    if not _has_unique_doc_id(conn, schema):
        report.fail(file, "live doc ids are unique (a unique index on docs(doc_id) WHERE deleted = 0)",
                    "no such index: duplicate live doc ids could be stored")
    count, low, high = conn.execute("SELECT COUNT(*), MIN(pid), MAX(pid) FROM docs").fetchone()
    if count != n or (n and (low, high) != (0, n - 1)):
        report.fail(file, f"passage ids are exactly 0..{n - 1} (one row per passage of the manifest)",
                    f"{count} rows, pids {low}..{high}")
    has_parents = all(c in columns for c in ("parent_id", "span_start", "span_end"))
    rules = _value_rules(has_parents)
    combined = " OR ".join(f"({sql})" for _, sql in rules)
    if conn.execute(f"SELECT EXISTS (SELECT 1 FROM docs WHERE {combined})").fetchone()[0]:
        for invariant, sql in rules:
            row = conn.execute(f"SELECT pid FROM docs WHERE {sql} LIMIT 1").fetchone()
            if row is not None:
                report.fail(file, invariant, f"pid {row[0]}")
    if deep:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
        if result != ["ok"]:
            report.fail(file, "passes SQLite's integrity_check", "; ".join(map(str, result))[:300])
        dup = conn.execute("SELECT doc_id, COUNT(*) FROM docs NOT INDEXED WHERE deleted = 0 "
                           "GROUP BY doc_id HAVING COUNT(*) > 1 LIMIT 1").fetchone()
        if dup is not None:
            report.fail(file, "live doc ids are unique", f"{dup[0]!r} appears on {dup[1]} live rows")
        version = conn.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone()
        if version is None or version[0] not in ("1", "2"):
            report.fail(file, "info.schema_version is 1 or 2", f"found {version}")


def _value_rules(has_parents: bool) -> list[tuple[str, str]]:
    rules = [
        ("doc ids are text", "typeof(doc_id) != 'text'"),
        ("passage texts are text", "typeof(text) != 'text'"),
        ("'deleted' is 0 or 1", "typeof(deleted) != 'integer' OR deleted NOT IN (0, 1)"),
        ("metadata is NULL or a JSON object",
         "metadata IS NOT NULL AND (typeof(metadata) != 'text' OR "
         "CASE WHEN json_valid(metadata) THEN json_type(metadata) != 'object' ELSE 1 END)"),
    ]
    if has_parents:
        rules += [
            ("parent ids are NULL or text", "parent_id IS NOT NULL AND typeof(parent_id) != 'text'"),
            ("spans are NULL or integers 0 <= start <= end",
             "(span_start IS NULL) != (span_end IS NULL) OR (span_start IS NOT NULL AND "
             "(typeof(span_start) != 'integer' OR typeof(span_end) != 'integer' OR span_start < 0 "
             "OR span_end < span_start))"),
        ]
    return rules


def _has_unique_doc_id(conn: sqlite3.Connection, schema: list[tuple]) -> bool:
    sql_of = {name: sql for _, name, _, sql in schema}
    for _, name, unique, origin, partial in conn.execute("PRAGMA index_list(docs)"):
        cols = [r[2] for r in conn.execute(f"PRAGMA index_info({_quote(name)})")]
        if not unique or cols != ["doc_id"]:
            continue
        if not partial:
            return True
        if " ".join((sql_of.get(name) or "").split()) == _LIVE_UNIQUE:
            return True
    return False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- stored first stages


def check_first_stages(gen: Path, manifest: dict[str, Any], report: Report, *, deep: bool = False) -> None:
    """Each stored first stage has its own manifest, of its kind, for the index's passages."""
    files = manifest["files"]
    for name, entry in (manifest.get("first_stages") or {}).items():
        filename, fmt = _STAGE_FILES[entry["kind"]]
        rel = f"{entry['path']}/{filename}"
        file = gen / rel
        if rel not in files:
            report.fail(file, f"first stage {name!r} has its {filename} listed in the manifest", "not listed")
            continue
        stage = read_json_limited(file, report, MAX_STAGE_MANIFEST_BYTES, filename)
        if stage is None:
            continue
        if not isinstance(stage, dict) or stage.get("format") != fmt or not _is_int(stage.get("format_version"), 1, 1 << 31):
            report.fail(file, f"a {fmt} manifest with an integer format_version",
                        f"format {str(stage.get('format') if isinstance(stage, dict) else stage)[:40]!r}")
            continue
        num = stage.get("num_docs")
        if "num_docs" in stage and num != entry["passages"]:
            report.fail(file, "num_docs equals the passages of the index", f"{str(num)[:40]} != {entry['passages']}")
        model = stage.get("model")
        if entry["kind"] != "bm25" and (not isinstance(model, dict) or not isinstance(model.get("name_or_path"), str)):
            report.fail(file, "model is an object with a name_or_path string", str(model)[:80])
        if deep:
            _open_stage(gen, name, entry, report)


def _open_stage(gen: Path, name: str, entry: dict[str, Any], report: Report) -> None:
    from colja.errors import ColjaError
    from colja.firststage import load_first_stage

    folder = gen / entry["path"]
    try:
        stage = load_first_stage(folder, mmap=True)  # a dense/static model is not loaded here
        found = len(stage)
    except (ColjaError, ValueError, OSError, RuntimeError, KeyError, TypeError) as exc:
        report.fail(folder, f"first stage {name!r} opens", f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    if found != entry["passages"]:
        report.fail(folder, f"first stage {name!r} holds the index's passages", f"{found} != {entry['passages']}")


# --------------------------------------------------------------------------- entry points


def open_checked(path: str | Path, *, mmap: bool, check_hashes: bool, pin: bool = False, check_values: bool = True
                 ) -> tuple[Path, dict[str, Any], dict[str, np.ndarray], int | None]:
    """Locate, validate and load the live generation: ``(folder, manifest, arrays, pin)``; raises ``IndexFormatError``.

    ``check_values=False`` skips the checks of array values, document store and first
    stages (only for a generation this process has just written itself).

    ``pin=True`` holds the generation for the caller (:func:`colja.index.store.pin_generation`;
    the fourth item, else None). A generation a writer removed between reading ``CURRENT``
    and opening it is retried on the new ``CURRENT``.
    """
    path = Path(path)
    for attempt in range(20):
        gen = locate_generation(path)
        fd = pin_generation(gen) if pin else None
        try:
            report = Report()
            manifest = read_manifest(gen, report)
            assert manifest is not None  # a raising report returns only a valid manifest
            check_files(gen, manifest, report, check_hashes=check_hashes)
            check_npy_headers(gen, manifest, report)
            arrays = load_arrays(gen, manifest, mmap=mmap)
            if check_values:
                check_arrays(gen, manifest, arrays, report)
                check_docstore(gen / DOCSTORE, manifest["counts"]["passages"], report)
                check_first_stages(gen, manifest, report)
        except (IndexFormatError, FileNotFoundError) as exc:
            unpin_generation(fd)
            if gen == path or attempt == 19 or not generation_switched(path, gen):
                if isinstance(exc, IndexFormatError) and "colja verify" not in str(exc):
                    raise IndexFormatError(f"{exc} — the index folder is damaged or was crafted; do not use it "
                                           "(`colja verify PATH` lists every problem)") from exc
                raise
            time.sleep(0.01 * (attempt + 1))
            continue
        except BaseException:
            unpin_generation(fd)
            raise
        return gen, manifest, arrays, fd
    raise AssertionError("unreachable")  # pragma: no cover


def verify(path: str | Path, *, deep: bool = True) -> list[Problem]:
    """Every problem of the index at ``path`` (empty: it is sound). Never raises ``IndexFormatError``.

    ``deep=False`` runs the checks of a load (hashes included), collecting all
    problems; ``deep=True`` adds the expensive ones (see the module docstring).
    """
    report = Report(collect=True)
    try:
        gen = locate_generation(path)
    except (IndexFormatError, FileNotFoundError) as exc:
        return [Problem(str(path), "is a colja index folder", str(exc))]
    manifest = read_manifest(gen, report)
    if manifest is None:
        return report.problems
    bad = check_files(gen, manifest, report, check_hashes=True)
    _run(report, gen / MANIFEST, lambda: check_first_stages(gen, manifest, report, deep=deep))
    if DOCSTORE not in bad:
        _run(report, gen / DOCSTORE, lambda: check_docstore(gen / DOCSTORE, manifest["counts"]["passages"], report,
                                                            deep=deep))
    if not check_npy_headers(gen, manifest, report, skip=bad):
        return report.problems
    try:
        arrays = load_arrays(gen, manifest, mmap=True)
    except IndexFormatError as exc:
        report.fail(gen, "arrays load", str(exc))
        return report.problems
    before = len(report.problems)
    _run(report, gen, lambda: check_arrays(gen, manifest, arrays, report))
    if deep and len(report.problems) == before:
        _run(report, gen, lambda: check_arrays_deep(gen, manifest, arrays, report))
    return report.problems


def _run(report: Report, where: Path, check: Callable[[], None]) -> None:
    """Run one group of checks; an unexpected error is itself a problem (verify never stops early)."""
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        report.fail(where, "checks run to the end", f"{type(exc).__name__}: {str(exc)[:200]}")


__all__ = ["Problem", "Report", "check_arrays", "check_docstore", "check_first_stages", "open_checked",
           "read_manifest", "verify"]
