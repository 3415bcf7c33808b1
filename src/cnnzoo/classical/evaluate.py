"""Scoring classical segmentations against ground-truth classes, and comparing methods.

A classical method returns regions, not classes, so each region is first given a class:

- ``"majority"``: each region takes the class most of its pixels have (ties: the lower
  class). Many regions may take one class; this scores how well the regions respect the
  class boundaries (over-segmentation is not penalised).
- ``"hungarian"``: one-to-one matching of regions to classes maximising the pixels they share,
  by the Hungarian method (Kuhn 1955, via ``scipy.optimize.linear_sum_assignment``). The usual
  score for unsupervised clustering: regions left unmatched give no class, and their pixels
  count as wrong (see :data:`~cnnzoo.classical.metrics.UNASSIGNED`).

The class maps are then scored with the IoU and pixel accuracy of :mod:`cnnzoo.classical.metrics`.
Over a data set the confusion matrices are summed before scoring (the usual data-set IoU), and
the matching is done per image, since regions are per image.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from cnnzoo.classical.methods import METHODS, method_name, segment
from cnnzoo.classical.metrics import (
    UNASSIGNED,
    SegmentationScores,
    check_class_map,
    score_segmentation,
)
from cnnzoo.utils.text import format_table as _text_table

__all__ = [
    "MATCHINGS",
    "MethodEvaluation",
    "compare_methods",
    "evaluate_method",
    "evaluation_table",
    "format_table",
    "hungarian_mapping",
    "majority_mapping",
    "region_class_overlap",
    "regions_to_classes",
    "score_regions",
]

MATCHINGS = ("majority", "hungarian")


def region_class_overlap(
    regions: np.ndarray, truth: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """(R, K) int64 counts: overlap[r, c] = pixels of region r whose true class is c."""
    regions, truth = np.asarray(regions), np.asarray(truth)
    if regions.shape != truth.shape:
        raise ValueError(f"region map shape {regions.shape} and truth shape {truth.shape} differ")
    if not np.issubdtype(regions.dtype, np.integer) or (regions.size and regions.min() < 0):
        raise ValueError("region map must hold non-negative integer labels")
    check_class_map("truth", truth, num_classes, ignore_index, allow_unassigned=False)
    scored = np.ones(truth.shape, dtype=bool) if ignore_index is None else truth != ignore_index
    num_regions = int(regions.max()) + 1 if regions.size else 0
    index = regions[scored].astype(np.int64) * num_classes + truth[scored].astype(np.int64)
    return np.bincount(index, minlength=num_regions * num_classes).reshape(num_regions, num_classes)


def majority_mapping(overlap: np.ndarray) -> np.ndarray:
    """Each region's most frequent true class (ties: lowest class); UNASSIGNED if it has no scored pixel."""
    overlap = np.asarray(overlap)
    return np.where(overlap.sum(axis=1) > 0, overlap.argmax(axis=1), UNASSIGNED)


def hungarian_mapping(overlap: np.ndarray) -> np.ndarray:
    """One-to-one region -> class matching that maximises the shared pixels; unmatched regions UNASSIGNED.

    A region matched to a class it does not overlap at all is left unassigned too: the
    match adds nothing to the objective and would only add false positives to that class.
    """
    overlap = np.asarray(overlap)
    mapping = np.full(overlap.shape[0], UNASSIGNED, dtype=np.int64)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    useful = overlap[rows, cols] > 0
    mapping[rows[useful]] = cols[useful]
    return mapping


def regions_to_classes(
    regions: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    matching: str = "majority",
    ignore_index: int | None = None,
) -> np.ndarray:
    """The class map obtained by giving each region a class (``"majority"`` or ``"hungarian"``)."""
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; choose from {', '.join(MATCHINGS)}")
    overlap = region_class_overlap(regions, truth, num_classes, ignore_index)
    mapping = majority_mapping(overlap) if matching == "majority" else hungarian_mapping(overlap)
    return mapping[np.asarray(regions)]


def score_regions(
    regions: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    matching: str = "majority",
    ignore_index: int | None = None,
) -> SegmentationScores:
    """Match regions to classes, then score the class map (IoU, mean IoU, pixel accuracy)."""
    predicted = regions_to_classes(regions, truth, num_classes, matching, ignore_index)
    return score_segmentation(truth, predicted, num_classes, ignore_index)


@dataclass(frozen=True)
class MethodEvaluation:
    """One method's scores over a data set."""

    method: str
    matching: str
    num_images: int
    scores: SegmentationScores
    mean_regions: float  # regions per image
    seconds_per_image: float
    options: dict[str, Any] = field(default_factory=dict)


def evaluate_method(
    method: str,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    matching: str = "majority",
    ignore_index: int | None = None,
    **options: Any,
) -> MethodEvaluation:
    """Segment every image of ``pairs`` (an iterable of (image, mask) pairs) and score it.

    ``mask`` is an HxW map of true classes 0..K-1 (or ``ignore_index``); ``options`` go to the
    method, as in :func:`~cnnzoo.classical.methods.segment`.
    """
    name = method_name(method)
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; choose from {', '.join(MATCHINGS)}")
    total: SegmentationScores | None = None
    num_images = 0
    num_regions = 0
    seconds = 0.0
    for image, mask in pairs:
        mask = np.asarray(mask)
        if mask.shape != np.shape(image)[:2]:
            raise ValueError(f"image {num_images}: mask shape {mask.shape} does not match image shape "
                             f"{np.shape(image)[:2]}")
        start = time.perf_counter()
        regions = segment(image, name, **options)
        seconds += time.perf_counter() - start
        scores = score_regions(regions, mask, num_classes, matching, ignore_index)
        total = scores if total is None else total + scores
        num_images += 1
        num_regions += int(regions.max()) + 1
    if total is None:
        raise ValueError("no (image, mask) pairs to evaluate")
    return MethodEvaluation(name, matching, num_images, total, num_regions / num_images, seconds / num_images,
                            dict(options))


def compare_methods(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    methods: Mapping[str, Mapping[str, Any]] | None = None,
    matching: str = "majority",
    ignore_index: int | None = None,
) -> list[MethodEvaluation]:
    """Evaluate several methods on the same pairs.

    ``methods`` maps a method name to its options; by default all three with their default
    options and ``k = num_classes`` for k-means.
    """
    pairs = list(pairs)  # every method needs its own pass over the images
    if methods is None:
        methods = {name: ({"k": num_classes} if name == "kmeans" else {}) for name in METHODS}
    return [evaluate_method(name, pairs, num_classes, matching, ignore_index, **options)
            for name, options in methods.items()]


def evaluation_table(evaluations: Iterable[MethodEvaluation]) -> str:
    """A Markdown table of evaluations, one row per method."""
    header = ["method", "matching", "images", "mean IoU", "pixel accuracy", "regions / image", "s / image", "options"]
    rows = [
        [e.method.replace("_", " "), e.matching, str(e.num_images), f"{e.scores.mean_iou:.3f}",
         f"{e.scores.pixel_accuracy:.3f}", f"{e.mean_regions:.1f}", f"{e.seconds_per_image:.3f}",
         ", ".join(f"{name}={value}" for name, value in e.options.items())]
        for e in evaluations
    ]
    return _text_table(header, rows, align_right={2, 3, 4, 5, 6}, markdown=True, pad=False)


format_table = evaluation_table  # the name it had before the generic table moved to cnnzoo.utils.text
