"""What both framework adapters share: searchable checks, hit metadata, colja errors as ``ValueError``, reranking."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator, Mapping, Sequence

from colja.errors import ColjaError, MissingDependencyError, UnknownDocumentError

#: metadata keys the adapters add to a document's own metadata
HIT_KEYS = ("doc_id", "score", "rank", "normalized_score", "parent_id", "span")


def require(module: str, extra: str) -> Any:
    """Import ``module`` or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is not installed; install it with: pip install \"colja[{extra}]\"") from exc


def check_searchable(index: Any) -> Any:
    """``index`` if it has the read side of the searchable contract (``search``), else a ``TypeError``."""
    if not callable(getattr(index, "search", None)):
        raise TypeError(f"index must be a colja searchable (Index, InMemoryIndex, Client) with a search method; "
                        f"got {type(index).__name__}")
    return index


def check_writable(index: Any) -> Any:
    """``index`` if it can also ``add`` and ``delete`` documents, else a ``TypeError``."""
    check_searchable(index)
    missing = [m for m in ("add", "delete") if not callable(getattr(index, m, None))]
    if missing:
        raise TypeError(f"{type(index).__name__} cannot be written (no {' / '.join(missing)} method); "
                        "use an Index, an InMemoryIndex or a Client")
    return index


def search_options(k: int, where: Mapping[str, Any] | None, first_stage: Any, group_by_doc: bool) -> dict[str, Any]:
    """Keyword arguments of ``search``: ``first_stage`` only when set, so searchables without it still work."""
    options: dict[str, Any] = {"k": k, "where": dict(where) if where is not None else None,
                               "group_by_doc": group_by_doc}
    if first_stage is not None:
        options["first_stage"] = first_stage
    return options


def merge_where(where: Mapping[str, Any] | None, extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Both filters must hold: ``$and`` of the two, or whichever is given."""
    if not where:
        return dict(extra) if extra else None
    if not extra:
        return dict(where)
    return {"$and": [dict(where), dict(extra)]}


def hit_metadata(hit: Any) -> dict[str, Any]:
    """The document's own metadata plus the hit's id, scores, rank and (for split documents) parent and span."""
    meta = dict(getattr(hit, "metadata", None) or {})
    meta.update(doc_id=hit.doc_id, score=float(hit.score), rank=int(hit.rank))
    if getattr(hit, "normalized_score", None) is not None:
        meta["normalized_score"] = float(hit.normalized_score)
    if getattr(hit, "parent_id", None) is not None:
        meta["parent_id"] = hit.parent_id
        meta["span"] = tuple(hit.span) if hit.span is not None else None
    return meta


def own_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A document's metadata without the keys a search added (so a found document can be added elsewhere)."""
    return {k: v for k, v in (metadata or {}).items() if k not in HIT_KEYS}


@contextlib.contextmanager
def as_value_error() -> Iterator[None]:
    """colja errors that are not already ``ValueError`` (an unknown id is a ``KeyError``) re-raised as
    ``ValueError`` with colja's message, as the frameworks expect; the original is chained."""
    try:
        yield
    except ValueError:
        raise
    except (UnknownDocumentError, ColjaError) as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        message = exc.args[0] if exc.args else str(exc)
        raise ValueError(message) from exc


class Reranker:
    """MaxSim reranking of candidate texts with one encoder, loaded once (a name or folder on first use)."""

    def __init__(self, model: Any):
        self._given = model
        self._encoder: Any = None

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from colja.model.encoder import resolve_model

            self._encoder = resolve_model(self._given)
        return self._encoder

    def rerank(self, query: str, texts: Sequence[str], top_n: int | None) -> list[Any]:
        """``colja.rerank`` hits: ``pid`` is the position in ``texts``, best first, at most ``top_n``."""
        from colja.search.rerank import rerank

        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0):
            raise ValueError(f"top_n must be a positive int or None, got {top_n!r}")
        if not texts:
            return []
        return rerank(query, list(texts), k=top_n, model=self.encoder)
