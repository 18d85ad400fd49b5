"""Training data from rows, datasets.Dataset, JSONL and BEIR + negatives, with clear errors."""

from __future__ import annotations

import json

import pytest

from colja.train.data import (TrainingDataError, TrainingExample, from_beir, from_jsonl, load_training_data,
                              write_jsonl)
from tests.train.toy import rows
from tests.train.beir import make_beir


def test_rows_and_dataset_give_the_same_examples():
    import datasets

    examples = load_training_data(rows())
    assert len(examples) == 12 and isinstance(examples[0], TrainingExample)
    assert examples[0].negatives == tuple(r for r in rows()[0]["negatives"])
    ds = datasets.Dataset.from_list(rows())
    assert load_training_data(ds) == examples
    assert load_training_data(examples) == examples


def test_jsonl_round_trip(tmp_path):
    data = rows(2)
    data[0]["scores"] = [1.0, 0.5, 0.1]
    for r in data[1:]:
        r["scores"] = [0.9, 0.2, 0.3]
    path = write_jsonl(load_training_data(data), tmp_path / "train.jsonl")
    back = from_jsonl(path)
    assert back[0].scores == (1.0, 0.5, 0.1) and back[0].has_scores
    assert load_training_data(str(path)) == back


def test_saved_dataset_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(rows()).save_to_disk(str(tmp_path / "ds"))
    assert len(load_training_data(tmp_path / "ds")) == 12


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("positive"), r"row 3: missing field 'positive'"),
    (lambda r: r.update(negatives=[]), r"row 3: 'negatives' is empty"),
    (lambda r: r.update(negatives="一つの文"), r"row 3: 'negatives' must be a list"),
    (lambda r: r.update(negatives=["ok", 7]), r"row 3: 'negatives\[1\]' must be a string, got int"),
    (lambda r: r.update(query=3.5), r"row 3: 'query' must be a string, got float"),
    (lambda r: r.update(query="  "), r"row 3: 'query' is an empty string"),
    (lambda r: r.update(scores=[1.0, 2.0]), r"row 3: 'scores' has 2 values, expected 4"),
    (lambda r: r.update(scores=[1.0, "a", 0.0, 0.0]), r"row 3: scores\[1\] must be a finite number"),
])
def test_malformed_rows_name_the_row(change, message):
    data = rows()
    change(data[3])
    with pytest.raises(TrainingDataError, match=message):
        load_training_data(data)


def test_mixed_scores_are_refused():
    data = rows()
    data[0]["scores"] = [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(TrainingDataError, match="row 1 has none"):
        load_training_data(data)


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in rows()[:3]]
    lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:3: not valid JSON"):
        from_jsonl(path)
    path.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:1: missing field 'negatives'"):
        from_jsonl(path)
    with pytest.raises(FileNotFoundError):
        load_training_data(tmp_path / "missing.jsonl")


def test_dataset_dict_asks_for_a_split():
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows())})
    with pytest.raises(TrainingDataError, match=r"DatasetDict.*data\['train'\]"):
        load_training_data(dd)
    with pytest.raises(TrainingDataError, match="single dict"):
        load_training_data(rows()[0])


def test_dataset_with_other_column_names():
    import datasets

    ds = datasets.Dataset.from_list([{"question": "q", "positive": "p", "negatives": ["n"]}])
    with pytest.raises(TrainingDataError, match="no column 'query'.*rename_column"):
        load_training_data(ds)


def test_beir_plus_negatives(tmp_path):
    folder = make_beir(tmp_path / "beir")
    neg = tmp_path / "neg.jsonl"
    neg.write_text("\n".join(json.dumps(r) for r in [
        {"query_id": "q0", "negatives": ["d1", "d0", "d2"]},  # d0 is q0's positive: dropped
        {"query_id": "q1", "negatives": ["d3"]},
    ]) + "\n", encoding="utf-8")
    examples = load_training_data(folder, negatives=neg)
    assert len(examples) == 2  # queries without mined negatives are skipped
    first = examples[0]
    assert first.query == "日本で一番高い山はどこですか"
    assert first.positive.startswith("富士山\n")  # title + "\n" + text
    assert len(first.negatives) == 2 and not any(n.startswith("富士山") for n in first.negatives)


@pytest.mark.parametrize("row, message", [
    ({"query_id": "q0", "negatives": ["nope"]}, r"neg\.jsonl:1: negatives\[0\] = 'nope' is not a doc id"),
    ({"query_id": "qX", "negatives": ["d1"]}, r"neg\.jsonl:1: query_id 'qX' is not a query"),
    ({"query_id": "q0", "negatives": ["d0"]}, r"neg\.jsonl:1: query 'q0' has no negatives"),
    ({"query_id": "q0", "negatives": "d1"}, r"neg\.jsonl:1: 'negatives' must be a list"),
    ({"negatives": ["d1"]}, r"neg\.jsonl:1: 'query_id' must be a string"),
])
def test_beir_negatives_errors(tmp_path, row, message):
    folder = make_beir(tmp_path / "beir")
    neg = tmp_path / "neg.jsonl"
    neg.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=message):
        from_beir(folder, neg)


def test_beir_folder_needs_negatives(tmp_path):
    folder = make_beir(tmp_path / "beir")
    with pytest.raises(TrainingDataError, match="pass negatives=.*colja mine-negatives"):
        load_training_data(folder)
    with pytest.raises(FileNotFoundError, match="colja mine-negatives"):
        from_beir(folder, tmp_path / "none.jsonl")
