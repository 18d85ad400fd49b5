"""Training data: one query, its positive passage, hard negatives, optional teacher scores.

Every source becomes a list of :class:`TrainingExample`. The row schema, shared
by ``datasets.Dataset`` columns, JSONL lines and Python dicts::

    {"query": "日本で一番高い山は？",                       # str, not empty
     "positive": "富士山は標高3776メートルで…",              # str, not empty
     "negatives": ["北岳は日本で二番目に…", "…"],            # list of str, at least one
     "scores": [0.93, 0.41, 0.12]}                          # optional: teacher scores for
                                                            # [positive, *negatives]

Other keys are ignored. An n-way group (JaColBERTv2.5 style: one query, 32
passages, teacher scores) is a row whose ``negatives`` hold the other 31
passages and whose ``scores`` hold all 32 scores, positive first.

A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels.tsv``) needs a
negatives JSONL, as written by ``colja mine-negatives``, one line per query::

    {"query_id": "q1", "negatives": ["doc7", "doc3", …]}   # doc ids of the corpus

Each (query, relevant doc) pair of the qrels becomes one example; passages are
``title + "\\n" + text`` (the text BM25 and the evaluation use).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from colja._jsonl import iter_jsonl_objects
from colja.errors import TrainingDataError

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("query", "positive", "negatives")


@dataclass(frozen=True)
class TrainingExample:
    """One training group: ``query``, ``positive``, ``negatives`` and optional teacher ``scores``.

    ``scores`` (when given) has ``1 + len(negatives)`` floats, for
    ``[positive, *negatives]`` in that order.
    """

    query: str
    positive: str
    negatives: tuple[str, ...]
    scores: tuple[float, ...] | None = None

    @property
    def has_scores(self) -> bool:
        return self.scores is not None


# --------------------------------------------------------------------- rows
def example_from_row(row: Any, where: str) -> TrainingExample:
    """Check one row of the schema above; ``where`` (e.g. ``"data.jsonl:12"``) goes in errors."""
    if isinstance(row, TrainingExample):
        row = {"query": row.query, "positive": row.positive, "negatives": list(row.negatives),
               "scores": None if row.scores is None else list(row.scores)}
    if not isinstance(row, Mapping):
        raise TrainingDataError(f"{where}: expected an object with {', '.join(REQUIRED_FIELDS)}, got {type(row).__name__}")
    missing = [f for f in REQUIRED_FIELDS if row.get(f) is None]
    if missing:
        raise TrainingDataError(f"{where}: missing field {missing[0]!r}; each row needs "
                                f"'query' (str), 'positive' (str) and 'negatives' (list of str)")
    query = _text(row["query"], where, "query")
    positive = _text(row["positive"], where, "positive")
    negatives = row["negatives"]
    if isinstance(negatives, str) or not isinstance(negatives, Sequence):
        raise TrainingDataError(f"{where}: 'negatives' must be a list of strings, got {type(negatives).__name__}")
    if len(negatives) == 0:
        raise TrainingDataError(f"{where}: 'negatives' is empty; give at least one hard negative "
                                "(mine them with `colja mine-negatives`)")
    negs = tuple(_text(n, where, f"negatives[{i}]") for i, n in enumerate(negatives))
    scores = row.get("scores")
    if scores is not None:
        scores = _scores(scores, 1 + len(negs), where)
    return TrainingExample(query, positive, negs, scores)


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise TrainingDataError(f"{where}: {name!r} must be a string, got {type(value).__name__} ({value!r:.60})")
    if not value.strip():
        raise TrainingDataError(f"{where}: {name!r} is an empty string")
    return value


def _scores(values: Any, expected: int, where: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TrainingDataError(f"{where}: 'scores' must be a list of numbers, got {type(values).__name__}")
    if len(values) != expected:
        raise TrainingDataError(f"{where}: 'scores' has {len(values)} values, expected {expected} "
                                "(one for the positive, then one per negative, in order)")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise TrainingDataError(f"{where}: scores[{i}] must be a finite number, got {v!r}")
        out.append(float(v))
    return tuple(out)


def check_consistent(examples: Sequence[TrainingExample], what: str) -> None:
    """Refuse a mix of rows with and without teacher scores (distillation needs them all)."""
    if not examples:
        raise TrainingDataError(f"{what} holds no training examples")
    with_scores = [i for i, e in enumerate(examples) if e.has_scores]
    if with_scores and len(with_scores) != len(examples):
        first_without = next(i for i, e in enumerate(examples) if not e.has_scores)
        raise TrainingDataError(f"{what}: {len(with_scores)} of {len(examples)} rows have 'scores' but row "
                                f"{first_without} has none; give teacher scores on every row or on none")


# ------------------------------------------------------------------ sources
def from_rows(rows: Iterable[Any], *, what: str = "rows") -> list[TrainingExample]:
    """Examples from dicts, ``TrainingExample`` objects or a ``datasets.Dataset`` (errors name ``row i``)."""
    columns = getattr(rows, "column_names", None)
    if isinstance(columns, list):
        missing = [f for f in REQUIRED_FIELDS if f not in columns]
        if missing:
            raise TrainingDataError(f"the dataset has no column {missing[0]!r}; its columns are {columns}. "
                                    "Rename them, e.g. ds.rename_column('question', 'query')")
    examples = [example_from_row(row, f"row {i}") for i, row in enumerate(rows)]
    check_consistent(examples, what)
    return examples


def from_jsonl(path: str | os.PathLike) -> list[TrainingExample]:
    """Examples from a JSONL file of the schema above (errors name ``file:line``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training file at {path}")
    examples = [example_from_row(row, where) for where, row in _jsonl(path)]
    check_consistent(examples, str(path))
    return examples


def from_beir(folder: Any, negatives: str | os.PathLike, *, split: str = "test",
              with_title: bool = True) -> list[TrainingExample]:
    """Examples from a BEIR folder (or a loaded ``BeirData``) plus a negatives JSONL.

    Queries without a line in ``negatives`` are skipped (and counted in the
    log); negatives that are relevant in the qrels are dropped.
    """
    from colja.eval.datasets import BeirData, load_beir
    from colja.firststage.bm25 import passage_text

    data = folder if isinstance(folder, BeirData) else load_beir(folder, split=split)
    path = Path(negatives)
    if not path.is_file():
        raise FileNotFoundError(f"no negatives file at {path}; write one with "
                                f"`colja mine-negatives --data {folder} --out {path}`")

    def text(doc_id: str) -> str:
        d = data.corpus[doc_id]
        return passage_text(d["title"], d["text"]) if with_title else d["text"]

    examples: list[TrainingExample] = []
    seen: set[str] = set()
    for where, row in _jsonl(path):
        qid = row.get("query_id")
        if isinstance(qid, int) and not isinstance(qid, bool):
            qid = str(qid)
        if not isinstance(qid, str):
            raise TrainingDataError(f"{where}: 'query_id' must be a string, got {qid!r:.60}")
        if qid in seen:
            raise TrainingDataError(f"{where}: query_id {qid!r} appears twice")
        seen.add(qid)
        if qid not in data.queries:
            raise TrainingDataError(f"{where}: query_id {qid!r} is not a query with qrels in the BEIR folder")
        negs = row.get("negatives")
        if isinstance(negs, str) or not isinstance(negs, Sequence):
            raise TrainingDataError(f"{where}: 'negatives' must be a list of doc ids, got {type(negs).__name__}")
        rels = data.qrels[qid]
        neg_ids = []
        for i, d in enumerate(negs):
            if not isinstance(d, str):
                raise TrainingDataError(f"{where}: negatives[{i}] must be a doc id string, got {d!r:.60}")
            if d not in data.corpus:
                raise TrainingDataError(f"{where}: negatives[{i}] = {d!r} is not a doc id of the corpus")
            if rels.get(d, 0) < 1:
                neg_ids.append(d)
        if not neg_ids:
            raise TrainingDataError(f"{where}: query {qid!r} has no negatives (after dropping relevant docs); "
                                    "mine more with a larger --k")
        for pos in (d for d, g in rels.items() if g >= 1 and d in data.corpus):
            examples.append(TrainingExample(data.queries[qid], text(pos), tuple(text(d) for d in neg_ids)))
    skipped = len(data.queries) - len(seen)
    if skipped:
        logger.warning("%s: %d of %d queries have no mined negatives and are skipped", path, skipped, len(data.queries))
    check_consistent(examples, str(path))
    return examples


def load_training_data(source: Any, *, negatives: str | os.PathLike | None = None,
                       split: str = "test") -> list[TrainingExample]:
    """Read training data from whatever ``source`` is.

    * a list of :class:`TrainingExample` or dicts, or a ``datasets.Dataset``;
    * a ``.jsonl`` file (schema in the module docstring);
    * a BEIR folder plus ``negatives`` (a JSONL from ``colja mine-negatives``);
    * a folder written by ``Dataset.save_to_disk``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file():
            if negatives is not None:
                raise TrainingDataError(f"negatives= goes with a BEIR folder; {path} is a file whose rows carry "
                                        "their own negatives")
            return from_jsonl(path)
        if path.is_dir():
            if (path / "corpus.jsonl").is_file():
                if negatives is None:
                    raise TrainingDataError(f"{path} is a BEIR folder: pass negatives= (mine them with "
                                            f"`colja mine-negatives --data {path} --out negatives.jsonl`)")
                return from_beir(path, negatives, split=split)
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                import datasets

                return from_rows(datasets.load_from_disk(str(path)), what=str(path))
            raise TrainingDataError(f"{path} is neither a BEIR folder (corpus.jsonl) nor a saved datasets.Dataset")
        raise FileNotFoundError(f"no training data at {path}")
    if negatives is not None:
        from colja.eval.datasets import BeirData

        if isinstance(source, BeirData):
            return from_beir(source, negatives)
        raise TrainingDataError("negatives= goes with a BEIR folder; rows in memory carry their own negatives")
    if isinstance(source, Mapping):
        if source and all(hasattr(v, "column_names") for v in source.values()):
            raise TrainingDataError(f"got a DatasetDict with splits {sorted(source)}; pass one split, "
                                    f"e.g. data[{sorted(source)[0]!r}]")
        raise TrainingDataError("expected a list of rows or a datasets.Dataset, got a single dict; wrap it in a list")
    return from_rows(source)


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for lineno, row in iter_jsonl_objects(path, TrainingDataError):
        yield f"{path}:{lineno}", row


def write_jsonl(examples: Iterable[TrainingExample], path: str | os.PathLike) -> Path:
    """Write examples in the JSONL schema above (``scores`` only when present)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for e in examples:
            row: dict[str, Any] = {"query": e.query, "positive": e.positive, "negatives": list(e.negatives)}
            if e.scores is not None:
                row["scores"] = list(e.scores)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
