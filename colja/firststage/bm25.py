"""BM25 first stage: MeCab words scored by ``bm25s``.

``bm25s`` is an optional dependency (``pip install "colja[bm25]"``) and is
imported on first use. The index folder holds only JSON and ``.npy`` files
(written and read with ``allow_pickle=False``):

=========================  ==================================================
``colja_bm25.json``        format version, BM25 settings, tokenizer, versions
``params.index.json``      bm25s's own parameters
``vocab.index.json``       word -> column of the score matrix
``*.csc.index.npy``        precomputed BM25 weights as a CSC matrix (bm25s)
=========================  ==================================================
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from colja._atomic import atomic_folder, write_json
from colja._progress import progress, progress_enabled
from colja._validation import check_texts
from colja.errors import IndexExistsError, IndexFormatError, IndexNotFoundError, MissingDependencyError
from colja.firststage.fusion import Ranking
from colja.text.japanese import DROPPED_POS, MecabWordTokenizer

logger = logging.getLogger(__name__)

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FORMAT = "colja-bm25"
FORMAT_VERSION = 1
MANIFEST = "colja_bm25.json"
_ARRAYS = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy")
_BM25S_JSON = ("params.index.json", "vocab.index.json")
_MISSING_BM25S = 'BM25 needs the optional dependency bm25s: pip install "colja[bm25]"'


def passage_text(title: str | None, text: str) -> str:
    """The text BM25 indexes for a titled passage: ``title + "\\n" + text`` (just ``text`` without a title).

    (The recipe our BM25 baselines on JaQuAD and JSQuAD were measured with.)
    """
    return f"{title}\n{text}" if title else text


def _import_bm25s():
    try:
        import bm25s
    except ImportError as e:
        raise MissingDependencyError(_MISSING_BM25S) from e
    bm25s_logger = logging.getLogger("bm25s")
    if bm25s_logger.level == logging.DEBUG:  # bm25s sets DEBUG on import, which prints through the root handler
        bm25s_logger.setLevel(logging.WARNING)
    return bm25s


class BM25Retriever:
    """Okapi BM25 over MeCab words (see :class:`~colja.text.japanese.MecabWordTokenizer`).

    >>> bm25 = BM25Retriever.build(["東京は日本の首都です。", "大阪は食の都です。"])
    >>> bm25.search("日本の首都は？", k=1)
    Ranking(pids=array([0]), scores=array([...], dtype=float32))

    Ties are broken by the lower pid. Searching is thread-safe. Follows
    :class:`~colja.firststage.fusion.FirstStage` (``name = "bm25"``).
    """

    name: ClassVar[str] = "bm25"
    # BM25 weights depend on every passage (idf, mean length): add() rebuilds from all the texts.
    rebuilds_on_add: ClassVar[bool] = True

    def __init__(self, engine: Any, tokenizer: MecabWordTokenizer | None = None) -> None:
        """Wrap a built ``bm25s.BM25``; use :meth:`build` or :meth:`load` instead."""
        self._engine = engine
        self.tokenizer = tokenizer if tokenizer is not None else MecabWordTokenizer()

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
              show_progress: bool | None = None, tokenizer: MecabWordTokenizer | None = None) -> "BM25Retriever":
        """Index ``texts`` (passage ``i`` gets pid ``i``).

        For titled passages pass ``passage_text(title, text)``. ``method`` is the
        bm25s variant, one of ``METHODS``. Raises ``ValueError`` when no text
        holds a single word.
        """
        texts = check_texts(texts)
        if method not in METHODS:
            raise ValueError(f"unknown BM25 method {method!r}; choose one of {', '.join(METHODS)}")
        if not texts:
            raise ValueError("BM25Retriever.build needs at least one text, got an empty list")
        bm25s = _import_bm25s()
        tokenizer = tokenizer if tokenizer is not None else MecabWordTokenizer()
        show = progress_enabled(show_progress, len(texts) // 1000)
        # Words become ids as they come: lists of shared int objects take ~8 bytes a word,
        # where lists of word strings took ~140 (280 MB for jaquad-dev-large).
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(w, len(vocab)) for w in tokenizer.tokenize(t)]
               for t in progress(texts, total=len(texts), desc="BM25 tokenize", show=show, unit="doc")]
        if not vocab:
            raise ValueError(f"none of the {len(texts)} texts has a word after tokenization "
                             "(empty or punctuation only); BM25 needs at least one word")
        engine = bm25s.BM25(k1=k1, b=b, method=method, backend="numpy")
        engine.index((ids, vocab), show_progress=show)
        logger.info("BM25 index: %d passages, %d words", len(texts), len(engine.vocab_dict))
        return cls(engine, tokenizer)

    def add(self, texts: Sequence[str], *, existing_texts: Sequence[str] | None = None,
            show_progress: bool | None = None) -> np.ndarray:
        """Append ``texts`` (pids ``len(self)`` onwards, returned as int64) by rebuilding the index.

        BM25 weights depend on the whole collection (idf, mean passage length)
        and the index keeps no texts, so ``existing_texts`` must hold the texts
        of pids ``0 .. len(self)-1`` (an index reads them from its document
        store). Settings and tokenizer are kept; the swap is atomic for
        concurrent searches.
        """
        texts = check_texts(texts)
        if existing_texts is None:
            raise ValueError("BM25Retriever.add rebuilds the index and needs the texts already indexed: "
                             f"pass existing_texts= (the {len(self)} texts of pids 0..{len(self) - 1})")
        existing = check_texts(existing_texts, what="existing_texts")
        if len(existing) != len(self):
            raise ValueError(f"existing_texts has {len(existing)} texts but the index holds {len(self)} passages")
        start = len(self)
        if texts:
            rebuilt = type(self).build(existing + texts, k1=self.k1, b=self.b, method=self.method,
                                       tokenizer=self.tokenizer, show_progress=show_progress)
            self._engine = rebuilt._engine
        return np.arange(start, start + len(texts), dtype=np.int64)

    # ----------------------------------------------------------------- search
    def search(self, query: str, k: int = 10) -> Ranking:
        """The best (at most ``k``) passages sharing a word with ``query``; ``k > len(self)`` is fine.

        An empty query, or one with no word in the index, gives empty arrays.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for a list")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be a non-negative int, got {k!r}")
        ids = self._engine.get_tokens_ids(self.tokenizer.tokenize(query))
        if not ids or k == 0:
            return _empty()
        scores = self._engine.get_scores_from_ids(ids)
        return _top_k(np.asarray(scores, dtype=np.float32), int(k))

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[Ranking]:
        """:meth:`search` for each query, in order."""
        return [self.search(q, k) for q in check_texts(queries, what="queries")]

    def get_scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for ``query``: float32 ``[len(self)]``."""
        ids = self._engine.get_tokens_ids(self.tokenizer.tokenize(query))
        if not ids:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._engine.get_scores_from_ids(ids), dtype=np.float32)

    # ---------------------------------------------------------------- persist
    def save(self, folder: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the index to ``folder`` atomically (JSON + ``.npy`` only); returns the folder.

        An existing BM25 index there is replaced when ``overwrite``; any other
        non-empty folder is refused with ``IndexExistsError``.
        """
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            if not (folder / MANIFEST).is_file():
                raise IndexExistsError(f"{folder} exists and is not a colja BM25 index; "
                                       "choose an empty or new folder")
            if not overwrite:
                raise IndexExistsError(f"a BM25 index already exists at {folder}; pass overwrite=True to replace it")
        with atomic_folder(folder) as tmp:
            self._engine.save(tmp, allow_pickle=False, show_progress=False)
            write_json(tmp / MANIFEST, self._manifest(), fsync=False)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, mmap: bool = False) -> "BM25Retriever":
        """Read an index written by :meth:`save`; ``mmap=True`` memory-maps the arrays."""
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise IndexNotFoundError(f"no BM25 index at {folder}: {MANIFEST} is missing")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"{manifest_path} is not valid JSON ({e}); rebuild the index") from e
        if manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{manifest_path} is not a colja BM25 manifest (format={manifest.get('format')!r})")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IndexFormatError(f"{folder} has BM25 format version {version!r}, this colja reads up to "
                                   f"{FORMAT_VERSION}; upgrade colja or rebuild the index")
        for name in _ARRAYS + _BM25S_JSON:
            if not (folder / name).is_file():
                raise IndexFormatError(f"BM25 index at {folder} is incomplete: {name} is missing; rebuild it")
        bm25s = _import_bm25s()
        try:
            engine = bm25s.BM25.load(folder, mmap=bool(mmap), allow_pickle=False, load_corpus=False,
                                     show_progress=False, backend="numpy")
        except ValueError as e:  # a truncated or pickled .npy, or bad JSON
            raise IndexFormatError(f"BM25 index at {folder} could not be read ({e}); rebuild it") from e
        _check_engine(engine, manifest, folder)
        tok = manifest.get("tokenizer", {})
        tokenizer = MecabWordTokenizer(normalize=tok.get("normalize", True), lowercase=tok.get("lowercase", True),
                                       dropped_pos=tok.get("dropped_pos", DROPPED_POS))
        return cls(engine, tokenizer)

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "num_docs": len(self),
            "vocab_size": self.vocab_size,
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "tokenizer": {
                "name": "MecabWordTokenizer",
                "normalize": self.tokenizer.normalize,
                "lowercase": self.tokenizer.lowercase,
                "dropped_pos": sorted(self.tokenizer.dropped_pos),
            },
            "versions": _versions(),
        }

    # ------------------------------------------------------------ properties
    @property
    def k1(self) -> float:
        return float(self._engine.k1)

    @property
    def b(self) -> float:
        return float(self._engine.b)

    @property
    def method(self) -> str:
        return str(self._engine.method)

    @property
    def vocab_size(self) -> int:
        """Distinct words in the index."""
        return int(len(self._engine.scores["indptr"]) - 1)

    def __len__(self) -> int:
        return int(self._engine.scores["num_docs"])

    def __repr__(self) -> str:
        return (f"BM25Retriever(num_docs={len(self)}, vocab_size={self.vocab_size}, method={self.method!r}, "
                f"k1={self.k1}, b={self.b})")


