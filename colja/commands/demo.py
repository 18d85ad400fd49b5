"""``colja demo``: the main job — offline, on a fresh machine.

Builds an index over the sample collection shipped in ``examples/data/`` with
the small model shipped in ``models/``, runs a few Japanese questions and prints
the hits with scores and timings.
"""

from __future__ import annotations

import json
import os
import warnings
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "jaquad-sample"
SMALL_MODEL = REPO / "models" / "colja-small-ja"
from colja.model.encoder import DEFAULT_MODEL
SHOWN_QUERIES = 5


def _demo_model(requested: str | None) -> tuple[str, str]:
    """The model the demo uses, and a note on where it came from."""
    if requested:
        return requested, "given with --model"
    if os.environ.get("COLJA_DEMO_MODEL"):
        return os.environ["COLJA_DEMO_MODEL"], "from COLJA_DEMO_MODEL"
    if (SMALL_MODEL / "model.safetensors").is_file():
        return str(SMALL_MODEL), "colja-small-ja, shipped for offline demos; use answerdotai/JaColBERTv2.5 for real work"
    return DEFAULT_MODEL, "the default model"


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _load_sample(folder: Path):
    corpus = _read_jsonl(folder / "corpus.jsonl")
    queries = _read_jsonl(folder / "queries.jsonl")
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, _ = line.split("\t")
        qrels.setdefault(qid, set()).add(did)
    return corpus, queries, qrels


def cmd_demo(args) -> int:
    from colja import ColBERT, Index, TruncationWarning

    name, note = _demo_model(args.model)
    corpus, queries, qrels = _load_sample(Path(args.data))
    print(f"model: {name}\n       ({note})")
    t0 = time.perf_counter()
    model = ColBERT.from_pretrained(name, device=args.device)
    print(f"loaded in {time.perf_counter() - t0:.1f}s")

    texts = [f"{d['title']}\n{d['text']}" for d in corpus]
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # a few long paragraphs are cut at doc_maxlen; fine for a demo
        warnings.simplefilter("ignore", TruncationWarning)
        index = Index.build(texts, args.index, name=None if args.index else "demo", model=model, doc_ids=[d["_id"] for d in corpus],
                            metadata=[{"title": d["title"]} for d in corpus], overwrite=True, show_progress=False)
    stats = index.stats()
    print(f"indexed {stats['passages']} passages ({stats['vectors']:,} token vectors, {stats['centroids']} centroids, "
          f"{stats['nbits']}-bit residuals, {stats['bytes_on_disk'] / 1e6:.1f} MB) into {index.path} "
          f"in {time.perf_counter() - t0:.1f}s\n")

    index.search(queries[0]["text"], k=1)  # warm-up: kernels, caches
    step = max(1, len(queries) // SHOWN_QUERIES)
    for q in queries[::step][:SHOWN_QUERIES]:
        t0 = time.perf_counter()
        hits = index.search(q["text"], k=3)
        ms = (time.perf_counter() - t0) * 1000
        print(f"Q: {q['text']}   ({ms:.0f} ms incl. query encoding)")
        for h in hits:
            mark = "✓" if h.doc_id in qrels.get(q["_id"], ()) else " "
            snippet = h.text.split("\n", 1)[-1].replace("\n", " ")
            print(f"  {mark} {h.rank}. {h.score:6.2f}  [{h.metadata.get('title')}] {snippet[:60]}…")
        print()

    sample = queries[: args.eval_queries]
    t0 = time.perf_counter()
    results = index.search_batch([q["text"] for q in sample], k=5)
    secs = time.perf_counter() - t0
    r1 = sum(bool(h and h[0].doc_id in qrels.get(q["_id"], ())) for q, h in zip(sample, results)) / len(sample)
    r5 = sum(any(x.doc_id in qrels.get(q["_id"], ()) for x in h) for q, h in zip(sample, results)) / len(sample)
    print(f"{len(sample)} questions in {secs:.1f}s ({secs / len(sample) * 1000:.0f} ms each, encoding included): "
          f"Recall@1 {r1:.3f}, Recall@5 {r5:.3f}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="build an index over a Japanese sample collection and search it (offline)")
    p.add_argument("--model", help="model folder or hub id (default: the shipped colja-small-ja)")
    p.add_argument("--data", default=str(SAMPLE), help="a BEIR-layout folder (default: examples/data/jaquad-sample)")
    p.add_argument("--index", default=None, help="where to write the index (default: indexes/demo under the index root)")
    p.add_argument("--eval-queries", type=int, default=200, help="questions for the closing Recall figure")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_demo)
