"""``cnnzoo evaluate``: the metrics of a trained checkpoint on a data set's split."""

from __future__ import annotations

import argparse
import json
import math

from cnnzoo.cli.options import add_device_option, add_which_option
from cnnzoo.data.spec import SPLITS
from cnnzoo.engine.config import AMP_MODES
from cnnzoo.utils.jsonsafe import json_safe

EPILOG = """\
examples:
  cnnzoo evaluate runs/unet-shapes                      (best checkpoint, on its own validation split)
  cnnzoo evaluate runs/unet-shapes --which last --json
  cnnzoo evaluate runs/resnet20/best.safetensors --data other_images/ --split train

Without --data, the checkpoint's own data set is rebuilt with the run's settings (size,
seed), so the validation split is the one the run was scored on. Images are resized to the
checkpoint's image size and normalized with its mean and std.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics of a trained checkpoint on a data set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Evaluate a checkpoint (a run directory or a .safetensors file with its .json sidecar): "
            "accuracy (top-1, top-5) for classifiers; mean IoU, pixel accuracy, Dice and per-class IoU "
            "for segmenters; the loss; and the confusion matrix with --json."
        ),
        epilog=EPILOG,
    )
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or a .safetensors file")
    add_which_option(p)
    p.add_argument("--data", metavar="NAME_OR_PATH", help="data set (default: the one the model was trained on)")
    p.add_argument("--data-dir", metavar="DIR", help="where to look for downloaded data")
    p.add_argument("--split", choices=SPLITS, default="val", help="which split (default: val)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="default: 64")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="data loading processes (default: 0)")
    add_device_option(p)
    p.add_argument("--amp", choices=AMP_MODES, default="none", help="mixed precision (default: none)")
    p.add_argument("--json", action="store_true", help="print every result as JSON (with the confusion matrix)")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    # Imported when the command runs: the engine's evaluation brings torchmetrics, which
    # would add about 1 s to every `cnnzoo --help` (0.8-1.2 s measured with python -X importtime).
    from cnnzoo.engine.evaluate import evaluate_checkpoint

    results = evaluate_checkpoint(
        args.checkpoint, args.which, args.data, args.data_dir, args.split, args.batch_size, args.workers,
        args.device, args.amp,
    )
    if args.json:
        print(json.dumps(json_safe(results), indent=2, allow_nan=False))
        return 0
    print(f"{results['model']} (epoch {results['epoch']}) on {results['data']}, {results['split']} split, "
          f"{results['samples']} samples")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"  {key:<10} {value:.4f}")
    if "iou_per_class" in results:
        print("  per class:  IoU     Dice")
        for name, iou, dice in zip(results["class_names"], results["iou_per_class"], results["dice_per_class"]):
            print(f"  {name:<10} {_number(iou)}  {_number(dice)}")
    return 0


def _number(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{value:.4f}"
