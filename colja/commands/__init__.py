"""Subcommands of the ``colja`` CLI: one module each, with ``add_parser(subparsers)``."""

#: modules under colja.commands, in the order ``colja --help`` lists them
COMMANDS = ["demo", "index", "search", "rerank", "eval", "train", "mine_negatives", "serve", "verify"]
