"""A small BEIR folder built from the toy pairs (doc ``d<i>`` answers query ``q<i>``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.train.toy import PAIRS, TITLES


def make_beir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i, ((_, passage), title) in enumerate(zip(PAIRS, TITLES)):
            f.write(json.dumps({"_id": f"d{i}", "title": title, "text": passage}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, (query, _) in enumerate(PAIRS):
            f.write(json.dumps({"_id": f"q{i}", "text": query}, ensure_ascii=False) + "\n")
    with open(folder / "qrels.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(len(PAIRS)):
            f.write(f"q{i}\td{i}\t1\n")
    return folder
