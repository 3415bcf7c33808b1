"""``cnnzoo experiment``: the ResNet paper's degradation experiment and MobileNet's width multipliers."""

from __future__ import annotations

import argparse
import dataclasses

from cnnzoo.engine.checkerboard import UPSAMPLE_MODES, run_checkerboard
from cnnzoo.engine.experiments import EXPERIMENTS, Recipe, default_recipe, run_experiment
from cnnzoo.utils.sizes import parse_input_size

_DEGRADATION, _MULTIPLIERS = default_recipe("degradation"), default_recipe("multipliers")
_CHECKERBOARD_ONLY = ("steps", "kernel", "stride", "upsample")


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
            "                multiply-adds (Howard et al. 2017, Table 6)\n"
            "  checkerboard  stride-2 transposed convolutions (kernel 3, 4) against resize-then-\n"
            "                convolve: kernel taps per output pixel, counted exactly, and three\n"
            "                trained decoders' outputs (seed 002; takes --out, --seed, --steps,\n"
            "                --kernel, --stride, --upsample; about 20 s)\n\n"
            "The defaults are a budget for a 2-core CPU (about 15 and 23 minutes here): degradation on\n"
            "10,000 Fashion-MNIST images for 10 epochs in batches of 32, multipliers on all\n"
            "60,000 for 4 epochs in batches of 128, scored on all 10,000 test images. Plain-56\n"
            "trains worse than plain-20 and ResNet-56 better than ResNet-20 (seeds 0 and 1);\n"
            "accuracy falls with width in Table 6's order (seeds 0, 1 and 2; docs/experiments.md).\n"
            "Raise --train-size and --epochs for curves closer to the papers'."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo experiment degradation\n"
            "  cnnzoo experiment degradation --train-size 60000 --val-size 10000 --epochs 30 --out runs/degradation\n"
            "  cnnzoo experiment multipliers --image-size 32 --epochs 5"
        ),
    )
    p.add_argument("name", choices=(*EXPERIMENTS, "checkerboard"), metavar="EXPERIMENT",
                   help=", ".join((*EXPERIMENTS, "checkerboard")))
    p.add_argument("--steps", type=int, metavar="N", default=None,
                   help="checkerboard only: training steps of each decoder (default 300)")
    p.add_argument("--kernel", type=int, nargs="+", metavar="K", default=None,
                   help="checkerboard only: transposed-convolution kernel sizes (default 3 4)")
    p.add_argument("--stride", type=int, metavar="S", default=None,
                   help="checkerboard only: the upsampling stride, 2 to 4 (default 2)")
    p.add_argument("--upsample", choices=UPSAMPLE_MODES, default=None,
                   help="checkerboard only: the resize before the 3x3 convolution (default nearest)")
    # Options left out take the experiment's own default recipe (DEFAULT_RECIPES): SUPPRESS
    # keeps them off the namespace, so "not given" differs from "all" (None).
    option = dict(default=argparse.SUPPRESS)
    p.add_argument("--data", metavar="NAME_OR_PATH", **option,
                   help=f"a classification data set: built-in name or folder (default {_DEGRADATION.data})")
    p.add_argument("--data-dir", metavar="DIR", **option, help="where Fashion-MNIST's files are looked for first")
    p.add_argument("--epochs", type=int, metavar="N", **option,
                   help=f"default {_DEGRADATION.epochs} (multipliers: {_MULTIPLIERS.epochs})")
    p.add_argument("--train-size", type=_size_or_all, metavar="N|all", **option,
                   help=f"training images (a seeded subset; default {_images(_DEGRADATION.train_size)}; "
                        f"multipliers: {_images(_MULTIPLIERS.train_size)})")
    p.add_argument("--val-size", type=_size_or_all, metavar="N|all", **option,
                   help=f"test images (default {_images(_DEGRADATION.val_size)}; "
                        f"multipliers: {_images(_MULTIPLIERS.val_size)})")
    p.add_argument("--batch-size", type=int, metavar="B", **option,
                   help=f"default {_DEGRADATION.batch_size} (multipliers: {_MULTIPLIERS.batch_size})")
    p.add_argument("--lr", type=float, **option,
                   help=f"peak SGD learning rate (default {_DEGRADATION.lr:g}; multipliers: {_MULTIPLIERS.lr:g})")
    p.add_argument("--weight-decay", type=float, metavar="WD", **option,
                   help=f"default {_DEGRADATION.weight_decay:g}")
    p.add_argument("--warmup-epochs", type=float, metavar="E", **option,
                   help=f"linear warm-up (default {_DEGRADATION.warmup_epochs:g})")
    p.add_argument("--label-smoothing", type=float, metavar="EPS", **option,
                   help=f"default {_DEGRADATION.label_smoothing:g} (multipliers: {_MULTIPLIERS.label_smoothing:g})")
    p.add_argument("--image-size", metavar="HxW", help="resize the images (default: the data's own size)")
    p.add_argument("--augment", choices=("default", "none"), **option,
                   help=f"default {_DEGRADATION.augment} (multipliers: {_MULTIPLIERS.augment}: crop + flip)")
    p.add_argument("--seed", type=int, metavar="N", **option, help="default 0")
    p.add_argument("--device", **option, help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--workers", type=int, metavar="N", **option, help="data loader processes (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder, new or empty (default runs/experiments/NAME-TIME)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.name == "checkerboard":
        return _run_checkerboard(args)
    given = [f"--{name}" for name in _CHECKERBOARD_ONLY if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: options of the checkerboard experiment only")
    image_size = None
    if args.image_size:
        _, height, width = parse_input_size(args.image_size)
        image_size = (height, width)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe) if hasattr(args, f.name)}
    recipe = dataclasses.replace(default_recipe(args.name), **{**values, "image_size": image_size})
    result = run_experiment(args.name, recipe, args.out)
    print()
    print(result.table)
    print(f"\nwrote {result.figure}, {result.markdown} and {result.csv}")
    return 0


def _images(count: int | None) -> str:
    return "all" if count is None else str(count)


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


def _run_checkerboard(args: argparse.Namespace) -> int:
    recipe_options = sorted(f.name for f in dataclasses.fields(Recipe) if hasattr(args, f.name) and f.name not in ("seed", "image_size"))
    if recipe_options or args.image_size:
        given = ", ".join("--" + name.replace("_", "-") for name in recipe_options or ["image_size"])
        raise ValueError(f"the checkerboard experiment takes only --out, --seed, "
                         f"{', '.join('--' + name for name in _CHECKERBOARD_ONLY)}, not {given}")
    options = {name: getattr(args, name) for name in _CHECKERBOARD_ONLY if getattr(args, name) is not None}
    if "kernel" in options:
        options["kernels"] = tuple(options.pop("kernel"))
    result = run_checkerboard(args.out, seed=getattr(args, "seed", 0), **options)
    print(result.table)
    print(f"\nwrote {result.figure}, {result.markdown}, {result.csv} and {result.numbers}")
    return 0
