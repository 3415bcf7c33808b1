"""``cnnzoo``: the command-line entry point.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Errors a user can cause (a bad name, a bad path, a malformed size)
surface as ``ValueError`` / ``OSError`` and end here in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cnnzoo import __version__

# Sub-command modules, in the order `cnnzoo --help` lists them.
COMMAND_MODULES = (
    "cnnzoo.cli.zoo",
    "cnnzoo.cli.segment_classic",
    "cnnzoo.cli.compare_segmenters",
    "cnnzoo.cli.train",
    "cnnzoo.cli.evaluate",
    "cnnzoo.cli.predict",
    "cnnzoo.cli.export",
    "cnnzoo.cli.benchmark",
    "cnnzoo.cli.experiment",
)

USER_ERRORS = (ValueError, OSError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="The classic convolutional architectures, their building blocks and their costs.",
        epilog="Run `cnnzoo COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"cnnzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnzoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
