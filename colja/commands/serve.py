"""``colja serve``: the HTTP service (search, rerank, writes, explain, metrics, search page)."""

from __future__ import annotations

import sys


def _indexes(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--index takes NAME=PATH (e.g. --index wiki=indexes/wiki), got {pair!r}")
        if name in out:
            raise ValueError(f"--index {name!r} is given twice")
        out[name] = path
    return out


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from colja.server import create_app
    except ImportError as e:
        print(f'colja serve: error: {e.name or e} is missing; pip install "colja[server]"', file=sys.stderr)
        return 2
    try:
        indexes = _indexes(args.index)
        app = create_app(indexes, model=args.model, api_keys=args.api_keys, workers=args.workers,
                         request_timeout=args.timeout, max_request_bytes=args.max_request_mb * 2**20,
                         batch_window=args.batch_window_ms / 1000, max_batch=args.max_batch, mmap=args.mmap)
    except (ValueError, TypeError, OSError) as e:
        print(f"colja serve: error: {e}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_keys:
        print(f"colja serve: warning: listening on {args.host} without --api-keys: anyone who can reach it "
              "can read and write the indexes", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=args.graceful_timeout, access_log=args.access_log)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve indexes over HTTP (search, rerank, writes, search page at /)")
    p.add_argument("--index", action="append", required=True, metavar="NAME=PATH",
                   help="an index to serve under NAME (repeat for several)")
    p.add_argument("--model", default=None, help="model for every index and for /v1/rerank "
                                                 "(default: each index's recorded model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-keys", default=None, metavar="FILE",
                   help="file of '<key> read|write' lines; then every request needs 'Authorization: Bearer <key>'")
    p.add_argument("--workers", type=int, default=1,
                   help="threads answering searches (default 1: torch already uses every core; more for GPUs)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request before a 504 (default 60)")
    p.add_argument("--max-request-mb", type=int, default=8, help="largest request body in MiB (default 8)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="concurrent single-query searches run as one batch of at most this many (1: no batching; default 32)")
    p.add_argument("--batch-window-ms", type=float, default=2.0,
                   help="a batch waits this long for queries of requests already in flight (0: no waiting; default 2)")
    p.add_argument("--mmap", action="store_true", help="memory-map the index arrays instead of reading them")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds to finish requests in flight on shutdown (default 30)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn and colja log level (default info)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="don't log each request")
    p.set_defaults(func=cmd_serve)
