"""Evaluation metrics for classification, segmentation and reconstruction, correct under ``torchrun``.

Everything is derived from counts that add up across batches and processes: a ``K x K``
confusion matrix (torchmetrics' ``MulticlassConfusionMatrix``; ``confusion[t, p]`` counts
the samples / pixels of true class ``t`` predicted as ``p``) and, for top-5 accuracy, the
number of hits. Under ``torch.distributed`` torchmetrics sums these counts over all
processes in ``compute()``, so every process gets the scores of the whole data set, not of
its shard (averaging per-process mean IoUs would be wrong: IoU is not additive).

Segmentation scores use the definitions of :mod:`cnnzoo.classical.metrics`, the same
functions applied to the reduced confusion matrix, so CNN and classical segmenters are
scored alike:

- IoU of class c = TP / (TP + FP + FN); NaN for a class absent from truth and prediction;
- mean IoU ("miou") = mean of the defined IoUs;
- pixel accuracy = trace / scored pixels;
- Dice of class c = 2 TP / (2 TP + FP + FN) (NaN where undefined), "dice" = their mean.

Classification: "acc1" = trace / scored samples (top-1 accuracy), "acc5" = fraction whose
true class is among the 5 highest logits (only when there are more than 5 classes).

Targets equal to ``ignore_index`` are not scored.

Reconstruction (an auto-encoder's images against the images it was given, pixel values in
[0, 1]; the output is clamped to that range first, as it would be saved): "mse", the mean
squared error over every pixel and channel, "psnr" = 10 log10(1 / mse) in dB (the peak
signal is 1), both from the summed squared error (torchmetrics' ``PeakSignalNoiseRatio``),
and "ssim", the mean structural similarity of the images (Wang et al. 2004, torchmetrics'
``StructuralSimilarityIndexMeasure``: 11 x 11 Gaussian window, sigma 1.5) where an image
is at least 11 pixels a side.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from cnnzoo.classical.metrics import iou_per_class, mean_iou, pixel_accuracy
from cnnzoo.engine.losses import check_logits_and_target, check_target_labels

__all__ = [
    "MAIN_METRIC",
    "ClassificationMetrics",
    "Metrics",
    "ReconstructionMetrics",
    "SegmentationMetrics",
    "build_metrics",
    "dice_per_class",
    "is_improvement",
    "psnr_from_mse",
]

# The score that picks the best checkpoint (higher is better for each).
MAIN_METRIC: dict[str, str] = {"classification": "acc1", "segmentation": "miou", "reconstruction": "psnr"}


def psnr_from_mse(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of images with values in [0, 1]: ``10 log10(1 / mse)``
    (infinite for a perfect reconstruction)."""
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def is_improvement(value: float | None, best: float | None) -> bool:
    """Whether a main-metric ``value`` beats the ``best`` so far (higher is better): any value
    beats none or NaN, and a missing or NaN value counts only when there is no best yet."""
    if value is None or math.isnan(value):
        return best is None
    return best is None or math.isnan(best) or value > best


def build_metrics(task: str, num_classes: int, ignore_index: int | None = None) -> Metrics | ReconstructionMetrics:
    """Fresh metrics for ``task`` ("classification", "segmentation" or "reconstruction",
    which has no classes: ``num_classes`` and ``ignore_index`` are not used)."""
    if task == "reconstruction":
        return ReconstructionMetrics()
    if task == "classification":
        return ClassificationMetrics(num_classes, ignore_index)
    if task == "segmentation":
        return SegmentationMetrics(num_classes, ignore_index)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(MAIN_METRIC)}")


