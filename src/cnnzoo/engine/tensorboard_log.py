"""A training run's TensorBoard events, in ``RUN_DIR/tensorboard``.

The ``tensorboard`` option (``cnnzoo train --tensorboard``) asks for them: ``true`` writes
them, or says in one line on stderr that the ``tensorboard`` package is missing (``pip
install tensorboard``, or the ``cnnzoo[tensorboard]`` extra) and trains without them;
``false`` writes none; left unset, they are written when the package is installed.

What is written, so that ``tensorboard --logdir runs`` compares runs at a glance:

- per epoch, each metric's training and validation values under one prefix, ``loss/train``
  and ``loss/val``, ``acc1/train`` and ``acc1/val`` (the other validation metrics as
  ``miou/val``, ``dice/val``, ...), with ``optim/lr`` and ``time/epoch_seconds``; the Scalars
  tab shows a metric's two charts side by side, the Custom Scalars tab both lines on one chart;
- at the end, the run's options with its final metrics (the HParams tab) and the pictures the
  run drew under ``plots/`` (curves, confusion matrix, segmentation overlays; the Images tab).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["MISSING", "TensorBoardLog", "hparam_values", "open_tensorboard", "scalar_tag"]

MISSING = (
    "warning: --tensorboard: the tensorboard package is not installed, so this run writes no TensorBoard "
    "events (pip install tensorboard); training goes on"
)
# The row keys that are neither a training nor a validation value.
OTHER_TAGS = {"lr": "optim/lr", "seconds": "time/epoch_seconds"}
SPLITS = ("train", "val")


def open_tensorboard(log_dir: Path, asked: bool | None) -> TensorBoardLog | None:
    """The run's log in ``log_dir``; ``None`` when ``asked`` is false or when the package is
    missing (said in one line on stderr when ``asked`` is true; unset: silently)."""
    if asked is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: metrics.csv and plots/ hold the same numbers and pictures
        if asked:
            print(MISSING, file=sys.stderr, flush=True)
        return None
    return TensorBoardLog(SummaryWriter(log_dir=str(log_dir)))


def scalar_tag(key: str) -> str:
    """The tag of a ``metrics.csv`` column: ``train_loss`` -> ``loss/train``, ``val_loss`` ->
    ``loss/val``, a validation metric ``acc1`` -> ``acc1/val``, ``lr`` -> ``optim/lr``."""
    if key in OTHER_TAGS:
        return OTHER_TAGS[key]
    for split in SPLITS:
        if key.startswith(f"{split}_"):
            return f"{key[len(split) + 1:]}/{split}"
    return f"{key}/val"


def hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved options as the HParams tab takes them: numbers, text and booleans as they
    are, anything else (``None``, sizes, model options) as its JSON text."""
    return {key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
            for key, value in config.items()}


class TensorBoardLog:
    """One run's events, written through a ``SummaryWriter`` (or anything with its methods)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.epoch = 0
        self.final: dict[str, float] = {}

    def log_epoch(self, epoch: int, row: dict[str, float]) -> None:
        """One epoch's numbers, as ``metrics.csv`` has them (``epoch`` is the step)."""
        scalars = {scalar_tag(key): value for key, value in row.items() if key != "epoch"}
        if not self.final:
            self.writer.add_custom_scalars(_train_val_layout(scalars))
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()
        self.epoch, self.final = epoch, scalars

    def finish(self, config: dict[str, Any] | None, plots: Path) -> None:
        """The run's pictures and, with its options, its final metrics; then close."""
        for path in sorted(plots.glob("*.png")):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"plots/{path.stem}", pixels, self.epoch, dataformats="HWC")
        metrics = {tag: value for tag, value in self.final.items() if tag.split("/")[1] in SPLITS}
        if config is not None and metrics:
            # run_name ".": the options belong to this run's own directory, not to a new one
            self.writer.add_hparams(hparam_values(config), metrics, run_name=".", global_step=self.epoch)
        self.writer.close()


def _train_val_layout(scalars: dict[str, float]) -> dict[str, dict[str, list]]:
    """Custom Scalars: one chart per metric with its training and validation lines."""
    metrics = sorted({tag.split("/")[0] for tag in scalars if tag.endswith("/train")})
    return {"train and val": {
        metric: ["Multiline", [f"{metric}/{split}" for split in SPLITS]] for metric in metrics
    }}
