"""Compute kernels of colja: residual decompression, PLAID candidate scoring
and exact MaxSim, on CPU (C++ extension), CUDA (CUDA extension) or PyTorch.

Every public function takes ``impl="auto" | "torch" | "cpp" | "cuda"``:

* ``"auto"``: the CUDA kernels for CUDA tensors when they are built, else the
  C++ kernels for CPU tensors when they are built, else the PyTorch path.
  The extensions are compiled on first use (see :mod:`colja.kernels._build`);
  a failed build warns once (:class:`colja.errors.KernelFallbackWarning`) and
  falls back to PyTorch.
* ``"torch"``: the pure-PyTorch reference ``<name>_ref`` (any device).
* ``"cpp"`` / ``"cuda"``: the compiled kernels, or :class:`KernelBuildError`.

The ``<name>_ref`` function beside each public function IS its specification.

Shapes: ``dim`` vector width, ``nbits`` residual bits (1, 2, 4), ``P = dim*nbits/8``
packed bytes per vector, ``Lq`` query vectors, ``C`` centroids, ``N`` token
vectors, ``doc_offsets`` int64 ``[n_docs + 1]`` prefix sums of doclens (passage
``p`` owns token rows ``doc_offsets[p]:doc_offsets[p+1]``), ``pids`` int64 ``[m]``.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from colja.kernels import _build, _checks
from colja.kernels._build import KernelBuildError, backend, backend_info
from colja.kernels.bits import pack_residual_buckets, packed_size, unpack_residual_buckets

__all__ = [
    "KernelBuildError",
    "backend",
    "backend_info",
    "pack_residual_buckets",
    "unpack_residual_buckets",
    "packed_size",
    "decompress_residuals",
    "decompress_residuals_ref",
    "vector_norms",
    "vector_norms_ref",
    "candidate_pids",
    "candidate_pids_ref",
    "centroid_interaction",
    "centroid_interaction_ref",
    "filter_candidates",
    "filter_candidates_ref",
    "prune_candidates",
    "prune_candidates_ref",
    "maxsim_packed",
    "maxsim_packed_ref",
    "maxsim_packed_topk",
    "maxsim_packed_topk_ref",
    "maxsim_packed_bounds",
    "plaid_search_batch",
    "maxsim_dense",
    "maxsim_dense_ref",
    "maxsim_dense_queries",
    "maxsim_decompress",
    "maxsim_decompress_ref",
    "token_rows",
    "lengths_to_offsets",
    "query_rows",
    "query_length",
    "top_k",
    "MISSING_SCORE",
    "LUT_MAX_BYTES",
    "default_lut_max_bytes",
]

#: score of a query vector none of whose passage centroids survived pruning
MISSING_SCORE = -9999.0
#: largest per-query lookup table maxsim_packed ever builds (else decompress+dot)
LUT_MAX_BYTES = 8 << 20

_I32, _I64, _U8, _F32, _F16, _BOOL = (
    torch.int32, torch.int64, torch.uint8, torch.float32, torch.float16, torch.bool,
)


# ---------------------------------------------------------------------------
# the scoring vocabulary: one rule each, used by every caller
# ---------------------------------------------------------------------------
def lengths_to_offsets(doclens) -> torch.Tensor:
    """int64 ``[n+1]``: running sums of ``doclens`` starting at 0 (passage ``p`` owns
    token rows ``offsets[p]:offsets[p+1]``)."""
    lengths = torch.as_tensor(doclens, dtype=torch.int64).reshape(-1)
    out = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=lengths.device)
    if lengths.numel():
        torch.cumsum(lengths, 0, out=out[1:])
    return out


def token_rows(doc_offsets: torch.Tensor, pids: torch.Tensor):
    """Token rows of ``pids`` concatenated in the order of ``pids``, vectorised:
    ``(rows int64 [T], owner int64 [T] = position in pids of each row, doclens int64 [len(pids)])``.
    A pid outside ``[0, n_docs)`` raises ``IndexError`` (never wraps around), a falling offset ``ValueError``."""
    n_docs = doc_offsets.shape[0] - 1
    if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= n_docs):
        i = int(torch.nonzero((pids < 0) | (pids >= n_docs))[0, 0])
        raise IndexError(f"pids[{i}] = {int(pids[i])} is out of range [0, n_docs) with n_docs = {n_docs}")
    starts = doc_offsets[pids]
    lens = doc_offsets[pids + 1] - starts
    if lens.numel() and int(lens.min()) < 0:
        i = int(torch.nonzero(lens < 0)[0, 0])
        raise ValueError(f"doc_offsets is not non-decreasing at passage {int(pids[i])}")
    seg = torch.repeat_interleave(torch.arange(len(pids), device=pids.device), lens)
    first = torch.cumsum(lens, 0) - lens
    tok = starts[seg] + torch.arange(seg.numel(), device=pids.device) - first[seg]
    return tok, seg, lens


def query_rows(Q: torch.Tensor) -> torch.Tensor:
    """The rows of one query ``[Lq, dim]`` that score: all-zero rows (dynamic-length
    padding) add nothing to a MaxSim score and are dropped."""
    nonzero = Q.abs().sum(dim=-1) > 0
    return Q if bool(nonzero.all()) else Q[nonzero]


def query_length(Q: torch.Tensor) -> int:
    """How many vectors of one query ``[Lq, dim]`` score (its non-zero rows); the
    divisor of a normalised score."""
    return int((Q.abs().sum(dim=-1) > 0).sum())


def top_k(scores: torch.Tensor, pids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` ``(scores, pids)`` by score descending, ties broken by the smaller
    pid, deterministically (every ranking in colja goes through this)."""
    if pids.numel() == 0:
        return scores[:0], pids[:0]
    order = torch.argsort(pids, stable=True)
    scores, pids = scores[order], pids[order]
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return scores[order], pids[order]


