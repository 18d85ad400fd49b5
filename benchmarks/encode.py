"""Encoding throughput: batching order, and the encoder's precision, measured in one run.

    python benchmarks/encode.py [--part batching|precision|all] [--passages 2000] [--batch-size 32] [--threads 2]

``batching``: encodes the first N passages of ../shared/data/jaquad-dev-large with
the fixture model (a 2-layer BERT, so the tokenizer's share of the time is larger
than with a full-size model) and prints passages/s for length-bucketed and
file order and their ratio.

``precision``: fp32 (the reference's exact computation: colja's fp32 vectors equal
colbert-ai's, see tests/model/test_parity.py; with ``--reference-python PY`` colbert-ai's
own encoder is timed on the same checkpoint and texts, and its vectors compared) against bf16 and int8
(:mod:`colja.model.precision`) on a bert-base-sized ColBERT with random weights and
the real bert-base-japanese-v3 vocabulary (made here, no download; 12 layers, 768
hidden) and on the shipped small model: passages/s, single-query latency, the
ratio to fp32, and the top-10 agreement of exact MaxSim computed with each
precision's vectors against fp32's (queries of examples/data/jaquad-sample over its
passages; the first 150 for the bert-base-sized model). ``auto`` is what this machine picks.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import colja
from colja import ColBERT

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def load_passages(n: int) -> list[str]:
    texts = []
    with open(SHARED / "data" / "jaquad-dev-large" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == n:
                break
    return texts


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


REPO = Path(__file__).resolve().parents[1]


def bert_base_checkpoint() -> Path:
    """A bert-base-sized ColBERT with random weights (seed 0) and the real vocabulary, saved once."""
    from transformers import BertConfig, BertModel

    folder = REPO / "bench-data" / "models" / "colbert-bert-base-random"
    if (folder / "model.safetensors").exists():
        return folder
    tiny = ColBERT.from_pretrained(SHARED / "fixtures" / "colbert-tiny-ja" / "model", device="cpu", precision="fp32")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tiny.tokenizer), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)
    model = ColBERT(BertModel(config), tiny.tokenizer, tiny.settings.replace(doc_maxlen=300, query_maxlen=32))
    model.save_pretrained(folder)
    return folder


def exact_top10(Q, docs) -> list[set[int]]:
    return [set(torch.stack([(q @ d.T).max(dim=1).values.sum() for d in docs]).topk(10).indices.tolist()) for q in Q]


def precision_study(args) -> None:
    from colja.model.precision import resolve_precision

    texts = load_passages(args.precision_passages)
    queries = [t[:40] for t in texts[:20]]
    sample = REPO / "examples" / "data" / "jaquad-sample"
    s_rows = [json.loads(line) for line in (sample / "corpus.jsonl").open(encoding="utf-8")]
    s_texts = [r["title"] + "\n" + r["text"] for r in s_rows]
    s_queries = [json.loads(line)["text"] for line in (sample / "queries.jsonl").open(encoding="utf-8")][:100]
    auto = resolve_precision("auto", torch.device("cpu"))
    print(f"\nprecision: auto picks {auto!r} on this CPU; {len(texts)} passages (doc_maxlen 300), "
          f"{len(queries)} single queries, threads={args.threads}")
    for label, path in (("bert-base-sized (random weights)", bert_base_checkpoint()),
                        ("colja-small-ja", REPO / "models" / "colja-small-ja")):
        base_pps = base_q = None
        reference = None
        print(f"\n{label}:")
        ref = reference_encoder(args, path, texts, queries) if args.reference_python else None
        if ref:
            print(f"reference (colbert-ai {ref['version']}): {ref['passages_per_s']:.2f} passages/s, "
                  f"{ref['query_ms']:.1f} ms per query; its fp32 vectors vs colja's: max abs diff {ref['max_diff']:.2g}")
        print(f"{'precision':>10} {'passages/s':>11} {'x fp32':>7} {'x ref':>6} {'query ms':>9} {'x fp32':>7} {'x ref':>6} "
              f"{'top-10 agreement':>17}")
        for precision in ("fp32", "bf16", "int8"):
            model = ColBERT.from_pretrained(path, device="cpu", precision=precision, doc_maxlen=300)
            model.encode_documents(texts[:8], show_progress=False)
            secs = timed(lambda: model.encode_documents(texts, batch_size=16, show_progress=False), args.repeats)
            pps = len(texts) / statistics.median(secs)
            lat = statistics.median(timed(lambda: [model.encode_queries([q]) for q in queries], args.repeats)) / len(queries)
            agreement = ""
            n_s = len(s_texts) if label == "colja-small-ja" else min(len(s_texts), args.agreement_passages)
            top = exact_top10(model.encode_queries(s_queries), model.encode_documents(s_texts[:n_s], show_progress=False))
            if reference is None:
                reference = top
            agreement = f"{sum(len(a & b) for a, b in zip(top, reference)) / (10 * len(top)):.3f}"
            if base_pps is None:
                base_pps, base_q = pps, lat
            xr = f"{pps / ref['passages_per_s']:5.2f}x" if ref else "     -"
            xq = f"{ref['query_ms'] / (lat * 1e3):5.2f}x" if ref else "     -"
            print(f"{precision:>10} {pps:11.2f} {pps / base_pps:6.2f}x {xr} {lat * 1e3:9.1f} {base_q / lat:6.2f}x {xq} "
                  f"{agreement:>17}", flush=True)


def reference_encoder(args, path: Path, texts: list[str], queries: list[str]) -> dict | None:
    """colbert-ai's encoder on the same checkpoint and texts (benchmarks/encode_reference.py, run by
    ``--reference-python``), and the largest difference between its vectors and colja's fp32 ones."""
    import os
    import subprocess
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        data, vecs = Path(tmp) / "texts.json", Path(tmp) / "ref.npy"
        data.write_text(json.dumps({"passages": texts, "queries": queries}, ensure_ascii=False), encoding="utf-8")
        cmd = [args.reference_python, str(Path(__file__).with_name("encode_reference.py")), "--model",
               str(Path(path).resolve()), "--texts", str(data), "--threads", str(args.threads), "--repeats",
               str(args.repeats), "--doc-maxlen", "300", "--vectors-out", str(vecs)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        if out.returncode != 0:
            print(f"reference encoder failed: {out.stderr[-1500:]}")
            return None
        row = json.loads(out.stdout.strip().splitlines()[-1])
        version = subprocess.run([args.reference_python, "-c", "import importlib.metadata as m; "
                                  "print(m.version('colbert-ai'))"], capture_output=True, text=True).stdout.strip()
        fp32 = ColBERT.from_pretrained(path, device="cpu", precision="fp32", doc_maxlen=300)
        mine, _ = fp32.encode_documents(texts[:4], return_flat=True, show_progress=False)
        theirs = np.load(vecs)
        diff = float(np.abs(mine.numpy() - theirs).max()) if theirs.shape == tuple(mine.shape) else float("inf")
        return {**row, "version": version, "max_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["batching", "precision", "all"], default="all")
    ap.add_argument("--reference-python", help="python of a venv with colbert-ai (+ fugashi, unidic-lite): time the "
                    "reference encoder on the same checkpoints and texts in this run")
    ap.add_argument("--precision-passages", type=int, default=96, help="passages per precision row")
    ap.add_argument("--agreement-passages", type=int, default=150,
                    help="jaquad-sample passages searched for the bert-base-sized agreement figure (all for the small model)")
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(SHARED / "fixtures" / "colbert-tiny-ja" / "model"))
    ap.add_argument("--doc-maxlen", type=int, default=300,
                    help="the fixture's own doc_maxlen is 64, which cuts nearly every passage; 300 is JaColBERTv2.5's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.simplefilter("ignore", colja.TruncationWarning)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}")
    if args.part in ("precision", "all"):
        precision_study(args)
    if args.part == "precision":
        return
    model = ColBERT.from_pretrained(args.model, device="cpu", doc_maxlen=args.doc_maxlen, precision="fp32")
    texts = load_passages(args.passages)
    print(f"colja {colja.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={args.threads}, passages={len(texts)}, batch={args.batch_size}, doc_maxlen={model.doc_maxlen}")

    t = time.perf_counter()
    pieces = colja.model.tokenization.wordpiece_ids(model.tokenizer, texts)
    tok_s = time.perf_counter() - t
    print(f"tokenization alone: {len(texts) / tok_s:,.0f} passages/s")

    model.encode_documents(texts[:64], batch_size=args.batch_size, show_progress=False)  # warm-up
    runs = {}
    for name, sort in (("file order", False), ("length-bucketed", True)):
        runs[name] = timed(lambda: model.encode_documents(texts, batch_size=args.batch_size, sort_by_length=sort, show_progress=False), args.repeats)
    for name, secs in runs.items():
        med = statistics.median(secs)
        print(f"{name:>16}: median {med:6.2f}s  min {min(secs):6.2f}s  -> {len(texts) / med:7.1f} passages/s")
    ratio = statistics.median(runs["file order"]) / statistics.median(runs["length-bucketed"])
    print(f"length-bucketed / file order throughput: {ratio:.2f}x")
    lengths = sorted(min(len(p) + 3, model.doc_maxlen) for p in pieces)
    print(f"(tokens per passage after truncation: mean {sum(lengths) / len(lengths):.0f}, "
          f"median {lengths[len(lengths) // 2]}, max {lengths[-1]}; tokenization is included in both timings)")


if __name__ == "__main__":
    main()
