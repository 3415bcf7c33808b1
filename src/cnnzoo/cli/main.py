"""``cnnzoo``: the command-line entry point.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Errors a user can cause (a bad name, a bad path, a malformed size)
surface as ``ValueError`` / ``OSError`` and end here in one line on stderr and exit code 2.
A reader that closes stdout early (``cnnzoo evaluate RUN | head -1``) ends the command
quietly with exit code 141, the shell's code for a command stopped by a closed pipe.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tempfile
import traceback

from cnnzoo import __version__
from cnnzoo.utils.memory import total_bytes
from cnnzoo.utils.text import first_line

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
    "cnnzoo.cli.weights",
    "cnnzoo.cli.experiment",
    "cnnzoo.cli.results",
    "cnnzoo.cli.visualize",
)

USER_ERRORS = (ValueError, OSError, KeyError)
PIPE_CLOSED = 141  # 128 + SIGPIPE, as `yes | head -1` leaves `yes`


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as every other error of cnnzoo's is
    (argparse prints its whole usage banner first): the message and where help is."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    """Run one command; its exit code: 0, 2 for a user's error, 130 when interrupted,
    :data:`PIPE_CLOSED` when the reader of stdout left early (nothing more is said)."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a reader gone shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """Python's recipe for a closed stdout: point it at devnull, so that the interpreter's
    last flush has nowhere to fail, and exit without a message."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (io.UnsupportedOperation)
        sys.stdout = os.fdopen(devnull, "w")
    else:
        os.close(devnull)
    return PIPE_CLOSED


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # an OSError, but not the user's: main ends quietly
        raise
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnzoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # a run says what it saved (cnnzoo.engine.rundir.RunInterrupted)
        print(f"cnnzoo {args.command}: interrupted" + (f": {stop}" if str(stop) else ""), file=sys.stderr)
        return 130
    except Exception as err:  # not the user's doing: one line here, the whole story in a file
        memory = out_of_memory_message(err)
        if memory:  # a size, a batch or a model option larger than this machine holds
            print(f"cnnzoo {args.command}: error: {memory}", file=sys.stderr)
            return 2
        print(f"cnnzoo {args.command}: unexpected error: {first_line(err)} (full report: {_write_report()})",
              file=sys.stderr)
        return 1


def out_of_memory_message(err: BaseException) -> str | None:
    """One line for an allocation the machine refused (PyTorch's CPU allocator, CUDA's, or
    Python's ``MemoryError``), with the size asked for where the error says it; else None."""
    text = str(err)
    if isinstance(err, MemoryError) and text.startswith("not enough memory"):  # cnnzoo's own check said how much
        return text
    cpu = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", text)
    cuda = re.search(r"Tried to allocate ([\d.]+ [KMGT]?i?B)", text)
    if cpu:
        asked = f"{int(cpu.group(1)) / 2**30:.1f} GiB"
    elif cuda and "out of memory" in text:
        asked = cuda.group(1)
    elif isinstance(err, MemoryError):
        asked = None
    else:
        return None
    total = total_bytes()
    has = f" (this machine has {total / 2**30:.1f} GiB)" if total else ""
    return (f"not enough memory: the request needed {asked or 'more than is free'} at once{has}; use a smaller "
            "image, tile, batch or model size")


def _write_report() -> str:
    """The traceback of the exception being handled, in a new file under the temporary
    folder; its path (or where it could not be written)."""
    report = traceback.format_exc()
    try:
        descriptor, path = tempfile.mkstemp(prefix="cnnzoo-error-", suffix=".txt")
        with os.fdopen(descriptor, "w") as stream:
            stream.write(f"cnnzoo {__version__}, python {sys.version.split()[0]}\n{' '.join(sys.argv)}\n\n{report}")
    except OSError as err:
        return f"not written: {err}"
    return path


if __name__ == "__main__":
    sys.exit(main())
