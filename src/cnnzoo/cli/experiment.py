"""``cnnzoo experiment``: the ResNet paper's degradation experiment and MobileNet's width multipliers."""

from __future__ import annotations

import argparse
import dataclasses

from cnnzoo.engine.experiments import EXPERIMENTS, Recipe, run_experiment
from cnnzoo.utils.sizes import parse_input_size

_DEFAULTS = Recipe()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "experiment",
        help="rerun a paper's experiment: plain vs residual depth, MobileNet width multipliers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a family of classifiers with one recipe and compare them in one PNG and a table\n"
            "(Markdown and CSV, also printed).\n\n"
            "  degradation   plain20, plain56, resnet20, resnet56: training error against epochs\n"
            "                (He et al. 2016, Fig. 1 and 6: the deeper plain net trains worse,\n"
            "                the deeper residual net better)\n"
            "  multipliers   MobileNet v1 at widths 1.0, 0.75, 0.5, 0.25: accuracy against\n"
            "                multiply-adds (Howard et al. 2017, Table 6)\n\n"
            "The defaults are a short budget for a CPU (a subset of Fashion-MNIST, a few epochs);\n"
            "raise --train-size and --epochs for curves closer to the papers'."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo experiment degradation\n"
            "  cnnzoo experiment degradation --train-size 60000 --val-size 10000 --epochs 30 --out runs/degradation\n"
            "  cnnzoo experiment multipliers --image-size 32 --epochs 5"
        ),
    )
    p.add_argument("name", choices=tuple(EXPERIMENTS), metavar="EXPERIMENT", help=", ".join(EXPERIMENTS))
    p.add_argument("--data", default=_DEFAULTS.data, metavar="NAME_OR_PATH",
                   help=f"a classification data set: built-in name or folder (default {_DEFAULTS.data})")
    p.add_argument("--data-dir", metavar="DIR", help="where Fashion-MNIST's files are looked for first")
    p.add_argument("--epochs", type=int, metavar="N", default=_DEFAULTS.epochs, help=f"default {_DEFAULTS.epochs}")
    p.add_argument("--train-size", type=_size_or_all, default=_DEFAULTS.train_size, metavar="N|all",
                   help=f"training images (a seeded subset; default {_DEFAULTS.train_size})")
    p.add_argument("--val-size", type=_size_or_all, default=_DEFAULTS.val_size, metavar="N|all",
                   help=f"test images (default {_DEFAULTS.val_size})")
    p.add_argument("--batch-size", type=int, metavar="B", default=_DEFAULTS.batch_size,
                   help=f"default {_DEFAULTS.batch_size}")
    p.add_argument("--lr", type=float, default=_DEFAULTS.lr, help=f"peak SGD learning rate (default {_DEFAULTS.lr})")
    p.add_argument("--weight-decay", type=float, metavar="WD", default=_DEFAULTS.weight_decay,
                   help=f"default {_DEFAULTS.weight_decay}")
    p.add_argument("--warmup-epochs", type=float, metavar="E", default=_DEFAULTS.warmup_epochs,
                   help=f"linear warm-up (default {_DEFAULTS.warmup_epochs:g})")
    p.add_argument("--image-size", metavar="HxW", help="resize the images (default: the data's own size)")
    p.add_argument("--augment", choices=("default", "none"), default=_DEFAULTS.augment, help="default: default")
    p.add_argument("--seed", type=int, metavar="N", default=_DEFAULTS.seed, help="default 0")
    p.add_argument("--device", default=_DEFAULTS.device, help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--workers", type=int, metavar="N", default=_DEFAULTS.workers,
                   help="data loader processes (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder, new or empty (default runs/experiments/NAME-TIME)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    image_size = None
    if args.image_size:
        _, height, width = parse_input_size(args.image_size)
        image_size = (height, width)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if hasattr(args, f.name)}
    recipe = Recipe(**{**values, "image_size": image_size})
    result = run_experiment(args.name, recipe, args.out)
    print()
    print(result.table)
    print(f"\nwrote {result.figure}, {result.markdown} and {result.csv}")
    return 0


def _size_or_all(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of images or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 image, got {value}")
    return value
