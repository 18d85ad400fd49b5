"""Subcommands of the ``colja`` CLI: one module each, with ``add_parser(subparsers)``."""

#: modules under colja.commands, in the order ``colja --help`` lists them
COMMANDS = ["demo", "index", "add", "update", "delete", "search", "rerank", "stats", "first_stage", "eval", "train",
            "mine_negatives", "serve", "verify", "kernels"]
