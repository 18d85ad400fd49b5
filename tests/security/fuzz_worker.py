"""Child process of the fuzz test: for each index path read from stdin, load it and search it; one JSON line out.

``{"results": {"pids", "scores", "doc_ids"}}`` or ``{"error": class name, "message": ...}``.
A crash (segmentation fault, abort) ends this process: the parent sees it as a failed case.

Usage: python -m tests.security.fuzz_worker QUERIES.npy
"""

from __future__ import annotations

import json
import sys

import numpy as np


def answer(path: str, queries: np.ndarray) -> dict:
    from colja import Index

    try:
        with Index.load(path) as index:
            results = index.search_embeddings(queries, k=5)
            exact = index.search_embeddings(queries, k=5, exhaustive=True)
            doc_ids = [[h.doc_id for h in index.hits(results, i)] for i in range(len(queries))]
            return {"results": {"pids": results.pids.tolist(), "scores": results.scores.tolist(),
                                "exact_pids": exact.pids.tolist(), "exact_scores": exact.scores.tolist(),
                                "doc_ids": doc_ids, "live": len(index)}}
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges it
        return {"error": type(exc).__name__, "message": str(exc)[:500]}


def main() -> None:
    queries = np.load(sys.argv[1])
    for line in sys.stdin:
        path = line.strip()
        if path:
            print(json.dumps(answer(path, queries)), flush=True)


if __name__ == "__main__":
    main()
