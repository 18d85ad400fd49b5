"""Why a passage matched a query: the MaxSim alignment, token by token.

A late-interaction score is Σ over query vectors of the best dot product with
any passage vector. :func:`explain_passage` returns, for each query vector,
the passage token it matched best, that token's characters in the passage
text and the dot product; the matches' scores add up to the passage's exact
MaxSim score over the stored vectors (for a compressed index: the
decompressed vectors its final exact stage scores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from colja.model.tokens import TextToken, document_tokens, query_tokens
from colja.search.engine import as_query_tensor, check_query


@dataclass(frozen=True)
class TokenMatch:
    """One query vector's best passage vector.

    ``query_token`` / ``query_start`` / ``query_end``: the query token and its
    characters in the query; ``passage_index``: which passage token matched
    (an index into :attr:`Explanation.passage_tokens`); ``passage_token`` /
    ``start`` / ``end``: that token and its characters in the passage text
    (None for ``[CLS]``, ``[D]``, ``[SEP]``); ``score``: the dot product.
    """

    query_index: int
    query_token: str
    query_start: int | None
    query_end: int | None
    passage_index: int
    passage_token: str
    start: int | None
    end: int | None
    score: float


@dataclass(frozen=True)
class Explanation:
    """The MaxSim alignment of ``query`` with one passage; ``score`` = Σ ``matches[i].score``."""

    query: str
    doc_id: str
    text: str
    score: float
    matches: list[TokenMatch] = field(default_factory=list)
    passage_tokens: list[TextToken] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_doc_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str):
        raise TypeError(f"doc_id must be a str (a hit's doc_id), got {type(doc_id).__name__}")
    return doc_id


def explain_passage(model: Any, query: str, doc_id: str, text: str | None, vectors: torch.Tensor) -> Explanation:
    """Align ``query`` (encoded with ``model``) with a passage's stored ``vectors`` ``[n, dim]``."""
    check_query(query)
    if text is None:
        raise ValueError(f"passage {doc_id!r} has no stored text to explain (the index was built from vectors)")
    q_tokens = query_tokens(model, query)
    d_tokens = document_tokens(model, text)
    D = vectors.float()
    if D.shape[0] != len(d_tokens):
        raise ValueError(f"passage {doc_id!r} has {D.shape[0]} stored vectors but the model makes {len(d_tokens)} "
                         "tokens of its text; explain needs the model the index was built with")
    Q = as_query_tensor(model.encode_queries([query]), D.shape[1] if D.numel() else int(model.dim))[0]
    Q = Q[: len(q_tokens)]
    matches: list[TokenMatch] = []
    if D.shape[0]:
        best_scores, best = (Q @ D.T).max(dim=1)
        for i, (qt, s, j) in enumerate(zip(q_tokens, best_scores.tolist(), best.tolist())):
            if not bool(Q[i].any()):  # a padding row scores nothing
                continue
            dt = d_tokens[j]
            matches.append(TokenMatch(i, qt.token, qt.start, qt.end, j, dt.token, dt.start, dt.end, float(s)))
    return Explanation(query=query, doc_id=doc_id, text=text, score=float(sum(m.score for m in matches)),
                       matches=matches, passage_tokens=d_tokens)


def explain_best(model: Any, query: str, passages: list[tuple[str, str | None, torch.Tensor]]) -> Explanation:
    """The explanation of the best-scoring of ``passages`` (``(doc_id, text, vectors)``; the passages
    of one split document share its id)."""
    found = [explain_passage(model, query, doc_id, text, vectors) for doc_id, text, vectors in passages]
    return max(found, key=lambda e: e.score)


__all__ = ["TokenMatch", "Explanation", "explain_passage", "explain_best", "check_doc_id"]
