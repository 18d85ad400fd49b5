"""``colja kernels``: build the compiled kernels ahead of time, or say which are in use."""

from __future__ import annotations

import json
import time


def cmd_kernels(args) -> int:
    from colja.kernels import _build

    kinds = ["cpu"] + (["cuda"] if args.cuda else [])
    status = 0
    for kind in kinds:
        t = time.perf_counter()
        if args.action == "build":
            try:
                _build.require_module(kind)
            except Exception as e:  # KernelBuildError: say it, exit 1
                print(f"colja kernels: {kind}: {e}")
                status = 1
                continue
        info = _build.backend_info(kind)
        if args.json:
            print(json.dumps({"kind": kind, **{k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}}))
        else:
            where = info.get("path", "")
            print(f"{kind}: {info['backend']}" + (f" [{info.get('simd')}]" if info.get("simd") else "")
                  + (f", {where}" if where else "") + f" ({time.perf_counter() - t:.1f} s)")
    _encoder_line(args.json)
    return status


def _encoder_line(as_json: bool) -> None:
    """Which precision ``precision="auto"`` gives the encoder on this CPU (not a kernel, asked about alongside)."""
    import torch

    from colja.model.precision import PRECISION_ENV, int8_engine, resolve_precision

    chosen = resolve_precision("auto", torch.device("cpu"))
    engine = int8_engine() if chosen == "int8" else None
    if as_json:
        print(json.dumps({"kind": "encoder", "precision": chosen, **({"int8_engine": engine} if engine else {})}))
    else:
        print(f"encoder: {chosen} on this CPU" + (f" ({engine} engine)" if engine else "")
              + f" when precision='auto' (force one with precision= or ${PRECISION_ENV})")


def add_parser(sub) -> None:
    p = sub.add_parser("kernels", help="build the C++ (and CUDA) kernels ahead of time, or show which are in use",
                       description="Build the compiled kernels now (servers and CI images then never pay the "
                                   "one-time compile on a first request), or show the backend in use "
                                   "and the encoder precision this CPU gets.")
    p.add_argument("action", choices=("build", "info"), help="build: compile now if needed; info: show the backend")
    p.add_argument("--cuda", action="store_true", help="also the CUDA kernels (needs a GPU)")
    p.add_argument("--json", action="store_true", help="one JSON line per kind")
    p.set_defaults(func=cmd_kernels)
