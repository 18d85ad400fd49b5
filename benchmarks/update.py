"""Living collections benchmark: seconds to add 1 % and 10 % more documents vs a full rebuild, in one run.

    python /work/shared/bench/gen_data.py --name S --docs 10000 --queries 500 --seed 1234 --out bench-data
    python benchmarks/update.py --data bench-data/S [--base 9000] [--threads 2]

Vectors come from the generator (no model: encoding is left out of every
figure, so the ratios understate what ``add`` saves when texts must be encoded).
One process, same machine state for every step:

1. build the base index from the first ``--base`` documents (``Index.from_embeddings``);
2. ``index.add`` 1 % more documents to a copy of it, and 10 % more to another copy;
3. the alternative: a full build of base + 1 % and of base + 10 % from scratch;
4. for reference, ``index.delete`` of 1 % and ``index.rebuild()`` (re-cluster from the
   stored vectors) of the +10 % index.

Quality: top-10 agreement of PLAID with the generator's exact fp32 MaxSim
ground truth restricted to the grown collection, for the index grown with
``add`` (centroids trained on the base only) and the one built from scratch.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_docs(data: Path) -> list[np.ndarray]:
    """Per-passage float16 views of the generator's ``embs.npy`` (memory-mapped)."""
    embs = np.load(data / "embs.npy", mmap_mode="r")
    doclens = np.load(data / "doclens.npy").astype(np.int64)
    return np.split(embs, np.cumsum(doclens)[:-1])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "bench-data" / "S")
    parser.add_argument("--base", type=int, default=9000, help="documents in the base index (default 9000)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--queries", type=int, default=100, help="queries for the quality check")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("COLJA_DISABLE_PROGRESS", "1")

    import warnings

    from colja.errors import StaleIndexWarning
    from colja import Index

    warnings.simplefilter("ignore", StaleIndexWarning)
    docs = load_docs(args.data)
    base = args.base
    small, large = max(1, base // 100), max(1, base // 10)
    if base + large > len(docs):
        raise SystemExit(f"{args.data} has {len(docs)} documents; --base {base} needs {base + large}")
    ids = [f"doc{i}" for i in range(base + large)]
    work = Path(tempfile.mkdtemp(prefix="colja-update-bench-", dir=args.workdir))
    print(f"# colja update benchmark — {args.data.name}: base {base} docs "
          f"({sum(len(d) for d in docs[:base]):,} vectors), +1% = {small}, +10% = {large} docs")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}")
    rows: list[tuple[str, float]] = []
    try:
        index, t_base = timed(lambda: Index.from_embeddings(docs[:base], work / "base", doc_ids=ids[:base]))
        index.close()
        rows.append((f"build base ({base} docs)", t_base))

        queries = torch.from_numpy(np.load(args.data / "queries.npy").astype(np.float32))
        gt = np.load(args.data / "gt_ids.npy")
        results, quality = {}, []
        for label, extra in (("1%", small), ("10%", large)):
            path = work / f"add-{label}"
            shutil.copytree(work / "base", path)
            grown = Index.load(path)
            _, t_add = timed(lambda: grown.add(embeddings=docs[base : base + extra], doc_ids=ids[base : base + extra]))
            fresh, t_full = timed(lambda: Index.from_embeddings(docs[: base + extra], work / f"full-{label}",
                                                                doc_ids=ids[: base + extra]))
            rows.append((f"add {label} ({extra} docs)", t_add))
            rows.append((f"full build of base + {label}", t_full))
            results[label] = (grown, extra, t_add, t_full)
            Q = queries[: args.queries]
            truth = [row[row < base + extra][:10] for row in gt[: args.queries]]
            quality.append((label, recall(grown, Q, truth), recall(fresh, Q, truth)))
            fresh.close()

        grown10 = results["10%"][0]
        victims = ids[:small]
        _, t_delete = timed(lambda: grown10.delete(victims))
        rows.append((f"delete 1% ({small} docs)", t_delete))
        _, t_rebuild = timed(lambda: grown10.rebuild())
        rows.append(("rebuild() of the +10% index (re-cluster stored vectors)", t_rebuild))

        print()
        print(f"{'step':<58} {'seconds':>9}")
        for name, seconds in rows:
            print(f"{name:<58} {seconds:>9.2f}")
        print()
        for label in ("1%", "10%"):
            _, extra, t_add, t_full = results[label]
            print(f"add {label:>3}: {t_add:7.2f} s vs full build {t_full:7.2f} s -> add is {t_full / t_add:5.1f}x faster "
                  f"({t_add / t_full:.3f} of a rebuild)")
        print(f"rebuild(): {t_rebuild:.2f} s = {t_rebuild / results['10%'][3]:.2f} of a full build from the original vectors")
        print()
        print(f"PLAID top-10 agreement with exact fp32 MaxSim over the grown collection ({args.queries} queries):")
        for label, added, fresh in quality:
            print(f"  +{label:<3}: index grown with add {added:.3f}, index built from scratch {fresh:.3f}")
        for grown, *_ in results.values():
            grown.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def recall(index, Q: torch.Tensor, truth: list[np.ndarray]) -> float:
    """Mean |PLAID top-10 ∩ exact top-10| / 10, by document number."""
    from colja import SearchResults

    found = index.search_embeddings(Q, 10)
    out = []
    for i, (pids, want) in enumerate(zip(found.pids, truth)):
        got = {int(h.doc_id[3:]) for h in index.hits(SearchResults(found.scores[i:i + 1], pids[None]))}
        out.append(len(got & set(want.tolist())) / max(1, len(want)))
    return float(np.mean(out))


if __name__ == "__main__":
    main()
