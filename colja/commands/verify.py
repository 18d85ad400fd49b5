"""``colja verify``: check an index folder (e.g. one received from someone else) and list every problem."""

from __future__ import annotations

import json
import time


def cmd_verify(args) -> int:
    from colja import Index

    t = time.perf_counter()
    problems = Index.verify(args.path, deep=not args.quick)
    seconds = time.perf_counter() - t
    if args.json:
        print(json.dumps({"path": args.path, "ok": not problems, "deep": not args.quick, "seconds": round(seconds, 3),
                          "problems": [{"file": p.file, "invariant": p.invariant, "detail": p.detail}
                                       for p in problems]}, ensure_ascii=False))
    else:
        for p in problems:
            print(f"problem: {p}")
        what = "quick" if args.quick else "deep"
        print(f"{args.path}: {'ok' if not problems else f'{len(problems)} problem(s)'} ({what} check, {seconds:.2f}s)")
    return 1 if problems else 0


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check an index folder: manifest, checksums, array values, documents, "
                                      "first stages (exit 1 when a problem is found)")
    p.add_argument("path", help="index folder (or one generation folder)")
    p.add_argument("--quick", action="store_true",
                   help="only the checks every load runs (default: also the expensive ones: IVF and norms "
                        "recomputed, SQLite integrity check, duplicate doc ids, first stages opened)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_verify)
