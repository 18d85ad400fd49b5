"""``colja verify PATH``: every problem listed, exit status 1; a sound index: ok, exit status 0."""

from __future__ import annotations

import json

from colja.cli import main

from .forge import forge
from .test_forged_index import _bad_metadata, _nan_at, _pid_gap


def test_colja_verify_lists_every_problem(sound_index, tmp_path, capsys):
    assert main(["verify", str(sound_index)]) == 0
    assert "ok (deep check" in capsys.readouterr().out

    def change(gen):
        _nan_at("bucket_weights", 0)(gen)
        _pid_gap(gen)
        _bad_metadata(gen)

    forged = forge(sound_index, tmp_path / "f", change)
    assert main(["verify", str(forged)]) == 1
    out = capsys.readouterr().out
    assert "bucket_weights.npy: finite values" in out
    assert "passage ids are exactly 0..47" in out
    assert "metadata is NULL or a JSON object" in out
    assert "3 problem(s)" in out

    assert main(["verify", str(forged), "--quick", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["deep"] is False and len(report["problems"]) == 3
    assert {p["file"].rsplit("/", 1)[-1] for p in report["problems"]} == {"bucket_weights.npy", "docs.sqlite"}


def test_colja_verify_on_something_that_is_not_an_index(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("メモ")
    assert main(["verify", str(tmp_path / "x")]) == 1
    assert "is a colja index folder" in capsys.readouterr().out
