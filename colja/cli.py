"""The ``colja`` command. Each subcommand lives in ``colja/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    from colja import __version__
    from colja.commands import COMMANDS

    from colja.commands._args import plain

    parser = argparse.ArgumentParser(prog="colja", description="Japanese late-interaction (ColBERT) retrieval.")
    parser.add_argument("--version", action="version", version=f"colja {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notices (errors still show)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"colja.commands.{name}").add_parser(sub)
    for command in sub.choices.values():
        # -v / -q also after the subcommand; SUPPRESS keeps the value given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log progress details")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars or notices (errors still show)")
        command.description = plain(command.description)
        for action in command._actions:
            action.help = plain(action.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet:
        import os

        os.environ["COLJA_QUIET"] = "1"
        os.environ["COLJA_DISABLE_PROGRESS"] = "1"
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
