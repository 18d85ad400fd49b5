"""How far a 2-bit index moves when the same fp32 encoder runs on other CPU kernels.

    python benchmarks/encode_isa_agreement.py [--passages 1000] [--questions 400] [--model models/colja-small-ja]

Encodes the first N jaquad-dev-large passages and their questions in fp32 twice:
in this process, and in a subprocess under PyTorch's AVX2 caps (as on an AVX2-only
CPU; see ``benchmarks/encode.py --cap-isa``). The vectors differ only by rounding
(~3e-7); the script prints that difference and the top-10 agreement of the second
encoding with the first for exact MaxSim, for the first index's codec, and for an
index trained on each: the floor under any "indexes built from two encoders agree"
figure (``benchmarks/encode.py --part precision`` reports the fast precisions').
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode import (
    AVX2_CAPS,
    REPO,
    agreement,
    build_index,
    codec_top10,
    exact_top10,
    index_top10,
    load_passages,
    load_questions_for,
    recall_at_10,
)


def encode(model: str, n: int, questions: int, out: Path) -> None:
    import warnings

    import colja
    from colja import ColBERT

    warnings.simplefilter("ignore", colja.TruncationWarning)
    torch.set_num_threads(2)
    texts = load_passages(n)
    qs = load_questions_for(n, questions)[0]
    m = ColBERT.from_pretrained(model, device="cpu", precision="fp32", doc_maxlen=300)
    docs = m.encode_documents(texts, batch_size=16, show_progress=False)
    torch.save({"docs": docs, "queries": m.encode_queries(qs, show_progress=False)}, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--model", default=str(REPO / "models" / "colja-small-ja"))
    ap.add_argument("--encode-to", type=Path, help=argparse.SUPPRESS)  # the subprocess's job
    args = ap.parse_args()
    if args.encode_to:
        encode(args.model, args.passages, args.questions, args.encode_to)
        return
    with tempfile.TemporaryDirectory() as tmp:
        here, capped = Path(tmp) / "here.pt", Path(tmp) / "avx2.pt"
        encode(args.model, args.passages, args.questions, here)
        cmd = [sys.executable, __file__, "--passages", str(args.passages), "--questions", str(args.questions),
               "--model", args.model, "--encode-to", str(capped)]
        subprocess.run(cmd, check=True, env={**os.environ, **AVX2_CAPS})
        a, b = torch.load(here), torch.load(capped)
        relevant = load_questions_for(args.passages, args.questions)[1]
        D1, Q1, D2, Q2 = a["docs"], a["queries"], b["docs"], b["queries"]
        diff = max(float((x - y).abs().max()) for x, y in zip(D1, D2))
        print(f"{args.model}: {len(D1)} passages, {len(Q1)} questions; fp32 here "
              f"({torch.backends.cpu.get_cpu_capability()}) vs fp32 under the AVX2 caps: max abs diff {diff:.1e} "
              f"(passages), {float((Q1 - Q2).abs().max()):.1e} (queries)")
        i1, i2 = build_index(D1, Path(tmp)), build_index(D2, Path(tmp))
        t1, t2 = index_top10(i1, Q1), index_top10(i2, Q2)
        print(f"top-10 agreement: exact MaxSim {agreement(exact_top10(Q2, D2), exact_top10(Q1, D1)):.3f}, "
              f"first index's codec {agreement(codec_top10(i1, D2, Q2), codec_top10(i1, D1, Q1)):.3f}, "
              f"own index {agreement(t2, t1):.3f}; recall@10 {recall_at_10(t1, relevant):.3f} vs "
              f"{recall_at_10(t2, relevant):.3f}")


if __name__ == "__main__":
    main()
