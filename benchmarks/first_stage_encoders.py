"""Dense and static first stages against BM25: encode speed, query latency, quality, flat vs HNSW.

    python benchmarks/first_stage_encoders.py [--dataset jsquad-dev] [--dense MODEL ...] [--static MODEL ...]
        [--trust-remote-code] [--truncate-dim D] [--tiny] [--queries N] [--k 10] [--threads 1] [--json out.json]

Each model (a hub id or a local sentence-transformers folder) indexes the
dataset's ``title + "\\n" + text`` passages; the script reports the build
time (passages/s), per-query latency on one thread (query encoding + search,
p50/p95), Recall@1/5/10, nDCG@10 and MRR@10, and the search-only latency of
the exact flat store against HNSW over the same vectors (with HNSW's overlap
with the exact top-k). BM25 runs in the same process as the baseline (when
bm25s is installed) and latencies are also given as ratios to it.

Defaults: ``--dense pkshatech/GLuCoSE-base-ja-v2 --static
hotchpotch/static-embedding-japanese`` (needs the hub or a local copy).
``--tiny`` swaps in random tiny models built offline (a 1-layer BERT and a
64-d StaticEmbedding over the bert-base-japanese-v3 vocabulary): their speed
numbers are real, their quality is noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

from colja.eval import evaluate, load_beir, to_markdown  # noqa: E402
from colja.firststage import DenseRetriever, StaticRetriever, VectorIndex, VectorIndexSettings  # noqa: E402

SHARED = Path(os.environ.get("COLJA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10")


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def tiny_models(folder: Path) -> tuple[str, str]:
    """Random tiny dense and static sentence-transformers folders (speed only)."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers 6.x layout
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling, StaticEmbedding
    except ImportError:  # 3.x - 5.x
        from sentence_transformers.models import Pooling, StaticEmbedding, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel

    tok_dir = SHARED / "tokenizers" / "bert-base-japanese-v3"
    torch.manual_seed(0)
    backbone = folder / "backbone"
    BertModel(BertConfig(vocab_size=32768, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(backbone)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tok_dir / name, backbone / name)
    transformer = Transformer(str(backbone), max_seq_length=256)
    dense = folder / "tiny-dense"
    SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu").save(str(dense))

    vocab = {line.rstrip("\n"): i for i, line in enumerate((tok_dir / "vocab.txt").open(encoding="utf-8"))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    static = folder / "tiny-static"
    SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=64)], device="cpu").save(str(static))
    return str(dense), str(static)


def latency_ms(fn, items) -> np.ndarray:
    for it in items[:20]:  # warm-up
        fn(it)
    out = np.empty(len(items))
    for i, it in enumerate(items):
        t = time.perf_counter()
        fn(it)
        out[i] = time.perf_counter() - t
    return out * 1e3


def describe(lat: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "mean": float(lat.mean())}


