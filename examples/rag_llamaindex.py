"""RAG with LlamaIndex: a colja retriever and MaxSim reranker in a query engine (here with LlamaIndex's MockLLM).

    python examples/rag_llamaindex.py [--question 日本の首都は？] [--index indexes/rag-example] [--model models/colja-small-ja]

Builds (once) an index of ``examples/data/jaquad-sample`` with the shipped small
model, then queries ``RetrieverQueryEngine`` with ColjaRetriever (k=10) and
ColjaRerank (top 3) and prints the context the LLM received (``MockLLM`` echoes
its prompt). Replace ``MockLLM`` with any LlamaIndex LLM. Needs
``pip install "colja[llamaindex]"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from colja import Index
from colja.integrations.llama_index import ColjaRerank, ColjaRetriever

HERE = Path(__file__).resolve().parent


def load_or_build(path: Path, model: str) -> Index:
    if (path / "CURRENT").exists():
        return Index.load(path, model=model)
    rows = [json.loads(line) for line in (HERE / "data" / "jaquad-sample" / "corpus.jsonl").open(encoding="utf-8")]
    return Index.build([f"{r['title']}\n{r['text']}" for r in rows], path, model=model,
                       doc_ids=[r["_id"] for r in rows], metadata=[{"title": r["title"]} for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default="フランツ・カフカの出生地はどこですか？")
    parser.add_argument("--index", type=Path, default=Path("indexes/rag-example"))
    parser.add_argument("--model", default=str(HERE.parent / "models" / "colja-small-ja"))
    args = parser.parse_args()

    index = load_or_build(args.index, args.model)
    engine = RetrieverQueryEngine.from_args(ColjaRetriever(index, k=10), llm=MockLLM(),
                                            node_postprocessors=[ColjaRerank(model=index.model, top_n=3)])
    response = engine.query(args.question)
    print("=== context the LLM received (top 3 after reranking) ===")
    for rank, node in enumerate(response.source_nodes, 1):
        print(f"[{rank}] {node.node.metadata['title']} ({node.node.node_id}) score {node.score:.2f}: "
              f"{node.node.get_content()[:120]}")
    print("=== the LLM's prompt, echoed by MockLLM ===")
    print(str(response))


if __name__ == "__main__":
    main()
