"""``compile_model``: a trained run (or any model) compiled for fast inference, int8 included.

:func:`cnnzoo.deploy.compile_runner` does the runtime work on a module; this adds what a run
directory knows:

* the input size: a classifier's training size; for a segmenter, the tile of overlap-tile
  prediction (:func:`cnnzoo.engine.tiling.default_tile_size`), since every image then goes
  through tiles of one size;
* int8 calibration on the user's own images: the run's training images, prepared as
  prediction prepares them (normalized with the run's statistics, tiles mirror-padded or
  centre-cropped to the runner's size);
* what int8 costs, measured on the run's validation split against the fp32 model: top-1 and
  agreement with fp32 for a classifier, mean IoU for a segmenter (both through the same
  tiles). A drop of more than ``max_drop`` (default 1 point) is refused: ``ValueError``, and
  nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnzoo.classical.metrics import score_segmentation
from cnnzoo.deploy.compile import AUTO, compile_runner
from cnnzoo.deploy.runners import Runner
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.engine.sources import ModelSource, data_of_run, load_model_source, resolve_input_size
from cnnzoo.engine.tiling import default_tile_size, segment_image
from cnnzoo.layers.spatial import center_crop, mirror_pad

__all__ = [
    "CALIBRATION_IMAGES", "DEFAULT_MAX_DROP", "AccuracyChange", "compile_model", "run_inputs", "runner_input_size", "spread",
]

CALIBRATION_IMAGES = 64  # enough to observe every activation's range on the built-in sets and Fashion-MNIST
DEFAULT_MAX_DROP = 0.01  # one point of top-1 or mean IoU
EVAL_IMAGES = 1000  # validation images the int8 check scores (all when the split is smaller)


@dataclass(frozen=True)
class AccuracyChange:
    """What int8 did to the validation score: ``metric`` (``"acc1"`` or ``"miou"``) before
    and after, and for classifiers how often int8 picks fp32's class."""

    metric: str
    fp32: float
    int8: float
    images: int
    agreement: float | None = None

    @property
    def drop(self) -> float:
        return self.fp32 - self.int8

    def line(self) -> str:
        agree = f", agrees with fp32 on {100 * self.agreement:.1f} %" if self.agreement is not None else ""
        return (f"int8 on {self.images} validation images: {self.metric} {self.fp32:.4f} -> {self.int8:.4f} "
                f"({-100 * self.drop:+.2f} points){agree}")


def compile_model(
    source: str | Path | nn.Module,
    runtime: str = AUTO,
    precision: str = "fp32",
    *,
    input_size: tuple[int, ...] | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    threads: int | None = None,
    batch: int = 8,
    model_kwargs: dict[str, Any] | None = None,
    which: str = "best",
    log: Callable[[str], None] | None = print,
    weights: str | Path | None = None,
) -> Runner:
    """The fastest faithful runner of ``source`` (a run directory, a ``.safetensors``
    checkpoint, a registered model name or an ``nn.Module``) on this machine.

    ``runtime``: ``"auto"`` (measure the installed runtimes and keep the fastest), ``"torch"``,
    ``"onnxruntime"`` or ``"openvino"``; ``precision``: ``"fp32"``, ``"bf16"`` (CPUs with
    native bf16) or ``"int8"``. ``input_size``: ``(C, H, W)`` or ``(H, W)`` (default: see the
    module docstring). ``calibration``: batches of normalized inputs for int8 (default: a
    run's training images; required otherwise). The runner's ``report`` holds the choice,
    the difference to eager and, for int8 of a run, the :class:`AccuracyChange`; ``which``
    is the checkpoint of a run directory; ``weights`` those of a registered name
    (:func:`cnnzoo.create_model`'s).

    Raises ``ValueError`` for a bad choice, int8 without calibration images, a runtime that
    cannot take the model, outputs that disagree with eager, or an int8 drop over ``max_drop``.
    """
    if not 0 <= max_drop < 1:
        raise ValueError(f"max_drop must be between 0 and 1 (a fraction: 0.01 is one point), got {max_drop}")
    model, origin = load_model_source(source, model_kwargs, which, weights)
    size = runner_input_size(model, origin, input_size)
    spec = data_of_run(origin.run) if origin.run is not None and precision == "int8" else None
    if precision == "int8" and calibration is None:
        if spec is None:
            raise ValueError("int8 needs calibration images: pass calibration batches, or compile a run "
                             "directory (its training images are used)")
        calibration = run_inputs(spec.train, origin.run, size, spread(len(spec.train), CALIBRATION_IMAGES))
    runner = compile_runner(model, size, runtime, precision, threads=threads, calibration=calibration, batch=batch,
                            log=log)
    if spec is not None:
        change = _accuracy_change(model, runner, spec.val, origin.run, size)
        runner.report.accuracy = {"metric": change.metric, "fp32": change.fp32, "int8": change.int8,
                                  "agreement": change.agreement, "images": change.images}
        runner.report.notes.append(change.line())
        if log is not None:
            log(change.line())
        if change.drop > max_drop:
            raise ValueError(f"int8 costs {100 * change.drop:.2f} points of {change.metric} ({change.fp32:.4f} -> "
                             f"{change.int8:.4f}), more than the {100 * max_drop:g} allowed; nothing kept "
                             "(allow more with a larger max drop, or stay in fp32)")
    return runner


