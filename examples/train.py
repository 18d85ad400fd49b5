"""Fine-tune a ColBERT model on your own query / passage data (offline, about a minute on a CPU).

    python examples/train.py                       # starts from the shipped models/colja-small-ja
    python examples/train.py --model cl-tohoku/bert-base-japanese-v3 --steps 500   # a real run (GPU)

Each training row is a query, the passage that answers it, and hard negatives
(passages that look relevant but are not). Rows can also come from a JSONL
file or a ``datasets.Dataset`` with the same fields, or from a BEIR folder plus
``colja mine-negatives``; see ``colja train --help``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from colja import ColBERT
from colja.train import train

HERE = Path(__file__).resolve().parent
SMALL_MODEL = HERE.parent / "models" / "colja-small-ja"

ROWS = [
    {"query": "返品はいつまでできますか",
     "positive": "商品到着後30日以内であれば、未使用品に限り返品を承ります。",
     "negatives": ["ポイントは購入金額100円ごとに1ポイント貯まります。", "配送は通常2〜3営業日でお届けします。"]},
    {"query": "送料はいくらですか",
     "positive": "5000円以上のご注文で送料無料、それ未満は一律500円です。",
     "negatives": ["商品到着後30日以内であれば、未使用品に限り返品を承ります。", "会員登録は無料です。"]},
    {"query": "ポイントの貯まり方",
     "positive": "ポイントは購入金額100円ごとに1ポイント貯まります。",
     "negatives": ["5000円以上のご注文で送料無料、それ未満は一律500円です。", "配送は通常2〜3営業日でお届けします。"]},
    {"query": "届くまで何日かかる",
     "positive": "配送は通常2〜3営業日でお届けします。",
     "negatives": ["会員登録は無料です。", "ポイントは購入金額100円ごとに1ポイント貯まります。"]},
    {"query": "会員になるのにお金はかかる",
     "positive": "会員登録は無料です。",
     "negatives": ["5000円以上のご注文で送料無料、それ未満は一律500円です。", "商品到着後30日以内であれば、未使用品に限り返品を承ります。"]},
    {"query": "支払い方法は何が使えますか",
     "positive": "お支払いはクレジットカード、コンビニ払い、銀行振込に対応しています。",
     "negatives": ["会員登録は無料です。", "配送は通常2〜3営業日でお届けします。"]},
]


def report(model: ColBERT) -> str:
    """Top-1 accuracy and the mean margin (answer's score minus the best other passage's, per query vector)."""
    import torch

    scores = model.score([r["query"] for r in ROWS], [r["positive"] for r in ROWS]) / model.query_maxlen
    own = scores.diagonal()
    others = scores.masked_fill(torch.eye(len(ROWS), dtype=torch.bool), float("-inf")).max(1).values
    accuracy = float((scores.argmax(1) == torch.arange(len(ROWS))).float().mean())
    return f"top-1 accuracy {accuracy:.2f}, mean margin {float((own - others).mean()):+.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(SMALL_MODEL), help="a ColBERT checkpoint or a BERT backbone")
    parser.add_argument("--output", default=str(HERE.parent / "build" / "example-finetuned"))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    model = ColBERT.from_pretrained(args.model, device="cpu")
    print(f"before: {report(model)}")
    result = train(
        model, ROWS, output_dir=args.output,
        max_steps=args.steps, batch_size=3, nway=2, in_batch_negatives=True,
        lr=5e-5, warmup=0.1, seed=0, save_steps=0, logging_steps=5,
    )
    print(f"after:  {report(result.model)}  (on the training rows; measure on held-out data for real)")
    print(f"saved to {result.output_dir}: load it with ColBERT.from_pretrained({str(result.output_dir)!r})")


if __name__ == "__main__":
    main()