def _segment_max(scores: torch.Tensor, seg: torch.Tensor, m: int, init: float) -> torch.Tensor:
    """``out[i, k] = max(init, max of scores[t, k] over rows t with seg[t] == i)``."""
    out = scores.new_full((m, scores.shape[1]), init)
    return out.scatter_reduce_(0, seg[:, None].expand_as(scores), scores, "amax", include_self=True)


def _maxsim_sum(scores: torch.Tensor, seg: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Sum over query vectors of the per-passage max of ``scores [T, Lq]``; doclen 0 -> 0."""
    mx = _segment_max(scores, seg, len(lens), float("-inf"))
    return mx.sum(-1).masked_fill(lens == 0, 0.0)


def _code_rows(codes: torch.Tensor, num_centroids: int) -> torch.Tensor:
    """``codes`` as int64 row numbers, or ``IndexError`` for one outside ``[0, num_centroids)``
    (PyTorch indexing would wrap a negative code around instead of failing)."""
    rows = codes.long()
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= num_centroids):
        i = int(torch.nonzero((rows < 0) | (rows >= num_centroids))[0, 0])
        raise IndexError(f"codes[{i}] = {int(rows[i])} is out of range for the number of centroids ({num_centroids})")
    return rows


def _residual_values(residuals, bucket_weights, nbits, dim):
    return bucket_weights[unpack_residual_buckets(residuals, nbits, dim).long()]


@functools.lru_cache(maxsize=1)
def _l2_cache_bytes() -> int:
    """Per-core L2 size (0 when unknown)."""
    try:
        value = int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))
        if value > 0:
            return value
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        return int(text.rstrip("KM")) * mult
    except (OSError, ValueError):
        return 0


def _lut_budget(lut_max_bytes: int | None) -> int:
    """``lut_max_bytes`` checked, or :func:`default_lut_max_bytes` for None."""
    return default_lut_max_bytes() if lut_max_bytes is None else _checks.count("lut_max_bytes", lut_max_bytes)


def default_lut_max_bytes() -> int:
    """LUT budget of :func:`maxsim_packed` when ``lut_max_bytes`` is None: half the
    L2 cache (2 MB assumed when unknown), within [512 KB, LUT_MAX_BYTES].

    Measured break-even (dim 128, Lq 32, AVX-512 and AVX2 builds, 2 MB L2): the
    table wins by 1.5-3x while it fits in half the L2 (nbits 1 and 2) and loses
    to decompress+dot once it fills the L2 (nbits 4: 2 MB)."""
    l2 = _l2_cache_bytes() or (2 << 20)
    return int(min(LUT_MAX_BYTES, max(512 << 10, l2 // 2)))


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------
def _pick(impl: str, device: torch.device):
    """(backend name, extension module or None) for ``impl`` and ``device``."""
    impl = _checks.impl(impl)
    if impl == "torch":
        return "torch", None
    if device.type == "cuda":
        if impl == "cpp":
            raise ValueError(f"impl='cpp' needs CPU tensors, found {device}; use impl='cuda' or 'auto'")
        if impl == "cuda":
            return "cuda", _build.require_module("cuda")
        mod = _build.get_module("cuda")
        return ("cuda", mod) if mod is not None else ("torch", None)
    if impl == "cuda":
        raise ValueError(f"impl='cuda' needs CUDA tensors, found {device}; use impl='cpp' or 'auto'")
    if device.type != "cpu":
        if impl == "cpp":
            raise ValueError(f"impl='cpp' needs CPU tensors, found {device}")
        return "torch", None
    if impl == "cpp":
        return "cpp", _build.require_module("cpu")
    mod = _build.get_module("cpu")
    return ("cpp", mod) if mod is not None else ("torch", None)


def _codec_args(codes, residuals, centroids, bucket_weights, nbits):
    centroids = _checks.tensor("centroids", centroids, (_F32, _F16), "[C, dim]", 2)
    dev = centroids.device
    dim = centroids.shape[1]
    nbits = _checks.nbits(nbits, dim)
    codes = _checks.tensor("codes", codes, (_I32,), "[n]", 1, dev)
    residuals = _checks.tensor("residuals", residuals, (_U8,), "[n, P]", 2, dev)
    bucket_weights = _checks.tensor("bucket_weights", bucket_weights, (_F32,), "[2**nbits]", 1, dev)
    _checks.size("residuals", residuals, 0, codes.shape[0], "n (one row per code)")
    _checks.size("residuals", residuals, 1, dim * nbits // 8, f"P = dim*nbits/8 (dim={dim}, nbits={nbits})")
    _checks.size("bucket_weights", bucket_weights, 0, 1 << nbits, f"2**nbits (nbits={nbits})")
    return codes, residuals, centroids, bucket_weights, nbits


def _passage_args(doc_offsets, pids, dev, pids_optional=False):
    doc_offsets = _checks.tensor("doc_offsets", doc_offsets, (_I64,), "[n_docs + 1]", 1, dev)
    if doc_offsets.shape[0] < 1:
        raise ValueError("doc_offsets must have n_docs + 1 >= 1 entries, found 0")
    if pids is None and pids_optional:
        return doc_offsets, None
    pids = _checks.tensor("pids", pids, (_I64,), "[m]", 1, dev)
    return doc_offsets, pids


def _cst_args(centroid_scores_t, codes, keep):
    cst = _checks.tensor("centroid_scores_t", centroid_scores_t, (_F32,), "[C, Lq]", 2)
    dev = cst.device
    codes = _checks.tensor("codes", codes, (_I32,), "[N]", 1, dev)
    if keep is not None:
        keep = _checks.tensor("keep", keep, (_BOOL,), "[C]", 1, dev)
        _checks.size("keep", keep, 0, cst.shape[0], "C (rows of centroid_scores_t)")
    return cst, codes, keep


# ---------------------------------------------------------------------------
# 1. decompress_residuals
# ---------------------------------------------------------------------------
def decompress_residuals_ref(codes, residuals, centroids, bucket_weights, nbits):
    """``normalize(centroids[code].float() + bucket_weights[bucket])`` per row."""
    v = centroids[_code_rows(codes, centroids.shape[0])].float() + _residual_values(residuals, bucket_weights, nbits,
                                                                                     centroids.shape[1])
    return F.normalize(v, p=2.0, dim=-1)


def decompress_residuals(
    codes: torch.Tensor,
    residuals: torch.Tensor,
    centroids: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """Decompress ``n`` vectors: int32 ``codes [n]``, uint8 ``residuals [n, P]``,
    float16/32 ``centroids [C, dim]``, float32 ``bucket_weights [2**nbits]``
    -> float32 ``[n, dim]``, L2-normalised rows."""
    codes, residuals, centroids, bucket_weights, nbits = _codec_args(
        codes, residuals, centroids, bucket_weights, nbits)
    name, mod = _pick(impl, centroids.device)
    if mod is None:
        return decompress_residuals_ref(codes, residuals, centroids, bucket_weights, nbits)
    return mod.decompress_residuals(codes, residuals, centroids, bucket_weights, nbits)


# ---------------------------------------------------------------------------
# 2. vector_norms
# ---------------------------------------------------------------------------
def vector_norms_ref(codes, residuals, centroids, bucket_weights, nbits):
    """L2 norm of ``centroids[code].float() + bucket_weights[bucket]`` (before normalising)."""
    v = centroids[_code_rows(codes, centroids.shape[0])].float() + _residual_values(residuals, bucket_weights, nbits,
                                                                                     centroids.shape[1])
    return torch.linalg.vector_norm(v, dim=-1)


def vector_norms(
    codes: torch.Tensor,
    residuals: torch.Tensor,
    centroids: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """float32 ``[n]``: norms of the un-normalised decompressed vectors (stored by
    the index so :func:`maxsim_packed` can renormalise)."""
    codes, residuals, centroids, bucket_weights, nbits = _codec_args(
        codes, residuals, centroids, bucket_weights, nbits)
    name, mod = _pick(impl, centroids.device)
    if mod is None:
        return vector_norms_ref(codes, residuals, centroids, bucket_weights, nbits)
    return mod.vector_norms(codes, residuals, centroids, bucket_weights, nbits)


# ---------------------------------------------------------------------------
# 3. centroid_interaction
# ---------------------------------------------------------------------------
def centroid_interaction_ref(centroid_scores_t, codes, doc_offsets, pids, keep=None):
    """PLAID approximate score: sum over k of max over the pid's kept codes of
    ``centroid_scores_t[code, k]``, each max starting from -9999."""
    tok, seg, lens = token_rows(doc_offsets, pids)
    c = _code_rows(codes[tok], centroid_scores_t.shape[0])
    s = centroid_scores_t[c]
    if keep is not None:
        s = s.masked_fill(~keep[c][:, None], MISSING_SCORE)
    return _segment_max(s, seg, len(pids), MISSING_SCORE).sum(-1)


def centroid_interaction(
    centroid_scores_t: torch.Tensor,
    codes: torch.Tensor,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
    keep: torch.Tensor | None = None,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """float32 ``[m]`` approximate scores of ``pids`` from float32
    ``centroid_scores_t [C, Lq]`` (row c = scores of centroid c against every
    query vector), int32 ``codes [N]``, ``doc_offsets``, ``pids`` and an optional
    bool ``keep [C]`` (pruned centroids are ignored)."""
    cst, codes, keep = _cst_args(centroid_scores_t, codes, keep)
    doc_offsets, pids = _passage_args(doc_offsets, pids, cst.device)
    name, mod = _pick(impl, cst.device)
    if mod is None:
        return centroid_interaction_ref(cst, codes, doc_offsets, pids, keep)
    return mod.centroid_interaction(cst, codes, doc_offsets, pids, keep)


# ---------------------------------------------------------------------------
# candidate_pids (PLAID stage 1)
# ---------------------------------------------------------------------------
def candidate_pids_ref(centroid_scores_t, ncells, ivf, ivf_offsets, n_docs):
    """Sorted unique pids of the IVF lists of every query vector's top ``ncells`` cells
    (ties to the smaller cell index: a stable sort)."""
    C = centroid_scores_t.shape[0]
    n = min(ncells, C)
    device = centroid_scores_t.device
    if n == 0 or centroid_scores_t.shape[1] == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    order = torch.sort(centroid_scores_t, dim=0, descending=True, stable=True).indices[:n]
    cells = torch.unique(order.flatten())
    starts, ends = ivf_offsets[cells], ivf_offsets[cells + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    owners = torch.repeat_interleave(torch.arange(len(cells), device=device), lengths, output_size=total)
    within = torch.arange(total, device=device) - torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths,
                                                                         output_size=total)
    pids = ivf[starts[owners] + within].long()
    bad = ((pids < 0) | (pids >= n_docs)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise IndexError(f"ivf[{int(starts[owners[i]] + within[i])}] = {int(pids[i])} is out of range [0, n_docs) "
                         f"with n_docs = {n_docs}")
    marked = torch.zeros(n_docs, dtype=torch.bool, device=device)
    marked[pids] = True
    return marked.nonzero().flatten()


def candidate_pids(centroid_scores_t: torch.Tensor, ncells: int, ivf: torch.Tensor, ivf_offsets: torch.Tensor,
                   n_docs: int, *, impl: str = "auto") -> torch.Tensor:
    """PLAID stage 1 -> int64 sorted unique pids: the passages in the IVF lists of the
    top ``ncells`` centroids (rows of ``centroid_scores_t`` ``[C, Lq]``) of each query vector."""
    cst = _checks.tensor("centroid_scores_t", centroid_scores_t, (_F32,), "[C, Lq]", 2)
    dev = cst.device
    ivf = _checks.tensor("ivf", ivf, (_I32,), "[entries]", 1, dev)
    ivf_offsets = _checks.tensor("ivf_offsets", ivf_offsets, (_I64,), "[C + 1]", 1, dev)
    _checks.size("ivf_offsets", ivf_offsets, 0, cst.shape[0] + 1, "C + 1 (rows of centroid_scores_t + 1)")
    ncells = _checks.count("ncells", ncells)
    n_docs = _checks.count("n_docs", n_docs)
    name, mod = _pick(impl, dev)
    if mod is None or name == "cuda":  # the GPU path selects with torch on the device
        return candidate_pids_ref(cst, ncells, ivf, ivf_offsets, n_docs)
    return mod.candidate_pids(cst, ncells, ivf, ivf_offsets, n_docs)


# ---------------------------------------------------------------------------
# 4. filter_candidates
# ---------------------------------------------------------------------------
def _top(pids, scores, k):
    scores, pids = top_k(scores, pids, k)
    return pids, scores


def filter_candidates_ref(centroid_scores_t, codes, doc_offsets, pids, keep, ndocs, nfinal):
    """PLAID stages 2+3: score with pruning, keep the top ``ndocs``, rescore those
    without pruning, return the top ``nfinal`` (pids, scores) best first."""
    s2 = centroid_interaction_ref(centroid_scores_t, codes, doc_offsets, pids, keep)
    p2, _ = _top(pids, s2, ndocs)
    s3 = centroid_interaction_ref(centroid_scores_t, codes, doc_offsets, p2, None)
    return _top(p2, s3, nfinal)


def filter_candidates(
    centroid_scores_t: torch.Tensor,
    codes: torch.Tensor,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
    keep: torch.Tensor | None,
    ndocs: int,
    nfinal: int,
    *,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PLAID stages 2+3 fused -> (int64 pids ``[<= nfinal]``, float32 scores),
    sorted by score descending, ties broken by smaller pid."""
    cst, codes, keep = _cst_args(centroid_scores_t, codes, keep)
    doc_offsets, pids = _passage_args(doc_offsets, pids, cst.device)
    ndocs = _checks.count("ndocs", ndocs)
    nfinal = _checks.count("nfinal", nfinal)
    name, mod = _pick(impl, cst.device)
    if mod is None:
        return filter_candidates_ref(cst, codes, doc_offsets, pids, keep, ndocs, nfinal)
    if name == "cuda":  # CUDA scoring kernels, selection with torch on the GPU
        s2 = mod.centroid_interaction(cst, codes, doc_offsets, pids, keep)
        p2, _ = _top(pids, s2, ndocs)
        s3 = mod.centroid_interaction(cst, codes, doc_offsets, p2, None)
        return _top(p2, s3, nfinal)
    return mod.filter_candidates(cst, codes, doc_offsets, pids, keep, ndocs, nfinal)


def prune_candidates_ref(centroid_scores_t, ivf, ivf_offsets, pids, n_docs, threshold, ndocs):
    """PLAID stage 2 alone, read off the inverted file: centroids scoring below
    ``threshold`` against every query vector are pruned; candidate ``p`` scores
    ``sum_k max(MISSING_SCORE, max over kept centroids c whose IVF list holds p of
    cst[c, k])`` (with the index's IVF: the pruned centroid interaction of its
    tokens); the top ``ndocs`` pids (ties: smaller pid), returned sorted ascending."""
    C, Lq = centroid_scores_t.shape
    keep = centroid_scores_t.max(dim=1).values >= threshold
    lens = ivf_offsets[1:] - ivf_offsets[:-1]
    cells = torch.repeat_interleave(torch.arange(C, device=ivf.device), lens)
    slot = torch.full((n_docs,), -1, dtype=torch.long, device=ivf.device)
    slot[pids] = torch.arange(len(pids), device=ivf.device)
    hit = keep[cells] & (slot[ivf.long()] >= 0)
    rows, seg = centroid_scores_t[cells[hit]], slot[ivf.long()[hit]]
    mx = _segment_max(rows, seg, len(pids), MISSING_SCORE)
    return torch.sort(_top(pids, mx.sum(-1), ndocs)[0]).values


def prune_candidates(
    centroid_scores_t: torch.Tensor,
    ivf: torch.Tensor,
    ivf_offsets: torch.Tensor,
    pids: torch.Tensor,
    n_docs: int,
    threshold: float,
    ndocs: int,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """int64 pids ``[<= ndocs]`` sorted ascending: the candidates (sorted unique
    ``pids``, e.g. from :func:`candidate_pids`) PLAID's pruned centroid interaction
    ranks first — stage 2 without the re-interaction of stage 3, for when every
    one of them is scored exactly next. It reads the kept centroids' IVF lists
    (``ivf`` int32, ``ivf_offsets`` int64 ``[C + 1]``) instead of every token: with
    ~1 % of the centroids kept that is ~10x less work than scanning the tokens,
    and the same scores when the IVF is the index's (every (centroid, passage)
    pair of the codes)."""
    cst = _checks.tensor("centroid_scores_t", centroid_scores_t, (_F32,), "[C, Lq]", 2)
    dev = cst.device
    ivf = _checks.tensor("ivf", ivf, (_I32,), "[sum of list lengths]", 1, dev)
    ivf_offsets = _checks.tensor("ivf_offsets", ivf_offsets, (_I64,), "[C + 1]", 1, dev)
    _checks.size("ivf_offsets", ivf_offsets, 0, cst.shape[0] + 1, "C + 1 (rows of centroid_scores_t + 1)")
    pids = _checks.tensor("pids", pids, (_I64,), "[m]", 1, dev)
    n_docs = _checks.count("n_docs", n_docs)
    ndocs = _checks.count("ndocs", ndocs)
    if pids.numel() > 1 and not bool((pids[1:] > pids[:-1]).all()):
        raise ValueError("pids must be sorted and unique (as candidate_pids returns them)")
    if pids.numel() and (int(pids[0]) < 0 or int(pids[-1]) >= n_docs):
        raise IndexError(f"pids must lie in [0, n_docs) with n_docs = {n_docs}")
    threshold = float(threshold)
    name, mod = _pick(impl, dev)
    if mod is not None and name == "cpp":
        return mod.prune_candidates(cst, ivf, ivf_offsets, pids, n_docs, threshold, ndocs)
    return prune_candidates_ref(cst, ivf, ivf_offsets, pids, n_docs, threshold, ndocs)


# ---------------------------------------------------------------------------
# 5. maxsim_packed
# ---------------------------------------------------------------------------
def _packed_args(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets, pids):
    """The checked arguments of the packed MaxSim kernels, in order."""
    Q = _checks.tensor("Q", Q, (_F32,), "[Lq, dim]", 2)
    dev = Q.device
    Lq, dim = Q.shape
    nbits = _checks.nbits(nbits, dim)
    cst = _checks.tensor("centroid_scores_t", centroid_scores_t, (_F32,), "[C, Lq]", 2, dev)
    _checks.size("centroid_scores_t", cst, 1, Lq, "Lq (rows of Q)")
    codes = _checks.tensor("codes", codes, (_I32,), "[N]", 1, dev)
    residuals = _checks.tensor("residuals", residuals, (_U8,), "[N, P]", 2, dev)
    _checks.size("residuals", residuals, 0, codes.shape[0], "N (one row per code)")
    _checks.size("residuals", residuals, 1, dim * nbits // 8, f"P = dim*nbits/8 (dim={dim}, nbits={nbits})")
    norms = _checks.tensor("norms", norms, (_F32,), "[N]", 1, dev)
    _checks.size("norms", norms, 0, codes.shape[0], "N (one per code)")
    bucket_weights = _checks.tensor("bucket_weights", bucket_weights, (_F32,), "[2**nbits]", 1, dev)
    _checks.size("bucket_weights", bucket_weights, 0, 1 << nbits, f"2**nbits (nbits={nbits})")
    doc_offsets, pids = _passage_args(doc_offsets, pids, dev)
    return Q, cst, codes, residuals, norms, bucket_weights, nbits, doc_offsets, pids


def maxsim_packed_ref(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits,
                      doc_offsets, pids):
    """Exact MaxSim against the decompressed vectors, from the packed codes:
    ``sum_k max_t (cst[code_t, k] + Q[k] . bucket_weights[b_t]) / norm_t``."""
    tok, seg, lens = token_rows(doc_offsets, pids)
    r = _residual_values(residuals[tok], bucket_weights, nbits, Q.shape[1])
    s = (centroid_scores_t[_code_rows(codes[tok], centroid_scores_t.shape[0])] + r @ Q.T) / norms[tok, None].clamp_min(1e-12)
    return _maxsim_sum(s, seg, lens)


def maxsim_packed(
    Q: torch.Tensor,
    centroid_scores_t: torch.Tensor,
    codes: torch.Tensor,
    residuals: torch.Tensor,
    norms: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
    *,
    impl: str = "auto",
    lut_max_bytes: int | None = None,
) -> torch.Tensor:
    """float32 ``[m]`` exact MaxSim of ``pids`` against their decompressed
    vectors, without a decompression pass: float32 ``Q [Lq, dim]``,
    ``centroid_scores_t = (Q @ centroids.float().T).T`` ``[C, Lq]``, int32
    ``codes [N]``, uint8 ``residuals [N, P]``, float32 ``norms [N]`` (from
    :func:`vector_norms`), ``bucket_weights``, ``nbits``, ``doc_offsets``, ``pids``.
    Doclen 0 scores 0.

    The C++ kernel builds per-query lookup tables ``LUT[p][v][k]`` (packed byte
    position x byte value x query vector, ``Lq*P*256*4`` bytes) when they fit in
    ``lut_max_bytes`` (None: :func:`default_lut_max_bytes`), else it decompresses
    and dots; both give the same numbers up to float rounding."""
    args = _packed_args(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets, pids)
    lut_max_bytes = _lut_budget(lut_max_bytes)
    name, mod = _pick(impl, args[0].device)
    if mod is None:
        return maxsim_packed_ref(*args)
    if name == "cuda":
        return mod.maxsim_packed(*args)
    return mod.maxsim_packed(*args, lut_max_bytes)


def maxsim_packed_topk_ref(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets,
                           pids, k):
    """The best ``k`` of :func:`maxsim_packed_ref` (:func:`top_k`: score descending, ties to the smaller pid)."""
    scores = maxsim_packed_ref(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets,
                               pids)
    return top_k(scores, pids, k)


def maxsim_packed_topk(
    Q: torch.Tensor,
    centroid_scores_t: torch.Tensor,
    codes: torch.Tensor,
    residuals: torch.Tensor,
    norms: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
    k: int,
    *,
    impl: str = "auto",
    lut_max_bytes: int | None = None,
    return_exact_count: bool = False,
):
    """``(scores, pids)``: the top ``min(k, m)`` of :func:`maxsim_packed` over
    ``pids`` (arguments as there), best first, ties to the smaller pid: the same
    result as ``top_k(maxsim_packed(...), pids, k)``.

    The C++ kernel scores every passage approximately first (int8 dot products or
    lookup tables with a proven error bound, :func:`maxsim_packed_bounds`) and scores exactly
    only those whose upper bound reaches the k-th best lower bound — usually a
    few dozen of a thousand. ``return_exact_count=True`` also returns how many
    were scored exactly (``len(pids)`` on the other backends)."""
    args = _packed_args(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets, pids)
    k = _checks.count("k", k)
    name, mod = _pick(impl, args[0].device)
    if name == "cpp":
        scores, top, n_exact = mod.maxsim_packed_topk(*args, k, _lut_budget(lut_max_bytes))
    else:
        scores = maxsim_packed_ref(*args) if mod is None else mod.maxsim_packed(*args)
        (scores, top), n_exact = top_k(scores, args[-1], k), int(args[-1].numel())
    return (scores, top, n_exact) if return_exact_count else (scores, top)


def maxsim_packed_bounds(
    Q: torch.Tensor,
    centroid_scores_t: torch.Tensor,
    codes: torch.Tensor,
    residuals: torch.Tensor,
    norms: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """float32 ``(approx [m], bound [m])`` with ``|approx - maxsim_packed| <= bound``
    for every passage (C++ kernels only), or None when the int16 tables cannot
    represent this query.

    The residual part of each score comes from int8 arithmetic: AVX512-VNNI dot
    products of int8 query vectors with the residuals' levels (2-bit), else int8
    nibble tables summed in int16, one scale per query vector. Each rounding is at
    most half a scale step, so a passage's MaxSim is off by at most the summed
    rounding of its lanes times ``max_t 1/norm_t`` (plus float rounding)."""
    args = _packed_args(Q, centroid_scores_t, codes, residuals, norms, bucket_weights, nbits, doc_offsets, pids)
    if args[0].device.type != "cpu":
        raise ValueError(f"maxsim_packed_bounds needs CPU tensors, found {args[0].device}")
    approx, bound, ok = _build.require_module("cpu").maxsim_packed_bounds(*args)
    return (approx, bound) if ok else None


def plaid_search_batch(Qs, centroid_scores_t, ivf, ivf_offsets, codes, residuals, norms, bucket_weights, nbits,
                       doc_offsets, allowed, ncells, threshold, ndocs, k, *, lut_max_bytes=None):
    """PLAID searches of several queries in one call of the C++ kernels, one query per
    thread (stage 1 :func:`candidate_pids`, stage 2 :func:`prune_candidates`, exact top k
    :func:`maxsim_packed_topk`; the same results as calling them per query).

    ``Qs``: float32 ``[Lq, dim]`` query rows (no all-zero rows); ``centroid_scores_t``:
    their ``[C, Lq]`` scores; ``allowed``: bool ``[n_docs]`` or None. Returns
    ``(scores [n, k], pids [n, k], too_few [n])`` (-inf / -1 padded; ``too_few``:
    fewer than ``k`` candidates, not searched), or None without the C++ kernels."""
    if not Qs:
        return None
    name, mod = _pick("auto", Qs[0].device)
    if name != "cpp":
        return None
    return mod.plaid_search_batch([q.contiguous() for q in Qs], [c.contiguous() for c in centroid_scores_t], ivf,
                                  ivf_offsets, codes, residuals, norms, bucket_weights, int(nbits), doc_offsets,
                                  allowed, int(ncells), float(threshold), int(ndocs), int(k), _lut_budget(lut_max_bytes))


# ---------------------------------------------------------------------------
# 6. maxsim_dense
# ---------------------------------------------------------------------------
def maxsim_dense_ref(Q, D, doc_offsets, pids=None):
    """``sum_k max_t Q[k] . D[t]`` over each passage's rows of ``D`` (fp32 math)."""
    if pids is None:
        pids = torch.arange(doc_offsets.shape[0] - 1, device=doc_offsets.device)
    tok, seg, lens = token_rows(doc_offsets, pids)
    return _maxsim_sum(D[tok].float() @ Q.T, seg, lens)


def maxsim_dense(
    Q: torch.Tensor,
    D: torch.Tensor,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor | None = None,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """Exact MaxSim over uncompressed vectors: float32 ``Q [Lq, dim]``, float16/32
    ``D [N, dim]`` -> float32 ``[m]`` (or ``[n_docs]`` when ``pids`` is None).
    Doclen 0 scores 0. On CUDA this always runs the PyTorch path (cuBLAS)."""
    Q = _checks.tensor("Q", Q, (_F32,), "[Lq, dim]", 2)
    D = _checks.tensor("D", D, (_F32, _F16), "[N, dim]", 2, Q.device)
    _checks.size("D", D, 1, Q.shape[1], "dim (columns of Q)")
    doc_offsets, pids = _passage_args(doc_offsets, pids, Q.device, pids_optional=True)
    name, mod = _pick(impl, Q.device)
    if mod is None or name == "cuda":
        return maxsim_dense_ref(Q, D, doc_offsets, pids)
    return mod.maxsim_dense(Q, D, doc_offsets, pids)


def maxsim_dense_queries(Q: torch.Tensor, D: torch.Tensor, doc_offsets: torch.Tensor, *,
                         impl: str = "auto") -> torch.Tensor:
    """float32 ``[n, n_docs]``: :func:`maxsim_dense` of every query of ``Q [n, Lq, dim]``
    (each without its all-zero rows) against every passage of ``D``."""
    if not isinstance(Q, torch.Tensor) or Q.dim() != 3:
        raise ValueError(f"Q must be a [n, Lq, dim] tensor, got {getattr(Q, 'shape', type(Q).__name__)}")
    out = torch.zeros((Q.shape[0], int(doc_offsets.numel()) - 1), dtype=torch.float32, device=Q.device)
    for i in range(Q.shape[0]):
        q = query_rows(Q[i].float()).contiguous()
        if q.shape[0] and out.shape[1]:
            out[i] = maxsim_dense(q, D, doc_offsets, impl=impl)
    return out


# ---------------------------------------------------------------------------
# 7. maxsim_decompress (decompress + dot, the ColBERTv2 way)
# ---------------------------------------------------------------------------
def maxsim_decompress_ref(Q, codes, residuals, centroids, bucket_weights, nbits, doc_offsets, pids):
    """``maxsim_dense(Q, decompress_residuals(...))`` restricted to ``pids``."""
    tok, seg, lens = token_rows(doc_offsets, pids)
    D = decompress_residuals_ref(codes[tok], residuals[tok], centroids, bucket_weights, nbits)
    return _maxsim_sum(D @ Q.T, seg, lens)


def maxsim_decompress(
    Q: torch.Tensor,
    codes: torch.Tensor,
    residuals: torch.Tensor,
    centroids: torch.Tensor,
    bucket_weights: torch.Tensor,
    nbits: int,
    doc_offsets: torch.Tensor,
    pids: torch.Tensor,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """float32 ``[m]``: MaxSim of ``pids`` against their decompressed vectors,
    decompressing and dotting in one pass (the baseline of :func:`maxsim_packed`)."""
    Q = _checks.tensor("Q", Q, (_F32,), "[Lq, dim]", 2)
    codes, residuals, centroids, bucket_weights, nbits = _codec_args(
        codes, residuals, centroids, bucket_weights, nbits)
    if centroids.device != Q.device:
        raise ValueError(f"centroids must be on the same device as Q ({Q.device}), found {centroids.device}")
    _checks.size("centroids", centroids, 1, Q.shape[1], "dim (columns of Q)")
    doc_offsets, pids = _passage_args(doc_offsets, pids, Q.device)
    name, mod = _pick(impl, Q.device)
    if mod is None:
        return maxsim_decompress_ref(Q, codes, residuals, centroids, bucket_weights, nbits, doc_offsets, pids)
    if name == "cuda":
        tok, seg, lens = token_rows(doc_offsets, pids)
        D = mod.decompress_residuals(codes[tok].contiguous(), residuals[tok].contiguous(), centroids,
                                     bucket_weights, nbits)
        return _maxsim_sum(D @ Q.T, seg, lens)
    return mod.maxsim_decompress(Q, codes, residuals, centroids, bucket_weights, nbits, doc_offsets, pids)
