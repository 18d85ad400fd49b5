"""``colja train`` mirrors the API: JSONL and BEIR + negatives, resume, clear errors."""

from __future__ import annotations

import json

import pytest

from colja import ColBERT
from colja.cli import main
from colja.train.data import load_training_data, write_jsonl
from tests.train.beir import make_beir
from tests.train.toy import rows

TINY = ["--dim", "16", "--doc-maxlen", "64", "--batch-size", "4", "--lr", "1e-3", "--no-progress"]


def test_train_from_jsonl_then_resume(tiny_backbone_path, tmp_path, capsys):
    data = write_jsonl(load_training_data(rows()), tmp_path / "train.jsonl")
    out = tmp_path / "model"
    argv = ["train", "--model", str(tiny_backbone_path), "--data", str(data), "--output", str(out),
            "--max-steps", "2", "--save-steps", "1", *TINY]
    assert main(argv) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    model = ColBERT.from_pretrained(out, device="cpu")
    assert model.dim == 16 and model.doc_maxlen == 64
    assert (out / "checkpoints" / "step-00000001" / "trainer_state.json").is_file()
    assert main([*argv, "--resume"]) == 0  # resumes at step 1 of 2
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2]


def test_train_from_beir_and_mined_negatives(tiny_backbone_path, tmp_path):
    pytest.importorskip("bm25s")
    beir = make_beir(tmp_path / "beir")
    neg = tmp_path / "neg.jsonl"
    assert main(["mine-negatives", "--data", str(beir), "--out", str(neg), "--k", "3", "--no-progress"]) == 0
    assert main(["train", "--model", str(tiny_backbone_path), "--data", str(beir), "--negatives", str(neg),
                 "--output", str(tmp_path / "m"), "--max-steps", "1", "--save-steps", "0", "--nway", "3", *TINY]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_cli_errors_are_short(tiny_backbone_path, tmp_path, capsys):
    beir = make_beir(tmp_path / "beir")
    assert main(["train", "--model", str(tiny_backbone_path), "--data", str(beir), "--output", str(tmp_path / "m"),
                 *TINY]) == 2
    assert "colja mine-negatives" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "m")]) == 2
    assert "no training data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--output", "y", "--warmup", "2.5"])
