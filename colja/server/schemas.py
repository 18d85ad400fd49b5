"""Request bodies of the HTTP API (the OpenAPI schema at ``/docs``).

Values are passed to the index as they come, so a wrong type or value gets
the same error, with the same message, as the Python call would raise; the
annotations say what is expected.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid")

_K = Field(10, description="number of hits (a positive int)", json_schema_extra={"type": "integer", "minimum": 1})
_WHERE = Field(None, description='metadata filter, e.g. {"source": "wiki", "year": {"$gte": 2020}}',
               json_schema_extra={"type": "object"})
_FIRST = Field(None, description='"plaid" (default), a stored first stage ("bm25", "dense", "static"), '
                                 '"hybrid", or a list of names to fuse')
_CANDIDATES = Field(None, description="first-stage candidates reranked (default max(100, 10k))",
                    json_schema_extra={"type": "integer"})
_GROUP = Field(False, description="best passage of each document", json_schema_extra={"type": "boolean"})
_OPTIONS = Field(None, description="search settings: ncells, centroid_score_threshold, ndocs, nfinal, exhaustive",
                 json_schema_extra={"type": "object"})


class _Search(BaseModel):
    model_config = _STRICT
    k: Any = _K
    where: Any = _WHERE
    first_stage: Any = _FIRST
    candidates: Any = _CANDIDATES
    group_by_doc: Any = _GROUP
    options: Any = _OPTIONS

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``Index.search``: the ones the request gave (an in-memory index takes no
        ``first_stage`` / ``candidates``, and gets the same ``TypeError`` as in Python when they are sent)."""
        out: dict[str, Any] = {"k": self.k, "where": self.where, "group_by_doc": self.group_by_doc}
        for name in ("first_stage", "candidates"):
            if name in self.model_fields_set:
                out[name] = getattr(self, name)
        if self.options is not None:
            if not isinstance(self.options, dict):
                raise TypeError(f"options must be an object of search settings, got {type(self.options).__name__}")
            clash = sorted(set(self.options) & {"k", "where", "group_by_doc", "first_stage", "candidates", "query"})
            if clash:
                raise TypeError(f"options must not repeat the request's own fields: {clash}")
            out.update(self.options)
        return out


class SearchRequest(_Search):
    query: Any = Field(..., description="the question (a str)", json_schema_extra={"type": "string"})


class SearchBatchRequest(_Search):
    queries: Any = Field(..., description="questions (a list of str)", json_schema_extra={"type": "array"})


class SearchEmbeddingsRequest(BaseModel):
    model_config = _STRICT
    Q: Any = Field(..., description="query vectors: [Lq, dim] or [n, Lq, dim] numbers")
    k: Any = _K
    where: Any = _WHERE
    group_by_doc: Any = _GROUP
    options: Any = _OPTIONS


class HitsRequest(BaseModel):
    model_config = _STRICT
    scores: Any = Field(..., description="one query's scores (null for padding)")
    pids: Any = Field(..., description="one query's passage ids (-1 for padding)")
    query_length: Any = Field(None, description="the query's vectors, for normalized_score")


class ExplainRequest(BaseModel):
    model_config = _STRICT
    query: Any = Field(..., json_schema_extra={"type": "string"})
    doc_id: Any = Field(..., description="a hit's doc_id", json_schema_extra={"type": "string"})


class RerankRequest(BaseModel):
    model_config = _STRICT
    query: Any = Field(..., json_schema_extra={"type": "string"})
    passages: Any = Field(..., description="candidate texts", json_schema_extra={"type": "array"})
    k: Any = Field(None, description="keep the best k (default all)")
    doc_ids: Any = Field(None, description="one id per passage (default: positions)")


class AddRequest(BaseModel):
    model_config = _STRICT
    texts: Any = Field(..., json_schema_extra={"type": "array"})
    doc_ids: Any = None
    metadata: Any = None
    split: Any = Field(None, description="split long documents into passages (on-disk indexes)")
    max_tokens: Any = None
    overlap: Any = None


class UpdateRequest(BaseModel):
    model_config = _STRICT
    doc_ids: Any = Field(..., json_schema_extra={"type": "array"})
    texts: Any = Field(..., json_schema_extra={"type": "array"})
    metadata: Any = Field(None, description="null keeps each document's metadata")
    split: Any = None
    max_tokens: Any = None
    overlap: Any = None


class DeleteRequest(BaseModel):
    model_config = _STRICT
    doc_ids: Any = Field(..., json_schema_extra={"type": "array"})


def given(model: BaseModel, *names: str) -> dict[str, Any]:
    """The named fields the request set (so an index's own defaults apply to the rest)."""
    return {n: getattr(model, n) for n in names if n in model.model_fields_set}


__all__ = ["SearchRequest", "SearchBatchRequest", "SearchEmbeddingsRequest", "HitsRequest", "ExplainRequest",
           "RerankRequest", "AddRequest", "UpdateRequest", "DeleteRequest", "given"]
