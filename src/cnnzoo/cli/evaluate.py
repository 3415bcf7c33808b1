"""``cnnzoo evaluate``: the metrics of a trained checkpoint on a data set's split."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from typing import Any

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
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of a run directory (default: best)")
    p.add_argument("--data", metavar="NAME_OR_PATH", help="data set (default: the one the model was trained on)")
    p.add_argument("--data-dir", metavar="DIR", help="where to look for downloaded data")
    p.add_argument("--split", choices=("val", "train"), default="val", help="which split (default: val)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="default: 64")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="data loading processes (default: 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="mixed precision (default: none)")
    p.add_argument("--json", action="store_true", help="print every result as JSON (with the confusion matrix)")
    p.set_defaults(run=run_evaluate)


def evaluate_checkpoint(
    checkpoint: str,
    which: str = "best",
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "val",
    batch_size: int = 64,
    workers: int = 0,
    device: str = "auto",
    amp: str = "none",
) -> dict[str, Any]:
    """The metrics of a checkpoint on a split (the checkpoint's own data set by default)."""
    from cnnzoo.data import build_data
    from cnnzoo.engine.checkpoint import load_trained
    from cnnzoo.engine.distributed import resolve_device
    from cnnzoo.engine.losses import build_loss
    from cnnzoo.engine.trainer import evaluate, make_eval_loader

    if batch_size < 1 or workers < 0:
        raise ValueError("--batch-size must be at least 1 and --workers 0 or more")
    target_device = resolve_device(device)
    trained = load_trained(checkpoint, which, map_location=target_device)
    meta = trained.meta
    config = meta.get("config", {})
    own_data = data is None or data == meta["data"]
    spec = build_data(
        meta["data"] if data is None else data,
        data_dir=data_dir or config.get("data_dir"),
        image_size=tuple(meta["image_size"]),
        train_size=config.get("train_size") if own_data else None,
        val_size=config.get("val_size") if own_data else None,
        seed=config.get("seed", 0) if own_data else 0,
    )
    for key in ("task", "num_classes", "in_chans"):
        if getattr(spec, key) != meta[key]:
            raise ValueError(
                f"data {spec.name!r} does not fit the checkpoint: {key} {getattr(spec, key)} vs {meta[key]}"
            )
    # The model sees images normalized as in training, whatever the new data's statistics.
    spec = replace(spec, mean=tuple(meta["mean"]), std=tuple(meta["std"]), ignore_index=meta["ignore_index"])
    dataset = spec.val if split == "val" else spec.train
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of {spec.name!r} is empty")
    loss_name = config.get("loss") or "ce"
    if loss_name == "weighted-ce" and "weight" not in dataset[0]:
        loss_name = "ce"
    loss = build_loss(loss_name, task=spec.task, num_classes=spec.num_classes, ignore_index=spec.ignore_index)
    loader = make_eval_loader(dataset, batch_size, workers)
    results = evaluate(trained.model, loader, spec, target_device, loss=loss, amp=amp)
    results["checkpoint"] = str(checkpoint)
    results["epoch"] = meta.get("epoch")
    results["model"] = meta["model"]
    results["data"] = spec.name
    results["split"] = split
    results["samples"] = len(dataset)
    results["class_names"] = list(spec.class_names)
    return results


def run_evaluate(args: argparse.Namespace) -> int:
    results = evaluate_checkpoint(
        args.checkpoint, args.which, args.data, args.data_dir, args.split, args.batch_size, args.workers,
        args.device, args.amp,
    )
    if args.json:
        print(json.dumps(_plain(results), indent=2, allow_nan=False))
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


def _plain(value: Any) -> Any:
    """JSON types: tensors as lists, NaN (undefined) as null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
