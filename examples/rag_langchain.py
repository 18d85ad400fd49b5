"""RAG with LangChain: a colja retriever and MaxSim reranker feeding an LLM (here LangChain's fake LLM).

    python examples/rag_langchain.py [--question 日本の首都は？] [--index indexes/rag-example] [--model models/colja-small-ja]

Builds (once) an index of ``examples/data/jaquad-sample`` with the shipped small
model, then runs the chain retriever (k=10) → ColjaReranker (top 3) → prompt →
LLM and prints the context the LLM received. Replace ``FakeListLLM`` with any
LangChain chat model or LLM. Needs ``pip install "colja[langchain]"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_core.language_models import FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from colja import Index
from colja.integrations.langchain import ColjaReranker, ColjaRetriever

HERE = Path(__file__).resolve().parent
PROMPT = PromptTemplate.from_template("次の資料だけを使って質問に答えてください。\n\n資料:\n{context}\n\n質問: {question}\n答え:")


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
    retriever = ColjaRetriever(index=index, k=10)
    reranker = ColjaReranker(model=index.model, top_n=3)
    seen: list[str] = []

    def rerank_and_format(inputs: dict) -> str:
        docs = reranker.compress_documents(inputs["docs"], inputs["question"])
        return "\n".join(f"[{d.metadata['rerank']}] {d.metadata['title']} ({d.id}): {d.page_content[:120]}"
                         for d in docs)

    def show(prompt):  # what the LLM receives
        seen.append(prompt.to_string())
        return prompt

    chain = ({"docs": retriever, "question": RunnablePassthrough()}
             | RunnablePassthrough.assign(context=RunnableLambda(rerank_and_format))
             | PROMPT | RunnableLambda(show)
             | FakeListLLM(responses=["（ここに LLM の答えが入ります）"]) | StrOutputParser())
    answer = chain.invoke(args.question)
    print("=== prompt the LLM received ===")
    print(seen[-1])
    print("=== answer ===")
    print(answer)


if __name__ == "__main__":
    main()
