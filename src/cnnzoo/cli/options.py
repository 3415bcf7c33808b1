"""Options shared by the sub-commands, with one name and one default each, and their parsers
(the size parser itself, which config files use too, is :func:`cnnzoo.utils.sizes.parse_input_size`)."""

from __future__ import annotations

import argparse
import ast
from typing import Any

import torch

from cnnzoo.deploy.compile import AUTO
from cnnzoo.deploy.runners import PRECISIONS, RUNTIMES
from cnnzoo.engine.config import UPPER_BOUNDS
from cnnzoo.utils.sizes import parse_input_size

__all__ = [
    "CHECKPOINTS", "add_device_option", "add_input_size_option", "add_model_kwargs_option", "add_overwrite_option",
    "add_threads_option", "add_runtime_options", "add_which_option", "apply_threads", "max_drop_fraction",
    "parse_model_kwargs", "parse_size_option",
    "RUNTIME_CHOICES",
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


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: allow replacing files this command did not make (refused otherwise,
    :func:`cnnzoo.utils.atomic.refuse_to_replace`)."""
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: auto (a GPU when there is one), cpu, cuda or cuda:N; the same default everywhere."""
    parser.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu, cuda, cuda:N")


def add_model_kwargs_option(parser: argparse.ArgumentParser) -> None:
    """``-k NAME=VALUE``, repeatable: options for the model's builder (:func:`parse_model_kwargs`)."""
    parser.add_argument(
        "-k", dest="model_kwargs", action="append", metavar="NAME=VALUE",
        help="keyword argument for the model, repeatable (e.g. -k width_mult=0.5 -k num_classes=10)",
    )


WEIGHTS_HELP = ("start from these weights: torchvision's published ones by name (IMAGENET1K_V1, IMAGENET1K_V2, "
                "DEFAULT; looked up in the torch hub cache), a .safetensors / .pth file, or a cnnzoo run directory")


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--weights NAME|FILE|RUN_DIR``: pretrained weights for the model (:mod:`cnnzoo.pretrained`)."""
    parser.add_argument("--weights", metavar="NAME|FILE|RUN_DIR", help=WEIGHTS_HELP)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: PyTorch's (and the runtimes') intra-op threads; default: all cores."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for PyTorch and the runtimes (default: PyTorch's, all cores)")


def apply_threads(threads: int | None) -> None:
    """Set PyTorch's intra-op thread count (``None``: leave PyTorch's default)."""
    if threads is None:
        return
    most = UPPER_BOUNDS["threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most:
        raise ValueError(f"--threads must be an integer from 1 to {most}, got {threads!r}")
    torch.set_num_threads(threads)


def add_input_size_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--input-size CxHxW`` (also ``C,H,W``, ``HxW`` or ``N`` with the model's channels)."""
    parser.add_argument("--input-size", metavar="CxHxW", help=f"{what}, also C,H,W, HxW or N (the model's channels)")


def parse_size_option(text: str | None) -> tuple[int, ...] | None:
    """``"3x224x224"`` / ``"3,224,224"`` -> (3, 224, 224); ``"224x160"`` -> (224, 160); ``"224"``
    -> (224, 224): without channels, the model's own are used; ``None`` stays ``None``."""
    if text is None:
        return None
    text = text.replace(",", "x")
    size = parse_input_size(text)
    return size if text.count("x") == 2 else size[1:]


RUNTIME_CHOICES = (*RUNTIMES, AUTO)


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--runtime``, ``--precision`` (``--int8`` for short) and ``--max-drop``: how a command
    compiles its model (:func:`cnnzoo.engine.compile.compile_model`)."""
    group = parser.add_argument_group("runtime")
    group.add_argument("--runtime", choices=RUNTIME_CHOICES, default="torch",
                       help="torch (default: eager PyTorch), onnxruntime, openvino, or auto: time the installed "
                            "runtimes on this model and keep the fastest")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="fp32 (default), bf16 (CPUs with native bf16 only), int8 (calibrated on the run's "
                            "training images, refused when it costs more than --max-drop)")
    group.add_argument("--int8", dest="precision", action="store_const", const="int8", help="--precision int8")
    group.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                       help="int8: the most validation accuracy (top-1 or mean IoU) it may cost, in points "
                            "(default 1)")


def max_drop_fraction(points: float) -> float:
    """``--max-drop`` (points of accuracy) as the fraction the engine takes."""
    if not 0 <= points < 100:  # NaN fails too
        raise ValueError(f"--max-drop must be between 0 and 100 points, got {points}")
    return points / 100
