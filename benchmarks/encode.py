"""Encoding throughput: batching order, and the encoder's precision, measured in one run.

    python benchmarks/encode.py [--part batching|precision|all] [--passages 2000] [--batch-size 32] [--threads 2]

``batching``: encodes the first N passages of ../shared/data/jaquad-dev-large with
the fixture model (a 2-layer BERT, so the tokenizer's share of the time is larger
than with a full-size model) and prints passages/s for length-bucketed and
file order and their ratio.

``precision``: fp32 (the reference's exact computation: colja's fp32 vectors equal
colbert-ai's, see tests/model/test_parity.py) against bf16 and int8
(:mod:`colja.model.precision`) on a bert-base-sized ColBERT with random weights and
the real bert-base-japanese-v3 vocabulary (made here, no download; 12 layers, 768
hidden, HF_ColBERT format, so colbert-ai loads it too) and on the shipped small
model: passages/s, single-query latency, the ratio to fp32 and to the reference
encoder, then top-10 agreements with fp32 over the first ``--agreement-passages``
passages and their jaquad questions (each encoded in the row's precision):

* exact: exact MaxSim on the vectors, the encoder's own share of any difference;
* codec: the vectors compressed with the fp32 index's codec (its centroids and
  buckets), exact MaxSim over the decompressed vectors;
* index: a 2-bit colja index trained and built from the row's vectors (default
  search) against the one built from fp32's; and recall@10 of that index against
  jaquad's answer passages.

A row "fp32, k-means seed 124" indexes the fp32 vectors again with another seed:
how far a 2-bit index's top 10 moves with its codec alone. ``auto`` is what this
machine picks.

    python benchmarks/encode.py --part precision --agreement-passages 1000 \
        --reference-python /path/to/ref-venv/bin/python
    python benchmarks/encode.py --part precision --precisions fp32,int8 --cap-isa avx2 \
        --reference-python /path/to/ref-venv/bin/python

``--cap-isa avx2`` restarts the script under the instruction-set caps that PyTorch
and its libraries honour (``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``,
``ONEDNN_MAX_CPU_ISA``, ``FBGEMM_ENABLE_INSTRUCTIONS``), the reference subprocess
included: an AVX2-only CPU of the same make, as far as these libraries can tell.

``--reference-python``: a venv with colbert-ai 0.2.22 (``transformers<4.50``,
``fugashi``, ``unidic-lite``); its ``Checkpoint.docFromText`` / ``queryFromText``
encode the same texts on the same checkpoints with the same threads and batch
size in a subprocess (``benchmarks/encode_reference.py``), and the max abs
difference between its vectors and colja fp32's is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import colja
from colja import ColBERT, Index

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


def agreement(got: list[set[int]], base: list[set[int]]) -> float:
    return sum(len(a & b) for a, b in zip(got, base)) / (10 * len(base))


def load_questions_for(n_passages: int, limit: int) -> tuple[list[str], list[set[int]]]:
    """Questions of jaquad-dev-large whose answer passage is among its first ``n_passages``, with those pids."""
    folder = SHARED / "data" / "jaquad-dev-large"
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        pid = {json.loads(line)["_id"]: i for line, i in zip(f, range(n_passages))}
    relevant: dict[str, set[int]] = {}
    for row in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, cid = row.split("\t")[:2]
        if cid in pid:
            relevant.setdefault(qid, set()).add(pid[cid])
    rows = [json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["_id"] in relevant][:limit]
    return [r["text"] for r in rows], [relevant[r["_id"]] for r in rows]


def recall_at_10(top: list[set[int]], relevant: list[set[int]]) -> float:
    return sum(len(t & r) / len(r) for t, r in zip(top, relevant)) / len(relevant)


def build_index(docs, root: Path, seed: int = 123) -> Index:
    """A default 2-bit index of ``docs`` in a new folder under ``root`` (the caller removes ``root``)."""
    return Index.from_embeddings(docs, Path(tempfile.mkdtemp(dir=root)) / "index", show_progress=False, seed=seed)


def index_top10(index: Index, Q) -> list[set[int]]:
    """Top-10 of a colja index (2-bit PLAID, default search) searched with ``Q``."""
    return [{int(p) for p in row if p >= 0} for row in index.search_embeddings(Q, k=10).pids]


def codec_top10(index: Index, docs, Q) -> list[set[int]]:
    """Top-10 by exact MaxSim over ``docs`` compressed with ``index``'s codec (k-means centroids and buckets)."""
    with index._pinned() as snapshot:
        codec = snapshot.codec
    flat = torch.cat([d.float() for d in docs])
    codes, residuals = codec.compress(flat)
    return exact_top10(Q, list(torch.split(codec.decompress(codes, residuals), [len(d) for d in docs])))


