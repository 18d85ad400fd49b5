"""The JSON the server and :class:`~colja.server.client.Client` exchange: hits, results, errors.

No web framework here, so the client needs only ``httpx``. An error travels
as ``{"error": {"type": "FilterError", "message": "...", "status": 400}}``;
the client raises the same class the in-process index would have raised.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from colja import errors as colja_errors
from colja.errors import AuthenticationError, ServerError
from colja.search.results import Hit, SearchResults

#: built-in exception types an index raises for bad input, by name
_BUILTINS: dict[str, type[Exception]] = {"ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError}


def hit_to_json(hit: Hit) -> dict[str, Any]:
    return {"doc_id": hit.doc_id, "score": hit.score, "rank": hit.rank, "text": hit.text, "metadata": hit.metadata,
            "normalized_score": hit.normalized_score, "pid": hit.pid, "parent_id": hit.parent_id,
            "span": list(hit.span) if hit.span is not None else None}


def hit_from_json(row: dict[str, Any]) -> Hit:
    span = row.get("span")
    return Hit(doc_id=row["doc_id"], score=float(row["score"]), rank=int(row["rank"]), text=row.get("text"),
               metadata=row.get("metadata") or {}, normalized_score=row.get("normalized_score"),
               pid=int(row.get("pid", -1)), parent_id=row.get("parent_id"),
               span=tuple(span) if span is not None else None)


def results_to_json(results: SearchResults) -> dict[str, Any]:
    """``scores`` with ``null`` for the ``-inf`` padding (JSON has no infinity), ``pids`` with ``-1``."""
    scores = [[None if not math.isfinite(s) else float(s) for s in row] for row in results.scores.tolist()]
    return {"scores": scores, "pids": results.pids.tolist()}


def results_from_json(body: dict[str, Any]) -> SearchResults:
    scores = np.array([[-np.inf if s is None else s for s in row] for row in body["scores"]], dtype=np.float32)
    pids = np.array(body["pids"], dtype=np.int64)
    if scores.ndim != 2:
        scores, pids = scores.reshape(len(body["scores"]), -1), pids.reshape(len(body["pids"]), -1)
    return SearchResults(scores, pids)


def error_status(exc: BaseException) -> int:
    """The HTTP status of an exception an index raised for a request (4xx: the request was wrong)."""
    if isinstance(exc, colja_errors.UnknownDocumentError):
        return 404
    if isinstance(exc, (colja_errors.IndexExistsError,)):
        return 409
    if isinstance(exc, colja_errors.ModelLoadError):
        return 409  # the index cannot encode (no model recorded): a request the server cannot serve as configured
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return 400
    return 500


def error_body(exc: BaseException, status: int) -> dict[str, Any]:
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return {"error": {"type": type(exc).__name__, "message": message, "status": status}}


def error_from_json(status: int, body: Any) -> Exception:
    """The exception a client raises for an error response: the server's class when it is one of colja's
    errors or a built-in ``ValueError`` / ``TypeError`` / ``KeyError``, else :class:`ServerError`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ServerError(status, f"HTTP {status}: {str(body)[:500]}")
    name, message = str(error.get("type", "")), str(error.get("message", ""))
    cls = getattr(colja_errors, name, None) if name in colja_errors.__all__ else _BUILTINS.get(name)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, ServerError) and status < 500:
        return cls(message)
    if status in (401, 403):
        return AuthenticationError(status, message)
    return ServerError(status, f"HTTP {status} {name}: {message}")


__all__ = ["hit_to_json", "hit_from_json", "results_to_json", "results_from_json", "error_status", "error_body",
           "error_from_json"]
