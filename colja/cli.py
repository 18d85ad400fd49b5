"""The ``colja`` command. Each subcommand lives in ``colja/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    from colja import __version__
    from colja.commands import COMMANDS

    parser = argparse.ArgumentParser(prog="colja", description="Japanese late-interaction (ColBERT) retrieval.")
    parser.add_argument("--version", action="version", version=f"colja {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"colja.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from colja.errors import ColjaError

    try:
        return int(args.func(args) or 0)
    except ColjaError as e:
        print(f"colja: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `colja demo | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