def run_model(cls, model: str, passages, queries, qids, data, args, baseline_ms: float | None) -> dict:
    settings = {"trust_remote_code": args.trust_remote_code, "truncate_dim": args.truncate_dim}
    t = time.perf_counter()
    retriever = cls.build(passages, model, show_progress=False, **settings)
    build_s = time.perf_counter() - t
    print(f"\n## {cls.name}: {model}\nprefixes query {retriever.query_prefix!r} / document "
          f"{retriever.document_prefix!r}, dim {retriever.dim}, build {build_s:.2f} s "
          f"({len(passages) / build_s:,.0f} passages/s)")

    lat = describe(latency_ms(lambda q: retriever.search(q, args.k), queries))
    ratio = f" = {lat['mean'] / baseline_ms:.2f}x BM25" if baseline_ms else ""
    print(f"query (encode + search, k={args.k}, 1 thread): p50 {lat['p50']:.3f} ms, p95 {lat['p95']:.3f} ms, "
          f"mean {lat['mean']:.3f} ms{ratio}")
    hits = retriever.search_batch(queries, args.k)
    ids = data.doc_ids
    metrics = evaluate({q: {ids[p]: float(s) for p, s in zip(h.pids, h.scores)} for q, h in zip(qids, hits)},
                       {q: data.qrels[q] for q in qids}, METRICS)

    qv = retriever.encode_queries(queries)
    flat = retriever._vectors
    hnsw = VectorIndex(flat.dim, VectorIndexSettings(hnsw_threshold=0))
    t = time.perf_counter()
    hnsw.add(flat.vectors())
    hnsw_build_s = time.perf_counter() - t
    flat_ms = describe(latency_ms(lambda v: flat.search(v[None], args.k), list(qv)))
    hnsw_ms = describe(latency_ms(lambda v: hnsw.search(v[None], args.k), list(qv)))
    exact, approx = flat.search(qv, args.k)[1], hnsw.search(qv, args.k)[1]
    overlap = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact, approx)]))
    print(f"search only ({len(flat):,} x {flat.dim}): flat p50 {flat_ms['p50']:.3f} ms, HNSW p50 "
          f"{hnsw_ms['p50']:.3f} ms (built in {hnsw_build_s:.2f} s, top-{args.k} overlap {overlap:.3f})")
    return {"model": model, "kind": cls.name, "dim": retriever.dim, "build_s": build_s, "latency_ms": lat,
            "metrics": metrics, "flat_ms": flat_ms, "hnsw_ms": hnsw_ms, "hnsw_overlap": overlap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="jsquad-dev")
    ap.add_argument("--dense", action="append", help="sentence-transformers model (repeatable)")
    ap.add_argument("--static", action="append", help="static model (repeatable)")
    ap.add_argument("--trust-remote-code", action="store_true", help="allow models that ship code (SSE)")
    ap.add_argument("--truncate-dim", type=int, help="Matryoshka truncation for every model")
    ap.add_argument("--tiny", action="store_true", help="random tiny models built offline (speed only)")
    ap.add_argument("--queries", type=int, default=1000, help="queries to time and score (0: all)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for encoding")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    data = load_beir(SHARED / "data" / args.dataset)
    passages = data.passages()
    qids = list(data.queries)[: args.queries or None]
    queries = [data.queries[q] for q in qids]
    print(f"sentence-transformers {version('sentence-transformers')}, torch {torch.__version__}, faiss "
          f"{version('faiss-cpu')}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, torch threads {args.threads}")
    print(f"{args.dataset}: {len(passages):,} passages, {len(queries):,} of {len(data.queries):,} queries")

    tmp = Path(tempfile.mkdtemp(prefix="colja-bench-"))
    try:
        if args.tiny:
            dense, static = tiny_models(tmp)
            models = [(DenseRetriever, dense), (StaticRetriever, static)]
        else:
            models = [(DenseRetriever, m) for m in (args.dense or [DenseRetriever.DEFAULT_MODEL])]
            models += [(StaticRetriever, m) for m in (args.static or [StaticRetriever.DEFAULT_MODEL])]

        rows, results, baseline_ms = {}, [], None
        try:
            from colja.firststage import BM25Retriever

            bm25 = BM25Retriever.build(passages, show_progress=False)
            lat = describe(latency_ms(lambda q: bm25.search(q, args.k), queries))
            baseline_ms = lat["mean"]
            hits = bm25.search_batch(queries, args.k)
            ids = data.doc_ids
            rows["BM25 (baseline)"] = evaluate(
                {q: {ids[p]: float(s) for p, s in zip(h.pids, h.scores)} for q, h in zip(qids, hits)},
                {q: data.qrels[q] for q in qids}, METRICS)
            print(f"\n## bm25 (baseline): query p50 {lat['p50']:.3f} ms, mean {lat['mean']:.3f} ms")
        except ImportError:
            print("bm25s is not installed: no BM25 baseline")

        for cls, model in models:
            res = run_model(cls, model, passages, queries, qids, data, args, baseline_ms)
            results.append(res)
            rows[f"{cls.name}: {Path(model).name}"] = res["metrics"]
        print()
        print(to_markdown(rows))
        if args.tiny:
            print("(--tiny: random models, so their quality is noise; the speed numbers are real)")
        print(f"peak RSS {peak_rss_mib():.0f} MiB")
        if args.json:
            args.json.write_text(json.dumps({"dataset": args.dataset, "queries": len(queries),
                                             "baseline_mean_ms": baseline_ms, "results": results}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
