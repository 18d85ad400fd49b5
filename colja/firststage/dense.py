"""Dense first stage: one vector per passage from a sentence-transformers model, searched in faiss.

Any model that ``sentence_transformers.SentenceTransformer`` loads works, from
a hub id or a local folder: ``pkshatech/GLuCoSE-base-ja-v2``,
``cl-nagoya/sup-simcse-ja-base`` / ``-large``, ``cl-nagoya/unsup-simcse-ja-*``,
``bi-matrix/gmatrix-embedding`` (DeBERTa-v2), ... The model folder decides
the pooling (``1_Pooling/config.json``: CLS for the SimCSE models, mean for
GLuCoSE) and sentence-transformers applies it; a plain transformers folder
without ``modules.json`` gets mean pooling (sentence-transformers' default).

Prefixes ("prompts") are resolved once, per side, in this order:

1. the ``query_prefix`` / ``document_prefix`` arguments (``""`` means none);
2. the ``prompts`` of the model's ``config_sentence_transformers.json``:
   ``"query"`` for queries, the first of ``"document"``, ``"passage"``,
   ``"corpus"`` for passages (the names ``encode_query`` /
   ``encode_document`` use);
3. :data:`KNOWN_PREFIXES`, for models whose card asks for prefixes that their
   folder does not declare (GLuCoSE v2 wants ``query: `` / ``passage: ``);
4. none.

The result (and where it came from) is saved with the index, so a loaded
index encodes queries exactly as its passages were encoded.

``sentence-transformers`` is an optional dependency (``pip install
"colja[dense]"``), imported when a model is first needed. A saved index
loads without it; only encoding text needs the model. The folder holds:

=====================  ==============================================================
``colja_dense.json``   format version, model id/path, prefixes, settings, versions
``vectors.faiss``      the passage vectors: faiss ``IndexFlatIP`` or ``IndexHNSWFlat``
=====================  ==============================================================
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from colja._atomic import atomic_folder, write_json
from colja._hub import hub_load_options
from colja._progress import progress, progress_enabled
from colja._validation import check_texts
from colja.errors import (IndexExistsError, IndexFormatError, IndexNotFoundError, MissingDependencyError, ModelLoadError,
                          UntrustedCodeError)
from colja.firststage.fusion import Ranking
from colja.firststage.vectors import DEFAULT_HNSW_THRESHOLD, VectorIndex, VectorIndexSettings

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.faiss"
QUERY_PROMPT_NAMES = ("query",)
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
_MISSING_ST = ('Dense and static first stages need the optional dependency sentence-transformers: '
               'pip install "colja[dense]"')

# Prefixes that a model's card requires but its config_sentence_transformers.json does not declare
# (checked against each card; a model that declares prompts in its folder needs no entry here).
KNOWN_PREFIXES: dict[str, tuple[str, str]] = {
    # card: 'During inference, the prefix "query: " or "passage: " is required.'
    "pkshatech/GLuCoSE-base-ja-v2": ("query: ", "passage: "),
    # cards: 'Each input text should start with "query: " or "passage: ", even for non-English texts.'
    "intfloat/multilingual-e5-small": ("query: ", "passage: "),
    "intfloat/multilingual-e5-base": ("query: ", "passage: "),
    "intfloat/multilingual-e5-large": ("query: ", "passage: "),
}


def _import_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as e:
        raise MissingDependencyError(_MISSING_ST) from e
    return sentence_transformers


def hub_id_of(name_or_path: str) -> str | None:
    """The hub id behind ``name_or_path``: itself for an id, ``org/name`` for a folder in the
    Hugging Face cache (``.../models--org--name/snapshots/<hash>``), else ``None``."""
    p = Path(name_or_path)
    if not p.exists():
        return name_or_path
    for part in reversed(p.resolve().parts):
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/", 1)
    return None


def resolve_prefixes(name_or_path: str, prompts: dict[str, Any] | None, query_prefix: str | None = None,
                     document_prefix: str | None = None) -> tuple[str, str, dict[str, str]]:
    """``(query_prefix, document_prefix, source)`` by the rules in this module's docstring.

    ``prompts`` is the model's prompt table (``SentenceTransformer.prompts``;
    empty strings count as undeclared). ``source`` says, per side, which rule
    decided: ``"argument"``, ``"model prompts"``, ``"known prefixes"`` or ``"none"``.
    """
    prompts = {k: v for k, v in (prompts or {}).items() if isinstance(v, str) and v}
    known = KNOWN_PREFIXES.get(hub_id_of(str(name_or_path)) or "")
    out, source = [], {}
    for side, given, names, idx in (("query", query_prefix, QUERY_PROMPT_NAMES, 0),
                                    ("document", document_prefix, DOCUMENT_PROMPT_NAMES, 1)):
        if given is not None:
            if not isinstance(given, str):
                raise TypeError(f"{side}_prefix must be a str or None, got {type(given).__name__}")
            out.append(given)
            source[side] = "argument"
        elif any(n in prompts for n in names):
            out.append(prompts[next(n for n in names if n in prompts)])
            source[side] = "model prompts"
        elif known is not None:
            out.append(known[idx])
            source[side] = "known prefixes"
        else:
            out.append("")
            source[side] = "none"
    return out[0], out[1], source


def custom_module_types(name_or_path: str) -> list[str] | None:
    """Module classes outside sentence-transformers that a model folder names in ``modules.json``
    (code the model ships and ``trust_remote_code`` would run); ``None`` when not known locally."""
    p = Path(name_or_path)
    if not p.is_dir():
        return None
    f = p / "modules.json"
    if not f.is_file():
        return []
    try:
        modules = json.loads(f.read_text(encoding="utf-8"))
        types = [str(m.get("type", "")) for m in modules]
    except (OSError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"{f} is not a valid sentence-transformers modules.json ({e})") from e
    return [t for t in types if not t.startswith("sentence_transformers.")]


class DenseRetriever:
    """Cosine (or inner-product) search over one sentence-transformers vector per passage.

    >>> dense = DenseRetriever.build(["東京は日本の首都です。", "大阪は食の都です。"],
    ...                              "pkshatech/GLuCoSE-base-ja-v2")
    >>> dense.search("日本の首都は？", k=1)
    Ranking(pids=array([0]), scores=array([...], dtype=float32))

    ``DenseRetriever(model)`` is an empty retriever; :meth:`add` appends
    passages and :meth:`build` is both at once. The model loads on first use
    (and, for a loaded index, only when a text query arrives).

    Settings: ``query_prefix`` / ``document_prefix`` (``None``: resolved as the
    module docstring says); ``normalize`` L2-normalises vectors so the inner
    product is the cosine; ``truncate_dim`` keeps the first dimensions of a
    Matryoshka model's vectors (then normalises); ``hnsw_threshold`` (passages
    above which search is approximate HNSW instead of exact; ``None``: never)
    with ``hnsw_m`` / ``ef_construction`` / ``ef_search``; ``batch_size``,
    ``device`` (``None``: sentence-transformers picks), ``max_length`` (tokens;
    ``None``: the model's own); ``trust_remote_code`` lets a model that ships
    its own Python code run it; ``revision`` pins a hub revision; ``model``: an
    already loaded ``SentenceTransformer`` for ``model_name_or_path``.

    Ties are broken by the lower pid. Searching is thread-safe; adding is not.
    """

    name: ClassVar[str] = "dense"
    rebuilds_on_add: ClassVar[bool] = False
    FORMAT: ClassVar[str] = "colja-dense"
    MANIFEST: ClassVar[str] = "colja_dense.json"
    DEFAULT_MODEL: ClassVar[str] = "pkshatech/GLuCoSE-base-ja-v2"
    DEFAULT_BATCH_SIZE: ClassVar[int] = 32
    DEFAULT_DEVICE: ClassVar[str | None] = None
    # hub ids known to need trust_remote_code, with what their code is (checked before any download)
    REMOTE_CODE_MODELS: ClassVar[dict[str, str]] = {}

    def __init__(self, model_name_or_path: str | os.PathLike | None = None, *, query_prefix: str | None = None,
                 document_prefix: str | None = None, normalize: bool = True, truncate_dim: int | None = None,
                 hnsw_threshold: int | None = DEFAULT_HNSW_THRESHOLD, hnsw_m: int = 32, ef_construction: int = 200,
                 ef_search: int = 128, batch_size: int | None = None, device: str | None = None,
                 max_length: int | None = None, trust_remote_code: bool = False, revision: str | None = None,
                 model: Any = None) -> None:
        name = self.DEFAULT_MODEL if model_name_or_path is None else model_name_or_path
        if not isinstance(name, (str, os.PathLike)):
            raise TypeError(f"model_name_or_path must be a hub id or a folder, got {type(name).__name__}; "
                            "pass a loaded SentenceTransformer as model=")
        name = os.fspath(name)
        self.model_name_or_path = str(Path(name).resolve()) if Path(name).exists() else name
        self.normalize = bool(normalize)
        self.truncate_dim = _check_optional_positive("truncate_dim", truncate_dim)
        self.batch_size = _check_optional_positive("batch_size", batch_size) or self.DEFAULT_BATCH_SIZE
        self.max_length = _check_optional_positive("max_length", max_length)
        self.device = device if device is not None else self.DEFAULT_DEVICE
        self.trust_remote_code = bool(trust_remote_code)
        self.revision = revision
        self.vector_settings = VectorIndexSettings(hnsw_threshold=hnsw_threshold, hnsw_m=hnsw_m,
                                                   ef_construction=ef_construction, ef_search=ef_search)
        for side, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{side} must be a str or None, got {type(value).__name__}")
        self._given_prefixes = (query_prefix, document_prefix)
        self._prefixes: tuple[str, str, dict[str, str]] | None = None
        self._modules: list[dict[str, Any]] | None = None
        self._vectors: VectorIndex | None = None
        self._model = model
        self._model_lock = threading.Lock()
        if model is not None:
            self._adopt_model(model)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, texts: Sequence[str], model_name_or_path: str | os.PathLike | None = None, *,
              show_progress: bool | None = None, **settings: Any) -> "DenseRetriever":
        """Encode and index ``texts`` (passage ``i`` gets pid ``i``); ``settings`` as for the constructor.

        For titled passages pass ``passage_text(title, text)``.
        """
        texts = check_texts(texts)
        if not texts:
            raise ValueError(f"{cls.__name__}.build needs at least one text, got an empty list")
        retriever = cls(model_name_or_path, **settings)
        retriever.add(texts, show_progress=show_progress)
        return retriever

    def add(self, texts: Sequence[str], *, existing_texts: Sequence[str] | None = None,
            show_progress: bool | None = None) -> np.ndarray:
        """Encode and append ``texts``; returns their pids (int64, ``len(self)`` onwards).

        All or nothing: every text is encoded before any is added, so an error
        (or an interrupt) leaves the index as it was. ``existing_texts`` is
        accepted for the :class:`~colja.firststage.fusion.FirstStage` protocol
        and ignored: passages already indexed are never re-encoded.
        """
        texts = check_texts(texts)
        start = len(self)
        if not texts:
            return np.empty(0, dtype=np.int64)
        chunk = self.batch_size * 16
        steps = (len(texts) + chunk - 1) // chunk
        show = progress_enabled(show_progress, steps)
        out: np.ndarray | None = None
        for i in progress(range(0, len(texts), chunk), total=steps, desc=f"{self.name.capitalize()} encode",
                          show=show, unit="chunk"):
            x = self.encode_documents(texts[i : i + chunk])
            if out is None:
                out = np.empty((len(texts), x.shape[1]), dtype=np.float32)
            out[i : i + len(x)] = x
        if self._vectors is None:
            self._vectors = VectorIndex(out.shape[1], self.vector_settings, expected_size=len(texts))
        self._vectors.add(out)
        logger.info("%s first stage: %d passages (+%d), %s", self.name, len(self), len(texts), self._vectors)
        return np.arange(start, start + len(texts), dtype=np.int64)

    # ----------------------------------------------------------------- encode
    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors, float32 ``[n, dim]`` (query prefix applied, truncated, normalised as set)."""
        queries = check_texts(queries, what="queries")
        return self._encode(queries, "query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors, float32 ``[n, dim]`` (document prefix applied, truncated, normalised as set)."""
        texts = check_texts(texts)
        return self._encode(texts, "document")

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim if self._vectors is not None else 0), np.float32)
        model = self.model
        prefix = self.query_prefix if role == "query" else self.document_prefix
        # encode_query / encode_document (sentence-transformers >= 5) also route asymmetric (Router) models;
        # an explicit prompt, "" included, keeps a model's default_prompt_name from sneaking in.
        encode = getattr(model, f"encode_{role}", None) or model.encode
        x = encode(texts, prompt=prefix, batch_size=self.batch_size, show_progress_bar=False,
                   convert_to_numpy=True, normalize_embeddings=False)
        x = np.asarray(x, dtype=np.float32).reshape(len(texts), -1)
        if self.truncate_dim is not None:
            if self.truncate_dim > x.shape[1]:
                raise ValueError(f"truncate_dim={self.truncate_dim} is larger than the {x.shape[1]} dimensions "
                                 f"of {self.model_name_or_path}")
            x = x[:, : self.truncate_dim]
        if self.normalize:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norms > 0, norms, 1.0)  # an all-zero vector (e.g. no known token) stays zero
        if self._vectors is not None and x.shape[1] != self._vectors.dim:
            raise ModelLoadError(f"{self.model_name_or_path} gives {x.shape[1]}-d vectors but this index holds "
                                 f"{self._vectors.dim}-d ones; it was built with another model or truncate_dim")
        return np.ascontiguousarray(x, dtype=np.float32)

    # ----------------------------------------------------------------- search
    def search(self, query: str, k: int = 10) -> Ranking:
        """The ``min(k, len(self))`` passages closest to ``query``, best first.

        A query whose vector is all zero (a static model that knows none of
        its tokens) gives empty arrays, as does ``k == 0``.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for a list")
        _check_k(k)
        if k == 0 or len(self) == 0:
            return _empty()
        return self.search_vectors(self.encode_queries([query]), k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[Ranking]:
        """:meth:`search` for each query, in order (encoded in batches)."""
        queries = check_texts(queries, what="queries")
        _check_k(k)
        if not queries or k == 0 or len(self) == 0:
            return [_empty() for _ in queries]
        return self.search_vectors(self.encode_queries(queries), k)

    def search_vectors(self, queries: np.ndarray, k: int = 10) -> list[Ranking]:
        """Search with query vectors already encoded (float32 ``[n, dim]``); one :class:`Ranking` per row."""
        _check_k(k)
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2:
            raise ValueError(f"queries must be float32 [n, dim], got shape {q.shape}")
        if self._vectors is None or k == 0:
            return [_empty() for _ in range(q.shape[0])]
        scores, pids = self._vectors.search(q, k)
        out = []
        for row_q, row_s, row_p in zip(q, scores, pids):
            if not np.any(row_q):
                out.append(_empty())
                continue
            keep = row_p >= 0
            out.append(Ranking(row_p[keep], row_s[keep]))
        return out

    # ---------------------------------------------------------------- persist
    def save(self, folder: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the index to ``folder`` atomically (JSON + a faiss file); returns the folder.

        An existing index of this kind there is replaced when ``overwrite``;
        any other non-empty folder is refused with ``IndexExistsError``.
        """
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            if not (folder / self.MANIFEST).is_file():
                raise IndexExistsError(f"{folder} exists and is not a colja {self.name} first stage; "
                                       "choose an empty or new folder")
            if not overwrite:
                raise IndexExistsError(f"a {self.name} first stage already exists at {folder}; "
                                       "pass overwrite=True to replace it")
        vectors = self._vectors
        if vectors is None:  # nothing added yet: an empty store of the model's dimension
            vectors = VectorIndex(self.encode_documents([""]).shape[1], self.vector_settings)
        manifest = self._manifest(vectors)
        with atomic_folder(folder) as tmp:
            vectors.write(tmp / VECTORS_FILE)
            write_json(tmp / self.MANIFEST, manifest, fsync=False)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, mmap: bool = False, *, model: Any = None,
             device: str | None = None, batch_size: int | None = None,
             trust_remote_code: bool = False) -> "DenseRetriever":
        """Read an index written by :meth:`save`; ``mmap=True`` maps the vectors instead of reading them.

        The model is not loaded until a text needs encoding. ``model``: a
        loaded ``SentenceTransformer`` (or another id/folder of the same model,
        e.g. after moving it) to use instead of the saved one; ``device`` /
        ``batch_size`` override the saved ones. ``trust_remote_code``: whether
        the model may run its own code — the caller decides, never the saved
        folder (whose recorded value is only kept as ``saved_trust_remote_code``);
        without it such a model is refused with :class:`~colja.errors.UntrustedCodeError`.
        """
        folder = Path(folder)
        path = folder / cls.MANIFEST
        if not path.is_file():
            raise IndexNotFoundError(f"no {cls.name} first stage at {folder}: {cls.MANIFEST} is missing")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"{path} is not valid JSON ({e}); rebuild the first stage") from e
        if not isinstance(manifest, dict) or manifest.get("format") != cls.FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise IndexFormatError(f"{path} is not a colja {cls.name} manifest (format={found!r})")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IndexFormatError(f"{folder} has {cls.name} format version {version!r}, this colja reads up to "
                                   f"{FORMAT_VERSION}; upgrade colja or rebuild the first stage")
        try:
            m, v = manifest["model"], manifest["vector_index"]
            settings = VectorIndexSettings.from_dict({k: v[k] for k in ("hnsw_threshold", "hnsw_m",
                                                                        "ef_construction", "ef_search")})
            name_or_path = m["name_or_path"]
            kwargs = dict(query_prefix=m["query_prefix"], document_prefix=m["document_prefix"],
                          normalize=m["normalize"], truncate_dim=m["truncate_dim"], max_length=m["max_length"],
                          trust_remote_code=bool(trust_remote_code), revision=m["revision"],
                          batch_size=batch_size or manifest["batch_size"], device=device, **settings.to_dict())
            num_docs, dim = int(manifest["num_docs"]), int(manifest["dim"])
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFormatError(f"{path} is missing or has a bad setting ({e!r}); rebuild the first stage") from e
        vectors = VectorIndex.read(folder / VECTORS_FILE, settings, mmap=mmap)
        if len(vectors) != num_docs or vectors.dim != dim:
            raise IndexFormatError(f"{cls.name} first stage at {folder} is inconsistent: {VECTORS_FILE} holds "
                                   f"{len(vectors)} x {vectors.dim} vectors, {cls.MANIFEST} says {num_docs} x {dim}; "
                                   "rebuild it")
        if isinstance(model, (str, os.PathLike)):
            name_or_path, model = os.fspath(model), None
        retriever = cls(name_or_path, model=model, **kwargs)
        retriever._prefixes = (m["query_prefix"], m["document_prefix"], dict(m.get("prefix_source", {})))
        retriever._modules = retriever._modules or m.get("modules")
        retriever._vectors = vectors
        retriever.saved_trust_remote_code = bool(m.get("trust_remote_code"))
        return retriever

    def _manifest(self, vectors: VectorIndex) -> dict[str, Any]:
        query_prefix, document_prefix, source = self._resolved_prefixes()
        return {
            "format": self.FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "num_docs": len(vectors),
            "dim": vectors.dim,
            "model": {
                "name_or_path": self.model_name_or_path,
                "revision": self.revision,
                "trust_remote_code": self.trust_remote_code,
                "query_prefix": query_prefix,
                "document_prefix": document_prefix,
                "prefix_source": source,
                "normalize": self.normalize,
                "truncate_dim": self.truncate_dim,
                "max_length": self.max_length,
                "modules": self._modules,
            },
            "vector_index": {"kind": vectors.kind, "file": VECTORS_FILE, **self.vector_settings.to_dict()},
            "batch_size": self.batch_size,
            "versions": _versions(),
        }

    # ------------------------------------------------------------------ model
    @property
    def model(self) -> Any:
        """The ``SentenceTransformer``, loaded on first use."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._adopt_model(self._load_model())
        return self._model

    def _load_model(self) -> Any:
        st = _import_sentence_transformers()
        name = self.model_name_or_path
        if not self.trust_remote_code:
            custom = custom_module_types(name)
            if custom is None and name in self.REMOTE_CODE_MODELS:
                custom = [self.REMOTE_CODE_MODELS[name]]
            if custom:
                raise UntrustedCodeError(_remote_code_message(name, ", ".join(custom)))
        kwargs: dict[str, Any] = {"device": self.device, "trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        kwargs.update(hub_load_options(str(name), revision=self.revision, loader=type(self).__name__))
        logger.info("loading sentence-transformers model %s", name)
        try:
            model = st.SentenceTransformer(name, **kwargs)
        except ValueError as e:
            if "trust_remote_code" in str(e):
                raise UntrustedCodeError(_remote_code_message(name, "a module outside sentence-transformers")) from e
            raise ModelLoadError(f"could not load the sentence-transformers model {name!r}: {e}") from e
        except OSError as e:
            raise ModelLoadError(f"could not load the sentence-transformers model {name!r} ({e}); check the hub id "
                                 "or folder, and that it is downloaded when HF_HUB_OFFLINE=1 (a saved index can "
                                 "use a model found elsewhere: load(folder, model=...))") from e
        return model

    def _adopt_model(self, model: Any) -> None:
        if self.max_length is not None:
            model.max_seq_length = self.max_length
        self._modules = [_module_info(m) for m in _modules_of(model)] or self._modules
        self._model = model

    def _resolved_prefixes(self) -> tuple[str, str, dict[str, str]]:
        if self._prefixes is None:
            q, d = self._given_prefixes
            prompts = getattr(self.model, "prompts", None) if q is None or d is None else None
            self._prefixes = resolve_prefixes(self.model_name_or_path, prompts, q, d)
            logger.info("%s prefixes for %s: query %r, document %r (%s)", self.name, self.model_name_or_path,
                        self._prefixes[0], self._prefixes[1], self._prefixes[2])
        return self._prefixes

    @property
    def query_prefix(self) -> str:
        """Text put before every query (may load the model to read its prompts)."""
        return self._resolved_prefixes()[0]

    @property
    def document_prefix(self) -> str:
        """Text put before every passage (may load the model to read its prompts)."""
        return self._resolved_prefixes()[1]

    # ------------------------------------------------------------ properties
    @property
    def dim(self) -> int | None:
        """Vector dimension, once passages are indexed."""
        return self._vectors.dim if self._vectors is not None else None

    @property
    def kind(self) -> str | None:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate), once passages are indexed."""
        return self._vectors.kind if self._vectors is not None else None

    def __len__(self) -> int:
        return len(self._vectors) if self._vectors is not None else 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.model_name_or_path!r}, num_docs={len(self)}, dim={self.dim}, "
                f"kind={self.kind!r}, normalize={self.normalize}, truncate_dim={self.truncate_dim})")


def _remote_code_message(name: str, what: str) -> str:
    return (f"the model {name!r} runs its own Python code ({what}); colja only loads such a model when you pass "
            "trust_remote_code=True (to the retriever, or to Index.load for a stored first stage) — "
            "do so only if you trust its repository or folder")


def _modules_of(model: Any) -> list[Any]:
    try:
        return list(model)
    except TypeError:
        return []


def _module_info(module: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": f"{type(module).__module__}.{type(module).__qualname__}"}
    get_config = getattr(module, "get_config_dict", None)
    if type(module).__name__ == "Pooling" and callable(get_config):
        try:
            info["config"] = json.loads(json.dumps(get_config(), default=str))
        except (TypeError, ValueError):
            pass
    return info


def _check_optional_positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return int(value)


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")


def _empty() -> Ranking:
    return Ranking(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("colja", "sentence-transformers", "transformers", "torch", "faiss-cpu", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


__all__ = ["DOCUMENT_PROMPT_NAMES", "KNOWN_PREFIXES", "QUERY_PROMPT_NAMES", "DenseRetriever", "custom_module_types",
           "hub_id_of", "resolve_prefixes"]