def dice_per_class(confusion: np.ndarray) -> np.ndarray:
    """Dice (F1) of each class from a confusion matrix, ``2 TP / (2 TP + FP + FN)``;
    NaN for a class absent from both truth and prediction."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # (TP + FP) + (TP + FN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * true_positive / denominator, np.nan)


class Metrics:
    """Accumulates batches: ``update(logits, target)``, then ``compute() -> dict``.

    ``logits``: ``N x K (x H x W)`` scores (argmax is the prediction) or integer predicted
    labels shaped like ``target``; ``target``: integer labels ``N (x H x W)``.
    """

    task: Literal["classification", "segmentation"]

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # validate_args=False: labels are checked once here (clear ValueError) instead.
        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)

    @torch.no_grad()
    def update(self, logits: Tensor, target: Tensor) -> None:
        prediction = self._predicted_labels(logits, target)
        self.confusion.update(prediction, target)

    def compute(self) -> dict:
        raise NotImplementedError

    def reset(self) -> None:
        for metric in self._metrics():
            metric.reset()

    def to(self, device: torch.device | str) -> Metrics:
        for metric in self._metrics():
            metric.to(device)
        return self

    def _metrics(self) -> list[Metric]:
        return [self.confusion]

    def _reduced_confusion(self) -> Tensor:
        """The confusion matrix summed over batches and, under torch.distributed, processes."""
        return _quiet_compute(self.confusion).to("cpu", torch.int64)

    def _predicted_labels(self, logits: Tensor, target: Tensor) -> Tensor:
        if not logits.is_floating_point() and logits.shape == target.shape:
            check_target_labels(target, self.num_classes, self.ignore_index)
            _check_predicted_labels(logits, self.num_classes)
            return logits
        check_logits_and_target(logits, target, self.num_classes, self.ignore_index)
        return logits.argmax(dim=1)


class SegmentationMetrics(Metrics):
    """Mean IoU, pixel accuracy and Dice from one accumulated confusion matrix.

    ``compute()`` returns ``{"miou", "pixel_acc", "dice"}`` floats, ``"iou_per_class"`` and
    ``"dice_per_class"`` lists of K floats (NaN where undefined) and ``"confusion"``
    (``K x K`` int64 tensor).
    """

    task = "segmentation"

    def compute(self) -> dict:
        confusion = self._reduced_confusion()
        counts = confusion.numpy()
        iou = iou_per_class(counts)
        dice = dice_per_class(counts)
        return {
            "miou": mean_iou(iou),
            "pixel_acc": pixel_accuracy(counts),
            "dice": mean_iou(dice),  # the same "mean of the defined values" rule
            "iou_per_class": [float(value) for value in iou],
            "dice_per_class": [float(value) for value in dice],
            "confusion": confusion,
        }


class ClassificationMetrics(Metrics):
    """Top-1 accuracy, top-5 accuracy (more than 5 classes only) and the confusion matrix.

    ``compute()`` returns ``{"acc1": float, "acc5": float, "confusion": K x K int64}``.
    """

    task = "classification"

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        super().__init__(num_classes, ignore_index)
        self.top5 = _TopKHits(5, ignore_index) if num_classes > 5 else None

    @torch.no_grad()
    def update(self, logits: Tensor, target: Tensor) -> None:
        if self.top5 is not None and not logits.is_floating_point():
            raise ValueError("top-5 accuracy needs the logits (N x K), not predicted labels")
        super().update(logits, target)
        if self.top5 is not None:
            self.top5.update(logits, target)

    def compute(self) -> dict:
        confusion = self._reduced_confusion()
        scores = {"acc1": pixel_accuracy(confusion.numpy())}
        if self.top5 is not None:
            scores["acc5"] = float(_quiet_compute(self.top5))
        scores["confusion"] = confusion
        return scores

    def _metrics(self) -> list[Metric]:
        return [self.confusion] + ([self.top5] if self.top5 is not None else [])


class ReconstructionMetrics:
    """MSE, PSNR and SSIM of generated images against their targets (module docstring).

    ``update(images, target)`` with both ``N x C x H x W``; ``compute()`` returns
    ``{"mse", "psnr"}`` and, for images at least 11 pixels a side, ``"ssim"`` (floats).
    """

    task = "reconstruction"
    SSIM_WINDOW = 11

    def __init__(self) -> None:
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=self.SSIM_WINDOW)
        self.with_ssim = True

    @torch.no_grad()
    def update(self, images: Tensor, target: Tensor) -> None:
        if images.shape != target.shape or images.dim() != 4:
            raise ValueError(f"reconstructions {tuple(images.shape)} and images {tuple(target.shape)} must be "
                             "batches of the same shape N x C x H x W")
        images, target = images.float().clamp(0, 1), target.float()
        self.psnr.update(images, target)
        self.with_ssim = self.with_ssim and min(images.shape[-2:]) >= self.SSIM_WINDOW
        if self.with_ssim:
            self.ssim.update(images, target)

    def compute(self) -> dict:
        psnr = float(_quiet_compute(self.psnr))
        scores = {"mse": 10 ** (-psnr / 10), "psnr": psnr}  # psnr = 10 log10(1 / mse)
        if self.with_ssim:
            scores["ssim"] = float(_quiet_compute(self.ssim))
        return scores

    def reset(self) -> None:
        self.psnr.reset()
        self.ssim.reset()
        self.with_ssim = True

    def to(self, device: torch.device | str) -> ReconstructionMetrics:
        self.psnr.to(device)
        self.ssim.to(device)
        return self


class _TopKHits(Metric):
    """Fraction of scored samples whose true class is among the ``k`` highest scores."""

    full_state_update = False

    def __init__(self, k: int, ignore_index: int | None) -> None:
        super().__init__()
        self.k = k
        self.ignore_index = ignore_index
        self.add_state("hits", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        scored = torch.ones_like(target, dtype=torch.bool) if self.ignore_index is None else target != self.ignore_index
        top = logits.topk(self.k, dim=1).indices  # N x k (x ...)
        hit = (top == target.unsqueeze(1)).any(dim=1) & scored
        self.hits += hit.sum()
        self.total += scored.sum()

    def compute(self) -> Tensor:
        return self.hits.double() / self.total if self.total > 0 else torch.tensor(float("nan"))


def _quiet_compute(metric: Metric) -> Tensor:
    """``metric.compute()`` without torchmetrics' warning for a metric never updated (an
    empty evaluation scores NaN; under torch.distributed every process must still call
    compute, updated or not, for the reduction to complete)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method.*")
        return metric.compute()


def _check_predicted_labels(prediction: Tensor, num_classes: int) -> None:
    if prediction.dtype == torch.bool or prediction.is_complex():
        raise ValueError(f"predicted labels must be integers, got dtype {prediction.dtype}")
    outside = (prediction < 0) | (prediction >= num_classes)
    if bool(outside.any()):
        bad = int(prediction[outside][0])
        raise ValueError(f"prediction holds label {bad}, outside the classes 0..{num_classes - 1}")