def run_reference(python: str, path: Path, texts: list[str], queries: list[str], args) -> tuple[dict, dict]:
    """colbert-ai's encoder on ``texts`` / ``queries`` in its own venv (benchmarks/encode_reference.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "texts.json", Path(tmp) / "vectors.npz"
        spec.write_text(json.dumps({"passages": texts, "queries": queries, "check": texts[:CHECK],
                                    "check_queries": queries[:CHECK]}, ensure_ascii=False), encoding="utf-8")
        cmd = [python, str(REPO / "benchmarks" / "encode_reference.py"), "--model", str(path), "--texts", str(spec),
               "--out", str(out), "--threads", str(args.threads), "--bsize", str(BATCH), "--doc-maxlen", "300",
               "--query-maxlen", "32", "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the reference encoder failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
        with np.load(out) as z:
            vectors = {name: z[name] for name in z.files}
    return json.loads(done.stdout.strip().splitlines()[-1]), vectors


def check_against_reference(model: ColBERT, texts: list[str], queries: list[str], ref: dict) -> str:
    """Max abs difference of colja fp32's passage and query vectors from the reference's."""
    flat, doclens = model.encode_documents(texts[:CHECK], batch_size=BATCH, return_flat=True, show_progress=False)
    if not np.array_equal(doclens.numpy(), ref["doclens"]):
        return f"doclens differ: {doclens.tolist()} vs {ref['doclens'].tolist()}"
    Q = model.encode_queries(queries[:CHECK]).numpy()
    return (f"colja fp32 vs reference on {CHECK} passages / {CHECK} queries: max abs diff "
            f"{np.abs(flat.numpy() - ref['doc_embeddings']).max():.2e} (passage vectors), "
            f"{np.abs(Q - ref['query_embeddings']).max():.2e} (query vectors)")


AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}
ISA_CAPS = {"avx2": AVX2_CAPS,  # Haswell to Alder Lake, Zen 1-3
            "avx512-vnni": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},  # Ice Lake, Cascade Lake
            "avx512-bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}}  # Zen 4, Cooper Lake: bf16 without AMX
CHECK = 8  # passages and queries whose vectors are compared with the reference's
BATCH = 16


def precision_study(args) -> None:
    from colja.model.precision import resolve_precision

    n_agree = max(args.agreement_passages or args.precision_passages, args.precision_passages)
    all_texts = load_passages(n_agree)
    texts = all_texts[:args.precision_passages]
    questions, relevant = load_questions_for(n_agree, args.questions)
    queries = questions[:20]
    auto = resolve_precision("auto", torch.device("cpu"))
    print(f"\nprecision: auto picks {auto!r} on this CPU; timed on {len(texts)} passages of jaquad-dev-large "
          f"(doc_maxlen 300, batch {BATCH}) and {len(queries)} single queries, threads={args.threads}.\n"
          f"Top-10 agreement with fp32 over the first {n_agree} passages and their {len(questions)} questions "
          f"(each encoded in the row's precision):\n"
          f"  exact  = exact MaxSim on the vectors (the encoder's own share of any difference)\n"
          f"  codec  = 2-bit index with fp32's codec (its k-means centroids and buckets), searched exhaustively\n"
          f"  index  = a 2-bit colja index trained and built from the row's vectors (default search) vs fp32's\n"
          f"  R@10   = recall@10 of that index against jaquad's answer passages (what a user sees)\n"
          f"The row 'fp32, k-means seed 124' is the same fp32 vectors indexed with another seed: how much\n"
          f"a 2-bit index's top 10 moves from its codec alone.")
    models = [("bert-base-sized (random weights)", bert_base_checkpoint())]
    if not args.skip_small:
        models.append(("colja-small-ja", REPO / "models" / "colja-small-ja"))
    for label, path in models:
        with tempfile.TemporaryDirectory(prefix="colja-encode-") as tmp:
            precision_rows(args, label, path, texts, all_texts, queries, questions, relevant, Path(tmp))


def precision_rows(args, label, path, texts, all_texts, queries, questions, relevant, tmp: Path) -> None:
    """The precision table of one checkpoint (indexes built under ``tmp``)."""
    print(f"\n{label}:", flush=True)
    rows = []
    if args.reference_python:
        ref, ref_vectors = run_reference(args.reference_python, path, texts, queries, args)
        rows.append((f"reference colbert-ai {ref['colbert']} fp32", ref["passages_per_s"], ref["query_ms"] / 1e3,
                     None))
    base = None
    for precision in args.precisions:
        model = ColBERT.from_pretrained(path, device="cpu", precision=precision, doc_maxlen=300)
        model.encode_documents(texts[:8], show_progress=False)  # warm-up, as the reference's
        model.encode_queries(queries[:1])
        docs = []
        secs = timed(lambda: docs.append(model.encode_documents(texts, batch_size=BATCH, show_progress=False)),
                     args.repeats)
        lat = statistics.median(timed(lambda: [model.encode_queries([q]) for q in queries], args.repeats)) / len(queries)
        vectors = docs[-1] + (model.encode_documents(all_texts[len(texts):], batch_size=BATCH, show_progress=False)
                              if len(all_texts) > len(texts) else [])
        Q = model.encode_queries(questions, show_progress=False)
        index = build_index(vectors, tmp)
        top, exact = index_top10(index, Q), exact_top10(Q, vectors)
        if precision == "fp32":
            base = {"index": index, "top": top, "exact": exact, "codec": codec_top10(index, vectors, Q)}
            seeded = index_top10(build_index(vectors, tmp, seed=124), Q)
            if args.reference_python:
                print(check_against_reference(model, texts, queries, ref_vectors))
        agree = None
        if base is not None:
            codec = base["codec"] if base["index"] is index else codec_top10(base["index"], vectors, Q)
            agree = (agreement(exact, base["exact"]), agreement(codec, base["codec"]),
                     agreement(top, base["top"]), recall_at_10(top, relevant))
        rows.append((f"colja {precision}", len(texts) / statistics.median(secs), lat, agree))
        if precision == "fp32":
            rows.append(("fp32, k-means seed 124", None, None,
                         (1.0, None, agreement(seeded, top), recall_at_10(seeded, relevant))))
    first = rows[0]
    fp32 = next((r for r in rows if r[0] == "colja fp32"), first)
    print(f"{'encoder':>30} {'passages/s':>10} {'x ref':>6} {'x fp32':>6} {'query ms':>8} {'x ref':>6} {'x fp32':>6} "
          f"{'exact':>6} {'codec':>6} {'index':>6} {'R@10':>6}")
    for name, pps, lat, agree in rows:
        speed = (f"{pps:10.2f} {pps / first[1]:5.2f}x {pps / fp32[1]:5.2f}x {lat * 1e3:8.1f} "
                 f"{first[2] / lat:5.2f}x {fp32[2] / lat:5.2f}x") if pps else " " * 54
        cells = " ".join("      " if a is None else f"{a:6.3f}" for a in agree) if agree else ""
        print(f"{name:>30} {speed} {cells}", flush=True)
    print(f"(the fp32 index's own top-10 agreement with fp32 exact MaxSim: {agreement(base['top'], base['exact']):.3f})"
          if base else "")
    if not args.reference_python:
        print("(x ref = x the first row without --reference-python)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["batching", "precision", "all"], default="all")
    ap.add_argument("--precision-passages", type=int, default=96, help="passages per precision row")
    ap.add_argument("--reference-python", help="the python of a venv with colbert-ai (transformers<4.50): "
                    "its encoder is timed on the same checkpoints and texts (benchmarks/encode_reference.py)")
    ap.add_argument("--skip-small", action="store_true", help="the bert-base-sized checkpoint only")
    ap.add_argument("--precisions", default="fp32,bf16,int8",
                    help="comma-separated rows of the precision part (fp32 first: it is the agreement baseline)")
    ap.add_argument("--agreement-passages", type=int, default=0,
                    help="passages of the agreement columns (default: the timed ones; more are encoded untimed)")
    ap.add_argument("--questions", type=int, default=400, help="at most this many questions for the agreement columns")
    ap.add_argument("--cap-isa", choices=sorted(ISA_CAPS), help="re-run under PyTorch's instruction-set caps "
                    "(avx2: ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA, FBGEMM_ENABLE_INSTRUCTIONS; "
                    "avx512-*: oneDNN's), the reference subprocess included: how a CPU with only that ISA fares")
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(SHARED / "fixtures" / "colbert-tiny-ja" / "model"))
    ap.add_argument("--doc-maxlen", type=int, default=300,
                    help="the fixture's own doc_maxlen is 64, which cuts nearly every passage; 300 is JaColBERTv2.5's")
    args = ap.parse_args()
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    caps = ISA_CAPS.get(args.cap_isa or "", {})
    if any(os.environ.get(k) != v for k, v in caps.items()):
        os.environ.update(caps)  # read when torch and its libraries load: start again under them
        os.execv(sys.executable, [sys.executable, *sys.argv])
    torch.set_num_threads(args.threads)
    import warnings

    warnings.simplefilter("ignore", colja.TruncationWarning)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    capped = " ".join(f"{k}={os.environ[k]}" for k in AVX2_CAPS if k in os.environ)
    print(f"CPU: {cpu}; PyTorch uses {torch.backends.cpu.get_cpu_capability()}" + (f" (capped: {capped})" if capped else ""))
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
