"""The first hour of a new user: run as a user runs it (a subprocess), every dead end says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from colja import Index
from tests.conftest import FIXTURE_MODEL, REPO

SMALL_MODEL = REPO / "models" / "colja-small-ja"
ROWS = [
    {"_id": "tokyo", "text": "東京は日本の首都であり、世界有数の大都市である。", "source": "wiki"},
    {"_id": "fuji", "text": "富士山は標高3776メートルで、日本で最も高い山である。静岡県と山梨県にまたがる。", "source": "wiki"},
    {"_id": "osaka", "text": "大阪は「天下の台所」と呼ばれた商業の町。たこ焼きが有名！", "source": "blog"},
    {"_id": "emoji", "text": "今日はいい天気😀ＡＢＣ１２３ｶﾀｶﾅ", "source": "blog"},
    {"_id": "kyoto", "text": "京都には千年以上の歴史を持つ寺社が数多くある。" * 3, "source": "wiki"},
]


def colja(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", COLJA_DISABLE_PROGRESS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "colja.cli", *args], capture_output=True, text=True, timeout=600,
                          env=full, cwd=cwd)


@pytest.fixture()
def docs(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return path


def test_cold_kernel_cache_says_so_on_stderr_and_kernels_build_does_it_ahead(tmp_path):
    cache = {"COLJA_CACHE_DIR": str(tmp_path / "cache")}
    built = colja("kernels", "build", env=cache)
    assert built.returncode == 0, built.stderr
    assert "compiling the C++ search kernels" in built.stderr and "done in" in built.stderr
    assert "cpu: cpp" in built.stdout
    index = tmp_path / "idx"
    Index.from_embeddings([__import__("numpy").random.default_rng(0).standard_normal((5, 128)).astype("float32")
                           for _ in range(20)], index).close()
    again = colja("stats", str(index), env=cache)
    assert again.returncode == 0 and "compiling" not in again.stderr  # built once, never again
    info = colja("kernels", "info", "--json", env=cache)
    lines = [json.loads(line) for line in info.stdout.splitlines()]
    assert lines[0]["backend"] == "cpp"
    from colja.model.precision import resolve_precision

    assert lines[-1]["kind"] == "encoder" and lines[-1]["precision"] == resolve_precision("auto", __import__("torch").device("cpu"))
    plain = colja("kernels", "info", env={**cache, "COLJA_PRECISION": "fp32"})
    assert "encoder: fp32 on this CPU" in plain.stdout
    quiet = colja("-q", "kernels", "build", env={"COLJA_CACHE_DIR": str(tmp_path / "other")})
    assert quiet.returncode == 0 and "compiling" not in quiet.stderr


@pytest.mark.parametrize("k", ["0", "-1", "x"])
def test_bad_k_is_a_usage_error_not_a_traceback(tmp_path, docs, k):
    for cmd in (["search", "東京", "--index", str(tmp_path), "-k", k], ["rerank", "東京", str(docs), "-k", k]):
        done = colja(*cmd)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "-k" in done.stderr and (">= 1" in done.stderr or "whole number" in done.stderr)


def test_cli_speaks_cli(tmp_path, docs):
    path = tmp_path / "idx"
    assert colja("index", str(docs), "--index", str(path), "--model", str(SMALL_MODEL)).returncode == 0
    again = colja("index", str(docs), "--index", str(path), "--model", str(SMALL_MODEL))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "overwrite=True" not in again.stderr
    verbose = colja("search", "富士山", "--index", str(path), "-v", "-k", "2")  # -v after the subcommand
    assert verbose.returncode == 0 and "INFO" in verbose.stderr
    for command in ("eval", "train", "mine-negatives", "index", "search", "rerank", "add", "first-stage"):
        help_text = colja(command, "--help").stdout
        assert "``" not in help_text and ":class:" not in help_text and ":func:" not in help_text, command
    from colja.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in commands.items()
               for a in p._actions if a.help in (None, "") and a.dest != "help"]
    assert not missing, f"options without help: {missing}"


def test_missing_optional_dependency_fails_before_any_work(tmp_path, docs):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "bm25s" or name.startswith("bm25s."):
                    raise ImportError("bm25s is blocked for this test")
        sys.meta_path.insert(0, _Block())
    """))
    path = tmp_path / "idx"
    env = {"PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}
    full = dict(os.environ, HF_HUB_OFFLINE="1", **env)
    done = subprocess.run([sys.executable, "-m", "colja.cli", "index", str(docs), "--index", str(path), "--model",
                           str(SMALL_MODEL), "--first-stage", "bm25"], capture_output=True, text=True, env=full,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert 'colja[bm25]' in done.stderr and "Traceback" not in done.stderr
    assert not path.exists(), "a failed precondition must leave nothing behind"
    assert "Indexing" not in done.stderr  # nothing was encoded


def test_writes_from_the_command_line(tmp_path, docs):
    path = tmp_path / "idx"
    long_doc = tmp_path / "long.jsonl"
    long_doc.write_text(json.dumps({"_id": "essay", "text": "日本の四季は美しい。" * 60, "source": "essay"},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    built = colja("index", str(docs), "--index", str(path), "--model", str(SMALL_MODEL))
    assert built.returncode == 0, built.stderr
    added = colja("add", str(long_doc), "--index", str(path), "--split", "--max-tokens", "32")
    assert added.returncode == 0, added.stderr
    assert added.stdout.split() == ["essay"]
    index = Index.load(path)
    passages = [h for h in index.search("四季", k=50) if h.parent_id == "essay"]
    assert len(passages) > 1 and all(h.doc_id.startswith("essay#") for h in passages)

    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"_id": "fuji", "text": "富士山は日本一の山。ﾌｼﾞｻﾝ", "source": "更新"}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    assert colja("update", str(new), "--index", str(path)).returncode == 0
    hit = next(h for h in Index.load(path).search("富士山", k=10) if h.doc_id == "fuji")
    assert hit.text.startswith("富士山は日本一の山") and hit.metadata == {"source": "更新"}
    no_ids = tmp_path / "noid.txt"
    no_ids.write_text("本文だけ\n", encoding="utf-8")
    refused = colja("update", str(no_ids), "--index", str(path))
    assert refused.returncode == 2 and "id" in refused.stderr

    deleted = colja("delete", "osaka", "essay", "--index", str(path))
    assert deleted.returncode == 0 and "deleted 2 documents" in deleted.stdout
    assert not {"osaka", "essay"} & {h.parent_id or h.doc_id for h in Index.load(path).search("大阪", k=50)}
    unknown = colja("delete", "nope", "--index", str(path))
    assert unknown.returncode == 2 and "nope" in unknown.stderr

    stats = colja("stats", str(path), "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["passages"] >= 4
    pytest.importorskip("bm25s")
    assert colja("first-stage", "add", "bm25", "--index", str(path)).returncode == 0
    assert "bm25" in Index.load(path).first_stages
    found = colja("search", "富士山", "--index", str(path), "--first-stage", "bm25", "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["hits"]
    assert colja("first-stage", "remove", "bm25", "--index", str(path)).returncode == 0
    assert Index.load(path).first_stages == {}


def test_silent_edge_cases_now_speak(tmp_path, docs):
    path = tmp_path / "idx"
    assert colja("index", str(docs), "--index", str(path), "--model", str(SMALL_MODEL)).returncode == 0
    none = colja("search", "東京", "--index", str(path), "--where", '{"source": "なし"}')
    assert none.returncode == 0 and "0 hits" in none.stdout and "--where" in none.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    nothing = colja("rerank", "東京", str(empty), "--model", str(SMALL_MODEL))
    assert nothing.returncode == 0 and "0 hits" in nothing.stdout
    headless = tmp_path / "noheader.csv"
    headless.write_text("東京は日本の首都である。,tokyo\n大阪は商業の町。,osaka\n", encoding="utf-8")
    bad = colja("index", str(headless), "--index", str(tmp_path / "csv"), "--model", str(SMALL_MODEL))
    assert bad.returncode == 2 and "header" in bad.stderr and "--text-field" in bad.stderr
    assert not (tmp_path / "csv").exists()


def test_long_queries_warn_once_and_warnings_point_at_the_caller():
    from colja import ColBERT

    fixture_model = ColBERT.from_pretrained(FIXTURE_MODEL, device="cpu")  # fresh: the warning is once per model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fixture_model.encode_queries(["長い質問" * 2000])
        fixture_model.encode_queries(["もう一つの長い質問" * 2000])
        fixture_model.encode_documents(["長い文書" * 2000])
    from colja.errors import TruncationWarning

    mine = [w for w in caught if issubclass(w.category, TruncationWarning)]
    queries = [w for w in mine if "queries" in str(w.message)]
    assert len(queries) == 1 and "dynamic_length=True" in str(queries[0].message)
    assert all(w.filename == __file__ for w in mine), [w.filename for w in mine]
    index_warning = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            Index.build(["長い文書" * 500, "短い"], Path(folder) / "i", model=fixture_model)
        index_warning = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert index_warning and all(w.filename == __file__ for w in index_warning)


def test_hub_failures_fail_fast_with_the_offline_advice(monkeypatch):
    from colja.errors import ModelLoadError
    from colja.firststage import DenseRetriever

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set.*huggingface-cli download"):
        DenseRetriever(model_name_or_path="pkshatech/GLuCoSE-base-ja-v2").model
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    import huggingface_hub

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(ModelLoadError, match="unreachable"):
        DenseRetriever(model_name_or_path="hotchpotch/static-embedding-japanese").model


def test_dataset_id_column(fixture_model, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "key": ["x", "y", "z"],
                                     "text": ["東京の話", "大阪の話", "京都の話"]})
    auto = Index.build(ds, tmp_path / "auto", model=fixture_model)
    assert sorted(h.doc_id for h in auto.search("話", k=3)) == ["a", "b", "c"]
    chosen = Index.build(ds, tmp_path / "chosen", model=fixture_model, id_column="key")
    assert sorted(h.doc_id for h in chosen.search("話", k=3)) == ["x", "y", "z"]
    with pytest.raises(Exception, match="no column 'nope'"):
        Index.build(ds, tmp_path / "bad", model=fixture_model, id_column="nope")
    with pytest.raises(ValueError, match="either doc_ids= or id_column="):
        Index.build(ds, tmp_path / "both", model=fixture_model, id_column="key", doc_ids=["1", "2", "3"])
    assert not (tmp_path / "bad").exists() and not (tmp_path / "both").exists()
