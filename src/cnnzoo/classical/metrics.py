"""Segmentation scores from a confusion matrix: per-class IoU, mean IoU and pixel accuracy.

Plain NumPy, so the classical methods can be scored without torch; the CNN segmenters' metrics
are meant to share these definitions:

- confusion[t, p] counts the pixels of true class t predicted as class p;
- IoU of class c = TP / (TP + FP + FN), undefined (NaN) for a class absent from both the
  truth and the prediction;
- mean IoU averages the defined IoUs, i.e. over the classes present in truth or prediction;
- pixel accuracy = correctly labelled pixels / scored pixels.

Pixels whose true label is ``ignore_index`` are not scored. A predicted ``UNASSIGNED`` (-1)
marks a pixel given no class (a region left unmatched by one-to-one matching): it is scored
as wrong, a false negative of its true class and a false positive of none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "UNASSIGNED",
    "SegmentationScores",
    "check_class_map",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "score_segmentation",
    "true_class_totals",
]

UNASSIGNED = -1


def confusion_matrix(
    truth: np.ndarray,
    prediction: np.ndarray,
    num_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """The (K, K) int64 confusion matrix, rows true classes, columns predicted classes.

    Pixels whose truth is ``ignore_index`` and pixels predicted ``UNASSIGNED`` are left out
    (see :func:`true_class_totals` for the totals that still count the latter).
    """
    truth, prediction = _check_label_maps(truth, prediction, num_classes, ignore_index)
    scored = _scored(truth, ignore_index) & (prediction != UNASSIGNED)
    index = truth[scored] * num_classes + prediction[scored]
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def true_class_totals(truth: np.ndarray, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Number of scored pixels of each true class, (K,) int64."""
    truth = np.asarray(truth)
    check_class_map("truth", truth, num_classes, ignore_index, allow_unassigned=False)
    return np.bincount(truth[_scored(truth, ignore_index)].astype(np.int64), minlength=num_classes)


def iou_per_class(confusion: np.ndarray, truth_totals: np.ndarray | None = None) -> np.ndarray:
    """IoU of each class, (K,) float; NaN for a class absent from both truth and prediction.

    ``truth_totals`` (pixels per true class) defaults to the confusion matrix's row sums; pass
    it when some pixels were predicted ``UNASSIGNED``, so that they count as false negatives.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1) if truth_totals is None else np.asarray(truth_totals, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = totals + confusion.sum(axis=0) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(iou: np.ndarray) -> float:
    """Mean of the defined (non-NaN) IoUs; NaN if none is defined."""
    iou = np.asarray(iou, dtype=np.float64)
    defined = iou[~np.isnan(iou)]
    return float(defined.mean()) if defined.size else float("nan")


def pixel_accuracy(confusion: np.ndarray, truth_totals: np.ndarray | None = None) -> float:
    """Correct pixels / scored pixels; NaN if no pixel is scored."""
    confusion = np.asarray(confusion)
    total = confusion.sum() if truth_totals is None else np.asarray(truth_totals).sum()
    return float(np.trace(confusion) / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one prediction (or of a data set, with its confusion matrices summed)."""

    confusion: np.ndarray  # (K, K) int64
    truth_totals: np.ndarray  # (K,) scored pixels per true class, unassigned ones included
    iou: np.ndarray  # (K,) per-class IoU, NaN where undefined
    mean_iou: float
    pixel_accuracy: float

    @classmethod
    def from_counts(cls, confusion: np.ndarray, truth_totals: np.ndarray) -> SegmentationScores:
        iou = iou_per_class(confusion, truth_totals)
        return cls(confusion, truth_totals, iou, mean_iou(iou), pixel_accuracy(confusion, truth_totals))

    def __add__(self, other: SegmentationScores) -> SegmentationScores:
        """Pool two sets of pixels (data-set scores are computed from the summed counts)."""
        return SegmentationScores.from_counts(self.confusion + other.confusion, self.truth_totals + other.truth_totals)


def score_segmentation(
    truth: np.ndarray,
    prediction: np.ndarray,
    num_classes: int,
    ignore_index: int | None = None,
) -> SegmentationScores:
    """Confusion matrix, per-class IoU, mean IoU and pixel accuracy of a predicted class map."""
    confusion = confusion_matrix(truth, prediction, num_classes, ignore_index)
    return SegmentationScores.from_counts(confusion, true_class_totals(truth, num_classes, ignore_index))


def _scored(truth: np.ndarray, ignore_index: int | None) -> np.ndarray:
    return np.ones(truth.shape, dtype=bool) if ignore_index is None else truth != ignore_index


def _check_label_maps(
    truth: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth shape {truth.shape} and prediction shape {prediction.shape} differ")
    check_class_map("truth", truth, num_classes, ignore_index, allow_unassigned=False)
    check_class_map("prediction", prediction, num_classes, None, allow_unassigned=True)
    return truth.astype(np.int64), prediction.astype(np.int64)


def check_class_map(name: str, labels: np.ndarray, num_classes: int, ignore_index: int | None,
                    allow_unassigned: bool) -> None:
    """Raise ``ValueError`` unless ``labels`` holds integers in 0..K-1 (or ``ignore_index`` / ``UNASSIGNED``)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        valid |= labels == ignore_index
    if allow_unassigned:
        valid |= labels == UNASSIGNED
    if not valid.all():
        bad = labels[~valid][0]
        raise ValueError(f"{name} holds label {bad}, outside 0..{num_classes - 1}"
                         + (f" (ignore_index is {ignore_index})" if ignore_index is not None else ""))
