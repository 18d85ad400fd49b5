"""``colja demo``: the main job — runs offline on a fresh machine."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_MODEL = "answerdotai/JaColBERTv2.5"

DEMO_QUERIES = [
    "日本で一番高い山は？",
    "東京タワーの高さはどれくらい？",
    "ラーメンの発祥地はどこ？",
]
DEMO_PASSAGES = [
    "富士山は標高3776メートルで、日本で最も高い山である。",
    "東京タワーは高さ333メートルの電波塔で、1958年に完成した。",
    "ラーメンは中国の麺料理を起源とし、日本で独自に発展した。",
    "京都には多くの寺院や神社があり、観光客に人気がある。",
]


def _demo_model(requested: str | None) -> tuple[str, str]:
    """The model the demo uses, and a note on where it came from."""
    if requested:
        return requested, "given with --model"
    if os.environ.get("COLJA_DEMO_MODEL"):
        return os.environ["COLJA_DEMO_MODEL"], "from COLJA_DEMO_MODEL"
    small = Path(__file__).resolve().parents[2] / "models" / "colja-small-ja"
    if (small / "model.safetensors").is_file():
        return str(small), "colja-small-ja, the small offline model shipped with colja (for demos; use answerdotai/JaColBERTv2.5 for real work)"
    shared_fixture = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "colbert-tiny-ja" / "model"
    if shared_fixture.is_dir():
        return str(shared_fixture), "the offline test fixture (random weights: scores show the pipeline works, not relevance)"
    return DEFAULT_MODEL, "the default model"


def cmd_demo(args: argparse.Namespace) -> int:
    from colja import ColBERT
    from colja.search.maxsim import maxsim_matrix

    name, note = _demo_model(args.model)
    print(f"model: {name}  ({note})")
    t0 = time.perf_counter()
    model = ColBERT.from_pretrained(name, device=args.device)
    t1 = time.perf_counter()
    Q = model.encode_queries(DEMO_QUERIES)
    D = model.encode_documents(DEMO_PASSAGES)
    t2 = time.perf_counter()
    scores = maxsim_matrix(Q, D)
    print(f"loaded in {t1 - t0:.2f}s; encoded {len(DEMO_QUERIES)} queries and {len(DEMO_PASSAGES)} passages in {(t2 - t1) * 1000:.0f} ms\n")
    for qi, query in enumerate(DEMO_QUERIES):
        print(f"Q: {query}")
        order = scores[qi].argsort(descending=True)
        for rank, pi in enumerate(order.tolist(), start=1):
            raw = float(scores[qi, pi])
            print(f"  {rank}. {raw:7.3f} (÷{Q.shape[1]} = {raw / Q.shape[1]:.3f})  {DEMO_PASSAGES[pi]}")
        print()
    return 0


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="encode a few Japanese sentences and print MaxSim similarities (offline)")
    demo.add_argument("--model", help="model folder or hub id (default: an offline model when one is available)")
    demo.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    demo.set_defaults(func=cmd_demo)