def _empty() -> Ranking:
    return Ranking(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def _top_k(scores: np.ndarray, k: int) -> Ranking:
    """Positive scores only, best first, ties by ascending pid; deterministic at the k-th place too."""
    cand = np.flatnonzero(scores > 0)
    if cand.size > k:
        sub = scores[cand]
        kth = sub[np.argpartition(-sub, k - 1)[k - 1]]
        cand = cand[sub >= kth]  # every tie of the k-th score, so the pid rule decides among them
    sub = scores[cand]
    order = np.lexsort((cand, -sub))[:k]
    return Ranking(cand[order].astype(np.int64), sub[order].astype(np.float32))


def _check_engine(engine: Any, manifest: dict, folder: Path) -> None:
    s = engine.scores
    n_data, n_ind, n_ptr = len(s["data"]), len(s["indices"]), len(s["indptr"])
    if n_data != n_ind or n_ptr == 0 or int(s["indptr"][-1]) != n_data:
        raise IndexFormatError(f"BM25 index at {folder} is corrupted: data ({n_data}), indices ({n_ind}) and "
                               f"indptr (last {int(s['indptr'][-1]) if n_ptr else None}) disagree; rebuild it")
    if s["num_docs"] != manifest.get("num_docs"):
        raise IndexFormatError(f"BM25 index at {folder} is inconsistent: params.index.json says {s['num_docs']} "
                               f"passages, {MANIFEST} says {manifest.get('num_docs')}; rebuild it")


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("colja", "bm25s", "fugashi", "unidic-lite", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


__all__ = ["METHODS", "BM25Retriever", "passage_text"]
