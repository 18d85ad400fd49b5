"""Evaluation sets: BEIR folders and reranking (candidate list) sets.

BEIR folder (``load_beir``)::

    corpus.jsonl     {"_id": str, "title": str (optional), "text": str} per line
    queries.jsonl    {"_id": str, "text": str} per line
    qrels.tsv        query-id<TAB>corpus-id<TAB>score, header line first
                     (or qrels/<split>.tsv, as in standard BEIR downloads)

Reranking JSONL (``load_reranking``), one query per line::

    {"query": "日本の首都は？", "query_id": "q1",            # query_id optional
     "candidates": [{"id": "d7", "title": "東京", "text": "...", "label": 1},
                    {"text": "...", "label": 0}]}          # id, title optional

``label`` is an int grade (0 = not relevant, >= 1 relevant). Missing ids become
``q<row>`` for queries (0-based row) and ``<query_id>/<position>`` for
candidates. Flat Hugging Face layouts (one row per query-candidate pair, as in
JQaRA) go through :func:`from_hf_dataset`.
"""

from __future__ import annotations

import itertools
import logging
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from colja._jsonl import iter_jsonl_objects
from colja.firststage.bm25 import passage_text

logger = logging.getLogger(__name__)


@dataclass
class BeirData:
    """A BEIR retrieval set.

    ``corpus``: doc id -> ``{"title", "text"}`` in file order; ``queries``: query
    id -> text (only queries with qrels); ``qrels``: query id -> {doc id: grade}.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def doc_ids(self) -> list[str]:
        """Doc ids in corpus order (pid ``i`` of an index built from :meth:`passages`)."""
        return list(self.corpus)

    def passages(self, *, with_title: bool = True) -> list[str]:
        """Corpus texts in order; ``title + "\\n" + text`` when ``with_title`` (see ``passage_text``)."""
        if with_title:
            return [passage_text(d["title"], d["text"]) for d in self.corpus.values()]
        return [d["text"] for d in self.corpus.values()]

    def __repr__(self) -> str:
        n_qrels = sum(map(len, self.qrels.values()))
        return f"BeirData(docs={len(self.corpus)}, queries={len(self.queries)}, qrels={n_qrels})"


@dataclass
class RerankingData:
    """A reranking set: each query comes with its own candidates.

    ``queries``: query id -> text; ``candidates``: query id -> list of
    ``{"id", "title", "text"}`` in the given order; ``qrels``: query id ->
    {candidate id: label} (labels 0 included).
    """

    queries: dict[str, str]
    candidates: dict[str, list[dict[str, str]]]
    qrels: dict[str, dict[str, int]]

    def __repr__(self) -> str:
        n = sum(map(len, self.candidates.values()))
        return f"RerankingData(queries={len(self.queries)}, candidates={n})"


# ---------------------------------------------------------------------- BEIR
def load_beir(folder: str | os.PathLike, split: str = "test") -> BeirData:
    """Read a BEIR folder; ``split`` picks ``qrels/<split>.tsv`` when there is no ``qrels.tsv``.

    Queries without qrels are dropped (as BEIR's loader does), and so are qrels of
    queries missing from ``queries.jsonl``; both are logged. Raises
    ``FileNotFoundError`` naming a missing file and ``ValueError`` naming the
    file and line of a malformed row.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no BEIR dataset folder at {folder}")
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise FileNotFoundError(f"BEIR folder {folder} has no {path.name}")
    qrels_path = folder / "qrels.tsv"
    if not qrels_path.is_file():
        qrels_path = folder / "qrels" / f"{split}.tsv"
        if not qrels_path.is_file():
            raise FileNotFoundError(f"BEIR folder {folder} has no qrels.tsv or qrels/{split}.tsv "
                                    "(pass split= to pick another qrels/<split>.tsv)")

    corpus: dict[str, dict[str, str]] = {}
    for lineno, row in iter_jsonl_objects(corpus_path):
        doc_id = _field(row, "_id", corpus_path, lineno, id_like=True)
        if doc_id in corpus:
            raise ValueError(f"{corpus_path}:{lineno}: duplicate doc id {doc_id!r}")
        title = row.get("title") or ""
        corpus[doc_id] = {"title": str(title), "text": _field(row, "text", corpus_path, lineno)}

    all_queries: dict[str, str] = {}
    for lineno, row in iter_jsonl_objects(queries_path):
        qid = _field(row, "_id", queries_path, lineno, id_like=True)
        if qid in all_queries:
            raise ValueError(f"{queries_path}:{lineno}: duplicate query id {qid!r}")
        all_queries[qid] = _field(row, "text", queries_path, lineno)

    qrels = _read_qrels(qrels_path)
    unknown_q = [q for q in qrels if q not in all_queries]
    for q in unknown_q:
        del qrels[q]
    unknown_d = sum(1 for rels in qrels.values() for d in rels if d not in corpus)
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    if unknown_q:
        logger.warning("%s: dropped qrels of %d query ids not in queries.jsonl (e.g. %r)", qrels_path,
                       len(unknown_q), unknown_q[0])
    if unknown_d:
        logger.warning("%s: %d qrels name doc ids that are not in corpus.jsonl", qrels_path, unknown_d)
    if len(queries) < len(all_queries):
        logger.info("%s: kept %d of %d queries (those with qrels)", folder, len(queries), len(all_queries))
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``qid<TAB>docid<TAB>score`` rows (a 4-column TREC ``qid 0 docid score`` row works too)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) == 4:
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected query-id<TAB>corpus-id<TAB>score, "
                                 f"got {len(parts)} fields: {line[:80]!r}")
            qid, doc_id, score = (p.strip() for p in parts)
            try:
                grade = int(score)
            except ValueError:
                try:
                    as_float = float(score)
                except ValueError:
                    as_float = None
                if lineno == 1 and as_float is None:
                    continue  # header line
                if as_float is None or not as_float.is_integer():
                    raise ValueError(f"{path}:{lineno}: score {score!r} is not an integer grade") from None
                grade = int(as_float)
            qrels.setdefault(qid, {})[doc_id] = grade
    return qrels


