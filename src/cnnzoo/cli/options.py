"""Options shared by the sub-commands, with one name and one default each, and their parsers
(the size parser, which config files use too, is :func:`cnnzoo.utils.sizes.parse_input_size`)."""

from __future__ import annotations

import argparse
import ast
from typing import Any

import torch

__all__ = [
    "CHECKPOINTS", "add_device_option", "add_model_kwargs_option", "add_threads_option", "add_which_option",
    "apply_threads", "parse_model_kwargs",
]


def parse_model_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """``["width_mult=0.5", "aux_logits=False"]`` -> ``{"width_mult": 0.5, "aux_logits": False}``.

    Values are Python literals where they parse as one, strings otherwise.
    """
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"malformed model option {pair!r}: expected NAME=VALUE, e.g. width_mult=0.5")
        try:
            kwargs[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[name] = value
    return kwargs


CHECKPOINTS = ("best", "last")


def add_which_option(parser: argparse.ArgumentParser) -> None:
    """``--which best|last``: the checkpoint of a run directory (every command that reads a run)."""
    parser.add_argument("--which", choices=CHECKPOINTS, default="best",
                        help="which checkpoint of a run directory (default: best)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: auto (a GPU when there is one), cpu, cuda or cuda:N; the same default everywhere."""
    parser.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu, cuda, cuda:N")


def add_model_kwargs_option(parser: argparse.ArgumentParser) -> None:
    """``-k NAME=VALUE``, repeatable: options for the model's builder (:func:`parse_model_kwargs`)."""
    parser.add_argument(
        "-k", dest="model_kwargs", action="append", metavar="NAME=VALUE",
        help="keyword argument for the model, repeatable (e.g. -k width_mult=0.5 -k num_classes=10)",
    )


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: PyTorch's (and the runtimes') intra-op threads; default: all cores."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for PyTorch and the runtimes (default: PyTorch's, all cores)")


def apply_threads(threads: int | None) -> None:
    """Set PyTorch's intra-op thread count (``None``: leave PyTorch's default)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads!r}")
    torch.set_num_threads(threads)
