"""The RAG examples run end to end with the shipped small model, and the adapters agree with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")

SMALL_MODEL = REPO / "models" / "colja-small-ja"
QUESTION = "フランツ・カフカの出生地はどこですか？"


@pytest.fixture(scope="module")
def example_index(tmp_path_factory):
    return tmp_path_factory.mktemp("rag") / "index"


def _run(script: str, index) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLJA_DISABLE_PROGRESS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(REPO / "examples" / script), "--index", str(index),
                           "--question", QUESTION], capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_langchain_example_feeds_reranked_context_to_the_llm(example_index):
    out = _run("rag_langchain.py", example_index)
    prompt = out.split("=== prompt the LLM received ===")[1].split("=== answer ===")[0]
    assert f"質問: {QUESTION}" in prompt
    assert [line[:3] for line in prompt.splitlines() if line.startswith("[")] == ["[1]", "[2]", "[3]"]
    assert "tr-001-00" in prompt  # the passage that answers it (Prague) is in the context
    assert "（ここに LLM の答えが入ります）" in out.split("=== answer ===")[1]


def _ensure_built(index) -> None:
    if not (index / "CURRENT").exists():
        _run("rag_langchain.py", index)


def test_llamaindex_example_feeds_reranked_context_to_the_llm(example_index):
    _ensure_built(example_index)
    out = _run("rag_llamaindex.py", example_index)
    context, prompt = out.split("=== the LLM's prompt, echoed by MockLLM ===")
    assert len([line for line in context.splitlines() if line.startswith("[")]) == 3
    assert "tr-001-00" in context and QUESTION in prompt
    assert "title: フランツ・カフカ" in prompt and "normalized_score" not in prompt  # search fields kept from the LLM


def test_adapters_equal_index_hits_with_the_small_model(example_index):
    from colja import Index
    from colja.integrations.langchain import ColjaRetriever as LCRetriever
    from colja.integrations.llama_index import ColjaRetriever as LIRetriever

    _ensure_built(example_index)
    index = Index.load(example_index, model=str(SMALL_MODEL))
    queries = [json.loads(line)["text"] for line in
               (REPO / "examples" / "data" / "jaquad-sample" / "queries.jsonl").open(encoding="utf-8")][:5]
    for q in queries:
        hits = index.search(q, k=5)
        assert [d.id for d in LCRetriever(index=index, k=5).invoke(q)] == [h.doc_id for h in hits]
        nodes = LIRetriever(index, k=5).retrieve(q)
        assert [n.node.node_id for n in nodes] == [h.doc_id for h in hits]
        assert [n.score for n in nodes] == pytest.approx([h.score for h in hits], abs=0)