# ----------------------------------------------------------------- reranking
def load_reranking(source: str | os.PathLike | Iterable[Mapping[str, Any]]) -> RerankingData:
    """Read a reranking set from a JSONL file or from rows already in memory.

    ``source`` is a path to the JSONL format in the module docstring, or any
    iterable of such rows (a list of dicts, a ``datasets.Dataset`` with
    ``query`` / ``candidates`` columns). Raises ``ValueError`` naming the row of
    a malformed entry.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no reranking file at {path}")
        rows: Iterable[tuple[int, Mapping[str, Any]]] = iter_jsonl_objects(path)
        where = str(path)
    else:
        rows = ((i + 1, row) for i, row in enumerate(source))
        where = "row"
    data = RerankingData({}, {}, {})
    for n, (lineno, row) in enumerate(rows):
        loc = f"{where}:{lineno}" if where != "row" else f"row {lineno}"
        _add_query(data, row, n, loc)
    if not data.queries:
        raise ValueError(f"the reranking set ({where if where != 'row' else 'rows given'}) holds no queries")
    return data


def _add_query(data: RerankingData, row: Mapping[str, Any], n: int, loc: str) -> None:
    if not isinstance(row, Mapping):
        raise ValueError(f"{loc}: expected an object with 'query' and 'candidates', got {type(row).__name__}")
    query = row.get("query")
    if not isinstance(query, str):
        raise ValueError(f"{loc}: 'query' must be a string, got {query!r:.60}")
    qid = row.get("query_id")
    qid = f"q{n}" if qid is None else str(qid)
    if qid in data.queries:
        raise ValueError(f"{loc}: duplicate query_id {qid!r}")
    cands = row.get("candidates")
    if not isinstance(cands, (list, tuple)):
        raise ValueError(f"{loc}: 'candidates' must be a list of objects, got {type(cands).__name__}")
    items: list[dict[str, str]] = []
    labels: dict[str, int] = {}
    for j, c in enumerate(cands):
        if not isinstance(c, Mapping):
            raise ValueError(f"{loc}: candidate {j} must be an object, got {type(c).__name__}")
        cid = f"{qid}/{j}" if c.get("id") is None else str(c["id"])
        if cid in labels:
            raise ValueError(f"{loc}: candidate id {cid!r} appears twice for query {qid!r}")
        text = c.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{loc}: candidate {j} has no 'text' string")
        items.append({"id": cid, "title": str(c.get("title") or ""), "text": text})
        labels[cid] = _label(c.get("label"), f"{loc}: candidate {j}")
    data.queries[qid] = query
    data.candidates[qid] = items
    data.qrels[qid] = labels


def from_hf_dataset(ds: Iterable[Mapping[str, Any]], *, query_column: str = "query", text_column: str = "text",
                    label_column: str = "label", query_id_column: str | None = None,
                    doc_id_column: str | None = None, title_column: str | None = None) -> RerankingData:
    """A reranking set from a ``datasets.Dataset`` (or any iterable of dict rows).

    Rows with a ``candidates`` column are read as in :func:`load_reranking`.
    Otherwise each row is one query-candidate pair, grouped by
    ``query_id_column`` (or by the query text when it is None), e.g. for a
    JQaRA-style layout ``from_hf_dataset(ds, query_column="question",
    query_id_column="q_id", doc_id_column="passage_row_id", title_column="title")``.
    """
    it = iter(ds)
    first = next(it, None)
    if first is None:
        raise ValueError("the dataset holds no rows")
    rows = itertools.chain([first], it)
    if "candidates" in first:
        return load_reranking(rows)
    data = RerankingData({}, {}, {})
    key_to_qid: dict[Any, str] = {}
    for i, row in enumerate(rows):
        loc = f"row {i}"
        for col in (query_column, text_column, label_column, query_id_column, doc_id_column, title_column):
            if col is not None and col not in row:
                raise ValueError(f"{loc}: no column {col!r}; columns are {sorted(row)}")
        query = row[query_column]
        key = row[query_id_column] if query_id_column else query
        qid = key_to_qid.get(key)
        if qid is None:
            qid = key_to_qid[key] = str(key) if query_id_column else f"q{len(key_to_qid)}"
            data.queries[qid], data.candidates[qid], data.qrels[qid] = str(query), [], {}
        cands = data.candidates[qid]
        cid = str(row[doc_id_column]) if doc_id_column else f"{qid}/{len(cands)}"
        if cid in data.qrels[qid]:
            raise ValueError(f"{loc}: candidate id {cid!r} appears twice for query {qid!r}")
        title = row[title_column] if title_column else ""
        cands.append({"id": cid, "title": str(title or ""), "text": str(row[text_column])})
        data.qrels[qid][cid] = _label(row[label_column], loc)
    return data


# ------------------------------------------------------------------- helpers
def _field(row: Mapping[str, Any], name: str, path: Path, lineno: int, *, id_like: bool = False) -> str:
    value = row.get(name)
    if id_like and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise ValueError(f"{path}:{lineno}: field {name!r} is {what}")
    return value


def _label(value: Any, loc: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        if value < 0:
            raise ValueError(f"{loc}: label {value!r} is negative; use 0 for not relevant")
        return int(value)
    raise ValueError(f"{loc}: 'label' must be an int grade (0 = not relevant, 1 = relevant), got {value!r}")


__all__ = ["BeirData", "RerankingData", "from_hf_dataset", "load_beir", "load_reranking"]