def spread(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)`` (all of them when fewer): a
    sample that meets every class of a data set sorted by class."""
    return sorted(set(np.linspace(0, length - 1, num=min(count, length)).round().astype(int).tolist()))


def run_inputs(dataset: Dataset, meta: RunMeta, size: tuple[int, int, int], indices: list[int],
               batch: int = 16) -> Iterator[torch.Tensor]:
    """The images ``indices`` of ``dataset`` in batches, normalized with the run's statistics
    and brought to ``size``: mirror-padded where smaller, centre-cropped where larger (a
    segmenter's tile)."""
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    for start in range(0, len(indices), batch):
        images = torch.stack([dataset[i]["image"] for i in indices[start:start + batch]])
        yield _fit(((images - mean) / std).float(), size[1:])


def _fit(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    height, width = images.shape[-2:]
    pad_h, pad_w = max(0, size[0] - height), max(0, size[1] - width)
    if pad_h or pad_w:
        images = mirror_pad(images, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
    return center_crop(images, *size)


def runner_input_size(model: nn.Module, origin: ModelSource, input_size: tuple[int, ...] | None) -> tuple[int, int, int]:
    """``input_size`` (``(C, H, W)`` or ``(H, W)``) or the default: a classifier's run or
    registered input, a segmenter's overlap-tile prediction tile."""
    if input_size is not None or origin.task(model) != "segmentation":
        return resolve_input_size(model, origin, input_size)
    tile = default_tile_size(model)
    return resolve_input_size(model, origin, (tile, tile))


@torch.no_grad()
def _accuracy_change(model: nn.Module, runner: Runner, dataset: Dataset, meta: RunMeta,
                     size: tuple[int, int, int]) -> AccuracyChange:
    indices = spread(len(dataset), EVAL_IMAGES)
    if meta.task == "classification":
        return _classification_change(model, runner, dataset, meta, size, indices)
    return _segmentation_change(model, runner, dataset, meta, size, indices)


def _classification_change(model: nn.Module, runner: Runner, dataset: Dataset, meta: RunMeta,
                           size: tuple[int, int, int], indices: list[int]) -> AccuracyChange:
    right_fp32 = right_int8 = same = 0
    targets = torch.tensor([int(dataset[i]["target"]) for i in indices])
    done = 0
    for inputs in run_inputs(dataset, meta, size, indices):
        truth = targets[done:done + len(inputs)]
        done += len(inputs)
        fp32, int8 = model(inputs).argmax(1), runner(inputs).argmax(1)
        right_fp32 += int((fp32 == truth).sum())
        right_int8 += int((int8 == truth).sum())
        same += int((fp32 == int8).sum())
    count = len(indices)
    return AccuracyChange("acc1", right_fp32 / count, right_int8 / count, count, same / count)


def _segmentation_change(model: nn.Module, runner: Runner, dataset: Dataset, meta: RunMeta,
                         size: tuple[int, int, int], indices: list[int]) -> AccuracyChange:
    """Mean IoU of fp32 and of int8, both through tiles of the runner's size (so what differs
    is the precision alone)."""
    mean = torch.tensor(meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(meta.std).view(1, -1, 1, 1)
    totals: dict[str, Any] = {"fp32": None, "int8": None}
    for index in indices:
        sample = dataset[index]
        image = ((sample["image"][None] - mean) / std).float()
        truth = sample["target"].numpy()
        for key, forward in (("fp32", model), ("int8", runner)):
            labels, _ = segment_image(model, image, tile_size=size[1], forward=forward)
            scores = score_segmentation(truth, labels.numpy(), meta.num_classes, meta.ignore_index)
            totals[key] = scores if totals[key] is None else totals[key] + scores
    return AccuracyChange("miou", float(totals["fp32"].mean_iou), float(totals["int8"].mean_iou), len(indices))
