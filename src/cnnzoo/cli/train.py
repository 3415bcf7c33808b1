"""``cnnzoo train``: train a model on a data set, from flags and/or a config file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from cnnzoo.cli.options import add_threads_option, add_weights_option, parse_model_kwargs
from cnnzoo.engine.config import (
    AMP_MODES,
    AUGMENT_LEVELS,
    OPTIMIZERS,
    PROGRESS_MODES,
    config_keys,
    load_config,
    resolve_config,
)

EPILOG = """\
examples:
  cnnzoo train resnet20 --data fashion-mnist --epochs 30 --lr 0.1 --nesterov --label-smoothing 0.1
  cnnzoo train unet --data shapes -k padding=True -k base_width=16 --epochs 10 --out runs/unet-shapes
  cnnzoo train resnet20 --data my_images/ --config run.yaml --batch-size 64   (flags win over the file)
  cnnzoo train --resume runs/unet-shapes --epochs 20                          (continue a run, longer)
  cnnzoo train resnet18 --data photos/ --weights IMAGENET1K_V1 --freeze backbone --lr 0.01   (a linear probe)
  torchrun --nproc_per_node 2 -m cnnzoo.cli.main train resnet20 --data fashion-mnist   (2 processes)

defaults that depend on the task (classification / segmentation): optimizer sgd / adamw,
batch size 128 / 8, loss ce / (weighted-ce for data with weight maps, else ce); and on the
optimizer (sgd / adamw): lr 0.1 / 0.001, weight decay 5e-4 / 0.01.
Speed: --threads (default all cores), --amp bf16 (kept on a CPU without bf16 instructions
only when a few timed steps find it faster), channels-last on the CPU when a few timed steps
find it faster (remembered per model and machine); config.json records what the run used.
The run directory gets config.json, metrics.csv, best and last checkpoints
(.safetensors + .json) and plots/*.png. See docs/training.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on a data set (classification, segmentation or reconstruction)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a registered model on a built-in data set (fashion-mnist, shapes, cells, fashion-scenes, aerial) "
            "or a folder of images. Options come from the flags and from --config FILE (YAML or JSON, "
            "same names with _ or -); a flag given on the command line wins over the file."
        ),
        epilog=EPILOG,
    )
    p.add_argument("model", nargs="?", default=None, help="a registered model (see `cnnzoo list`); optional with --resume")
    io = p.add_argument_group("data and run directory")
    io.add_argument("--data", metavar="NAME_OR_PATH", help="built-in data set name or a folder of images")
    io.add_argument("--data-dir", metavar="DIR", help="where to look for downloaded data (e.g. Fashion-MNIST's files)")
    io.add_argument("--out", metavar="RUN_DIR", help="run directory to create (default: runs/MODEL-DATA-TIMESTAMP)")
    io.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    io.add_argument("--config", metavar="FILE", help="YAML or JSON file of options (keys as the flags)")
    io.add_argument("--image-size", metavar="HxW", help="resize the images to HxW (or N for NxN)")
    io.add_argument("--train-size", type=int, metavar="N", help="built-in data: number of training samples")
    io.add_argument("--val-size", type=int, metavar="N", help="built-in data: number of validation samples")
    io.add_argument("--augment", choices=AUGMENT_LEVELS, help="training augmentation (default: default)")
    io.add_argument("--workers", type=int, metavar="N", help="data loading processes (default: 0, in the training process)")

    opt = p.add_argument_group("optimization")
    opt.add_argument("--epochs", type=int, metavar="N", help="number of epochs (default: 10)")
    opt.add_argument("--batch-size", type=int, metavar="B", help="batch size per process (default: by task)")
    opt.add_argument("--lr", type=float, help="peak learning rate (default: by optimizer)")
    opt.add_argument("--optimizer", choices=OPTIMIZERS, help="default: by task")
    opt.add_argument("--momentum", type=float, help="SGD momentum, AdamW beta1 (default: 0.9)")
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                     help="Nesterov momentum for SGD (default: off)")
    opt.add_argument("--weight-decay", type=float, help="not applied to norm layers and biases (default: by optimizer)")
    opt.add_argument("--warmup-epochs", type=float, metavar="E",
                     help="linear warm-up, then cosine decay to 0, per step (default: 0)")
    opt.add_argument("--label-smoothing", type=float, metavar="EPS", help="default: 0")
    opt.add_argument("--loss", help="ce, dice, ce+dice, weighted-ce (segmentation; default: by task and data)")
    opt.add_argument("--clip-grad", type=float, metavar="NORM", help="clip the global gradient norm (default: off)")
    opt.add_argument("--accum-steps", type=int, metavar="N", help="gradient accumulation: one step per N batches (default: 1)")
    opt.add_argument("--seed", type=int, help="default: 0")
    opt.add_argument("--time-limit", type=float, metavar="SECONDS",
                     help="seconds from the start: begin no epoch that would not end in time (default: none)")

    hw = p.add_argument_group("speed and hardware")
    hw.add_argument("--device", help="auto (default: cuda when available), cpu, cuda, cuda:N")
    hw.add_argument("--amp", choices=AMP_MODES,
                    help="mixed precision: bf16 (CPU or GPU; on a CPU without bf16 instructions only when a "
                         "probe finds it faster), fp16 (GPU) (default: none)")
    hw.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="channels-last memory format (default: measured on the CPU, off on a GPU)")
    add_threads_option(hw)
    hw.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model (default: off)")

    out = p.add_argument_group("model and output")
    out.add_argument("-k", dest="model_kwargs", action="append", metavar="NAME=VALUE",
                     help="model option, repeatable (e.g. -k padding=True -k base_width=16)")
    add_weights_option(out)
    out.add_argument("--freeze", metavar="MODULE", help="freeze the parameters up to and including MODULE (e.g. "
                     "layer3); backbone: everything but the head (a linear probe) (default: none)")
    out.add_argument("--backbone-lr-scale", type=float, metavar="F",
                     help="learning rate of everything but the head, as a fraction of --lr (default: 1)")
    out.add_argument("--num-overlays", type=int, metavar="N", help="segmentation overlays drawn (default: 4)")
    out.add_argument("--progress", choices=PROGRESS_MODES, help="bar, log lines, or auto (bar on a terminal; default)")
    out.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                     help="TensorBoard events in RUN_DIR/tensorboard (needs `pip install tensorboard`; "
                          "default: when it is installed)")
    p.set_defaults(run=run_train)


def _saved_config(run_dir: str) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume {run_dir}: no config.json there (is it a cnnzoo run directory?)")
    values = json.loads(path.read_text())
    for key in ("out", "resume"):
        values.pop(key, None)
    return values


def gather_config(args: argparse.Namespace):
    """The resolved config from the saved run (with --resume), the file and the flags."""
    flags = {key: getattr(args, key) for key in config_keys() if key != "model_kwargs" and hasattr(args, key)}
    base = _saved_config(args.resume) if args.resume else {}
    if args.config:
        base.update(load_config(args.config))
    if args.model_kwargs:
        flags["model_kwargs"] = {**base.get("model_kwargs", {}), **parse_model_kwargs(args.model_kwargs)}
    return resolve_config(base, flags)


def run_train(args: argparse.Namespace) -> int:
    # Imported when the command runs: the trainer brings torchmetrics, which would add
    # about 1 s to every `cnnzoo --help` (1.0-1.2 s measured with python -X importtime).
    from cnnzoo.engine.metrics import MAIN_METRIC
    from cnnzoo.engine.trainer import train

    config = gather_config(args)
    result = train(config)
    best = result.best
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    print(f"run directory: {result.run_dir}")
    if best:
        metric = next((m for m in MAIN_METRIC.values() if m in best), None)
        print(f"best epoch {best['epoch']}: {metric} {best[metric]:.4f}, val_loss {best['val_loss']:.4f}")
        print(f"checkpoints: {result.run_dir / 'best.safetensors'}, {result.run_dir / 'last.safetensors'}")
        print(f"plots: {result.run_dir / 'plots'}")
    return 0
