"""Reading the user's collections for the CLI: JSONL, CSV/TSV or plain text."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colja._jsonl import iter_jsonl_objects
from colja.errors import CollectionError

ID_FIELDS = ("_id", "id", "doc_id", "docid")


@dataclass
class Collection:
    texts: list[str] = field(default_factory=list)
    doc_ids: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None


def read_collection(path: str | Path, *, text_field: str = "text", id_field: str | None = None,
                    title_field: str | None = None) -> Collection:
    """Passages from ``path``: ``.jsonl`` (one object a line), ``.csv``/``.tsv`` (header row)
    or anything else as plain text (one passage a line, blank lines skipped).

    Rows keep every other field as metadata; ``title_field`` (if given and
    present) is prepended to the text with a newline, as BEIR evaluations do.
    """
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"collection file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = list(iter_jsonl_objects(path, CollectionError))
    elif suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    else:
        texts = [line.rstrip("\n") for line in path.open(encoding="utf-8")]
        return Collection(texts=[t for t in texts if t.strip()])
    return _from_rows(rows, path, text_field=text_field, id_field=id_field, title_field=title_field)


def _csv_rows(path: Path, delimiter: str) -> list[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        return [(number, dict(row)) for number, row in enumerate(reader, start=2)]


def _from_rows(rows, path: Path, *, text_field: str, id_field: str | None, title_field: str | None) -> Collection:
    if not rows:
        raise CollectionError(f"{path} holds no passages")
    first = rows[0][1]
    if id_field is None:
        id_field = next((f for f in ID_FIELDS if f in first), None)
    out = Collection(texts=[], doc_ids=[] if id_field else None, metadata=[])
    for number, row in rows:
        if text_field not in row:
            if path.suffix.lower() in (".csv", ".tsv"):
                raise CollectionError(
                    f"{path}: the header row has no {text_field!r} column (it reads {list(row)}); the first line of a "
                    f"CSV/TSV file is its header: add one naming the columns (e.g. 'id,text'), or pass "
                    f"--text-field with the column that holds the text")
            raise CollectionError(f"{path}:{number}: no {text_field!r} field (found {sorted(row)}); pass --text-field")
        text = row[text_field]
        if not isinstance(text, str):
            raise CollectionError(f"{path}:{number}: {text_field!r} must be a string, got {type(text).__name__}")
        title = row.get(title_field) if title_field else None
        out.texts.append(f"{title}\n{text}" if title else text)
        if id_field:
            if id_field not in row:
                raise CollectionError(f"{path}:{number}: no {id_field!r} field although earlier rows have one")
            out.doc_ids.append(str(row[id_field]))
        out.metadata.append({k: v for k, v in row.items() if k not in (text_field, id_field)})
    if not any(out.metadata):
        out.metadata = None
    return out
