"""Probe: ONNX Runtime fp32 / int8 (dynamic quantisation) against torch fp32 / int8, bert-base-sized ColBERT.

    pip install onnxruntime onnx   # not colja dependencies
    python benchmarks/encode_onnx.py [N_PASSAGES]   # after benchmarks/encode.py --part precision made the checkpoint

Exports colja's fp32 encoder (backbone + projection + L2 norm) to ONNX (legacy
exporter, opset 17, dynamic batch/length), quantises it with
``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights), and times the four
runners on the same tokenized batches of 16 jaquad-dev-large passages (2 threads),
printing passages/s, the ratio to torch fp32 and the token cosine with torch fp32.
An exploration (no ONNX backend is wired into colja): see the report of issue 15.
"""
import json, os, statistics, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(2)
from colja import ColBERT
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

N = int(sys.argv[1]) if len(sys.argv) > 1 else 32
from pathlib import Path
REPO = Path(__file__).resolve().parents[1]
path = REPO / "bench-data" / "models" / "colbert-bert-base-random"
corpus = REPO.parent / "shared" / "data" / "jaquad-dev-large" / "corpus.jsonl"
texts = [json.loads(l)["text"] for l, _ in zip(open(corpus, encoding="utf-8"), range(N))]
fp32 = ColBERT.from_pretrained(path, device="cpu", precision="fp32", doc_maxlen=300)
batches = []
for i in range(0, N, 16):
    ids, mask = fp32.tokenize_documents(texts[i:i + 16])
    batches.append((ids, mask))
out = REPO / "bench-data" / "onnx"
out.mkdir(parents=True, exist_ok=True)
if not os.path.exists(f"{out}/bert.onnx"):
    class Wrap(torch.nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, ids, mask): return self.m(ids, mask)
    torch.onnx.export(Wrap(fp32).eval(), (batches[0][0], batches[0][1]), f"{out}/bert.onnx", dynamo=False,
                      input_names=["ids", "mask"], output_names=["vecs"], opset_version=17,
                      dynamic_axes={"ids": {0: "b", 1: "l"}, "mask": {0: "b", 1: "l"}, "vecs": {0: "b", 1: "l"}})
    quantize_dynamic(f"{out}/bert.onnx", f"{out}/bert-int8.onnx", weight_type=QuantType.QInt8, per_channel=False)

def ort_session(f):
    o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(f, o, providers=["CPUExecutionProvider"])
    return lambda ids, mask: torch.from_numpy(s.run(None, {"ids": ids.numpy(), "mask": mask.numpy()})[0])

with torch.inference_mode():
    t8 = ColBERT.from_pretrained(path, device="cpu", precision="int8", doc_maxlen=300)
    runners = {"torch fp32": fp32, "torch int8": t8, "ort fp32": ort_session(f"{out}/bert.onnx"),
               "ort int8": ort_session(f"{out}/bert-int8.onnx")}
    ref = [fp32(i, m) for i, m in batches]
    res = {}
    for name, run in runners.items():
        run(*batches[0])
        secs = []
        for _ in range(2):
            t = time.perf_counter(); outs = [run(i, m) for i, m in batches]; secs.append(time.perf_counter() - t)
        cos = torch.cat([torch.nn.functional.cosine_similarity(a.float(), b, dim=2)[m.bool()] for a, b, (_, m) in zip(outs, ref, batches)])
        res[name] = N / statistics.median(secs)
        print(f"{name:>11}: {res[name]:6.2f} passages/s  {res[name] / res['torch fp32']:5.2f}x torch fp32  token cosine mean {cos.mean():.5f} min {cos.min():.4f}", flush=True)
