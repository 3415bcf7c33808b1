"""Classical segmentation and trained CNN segmenters side by side, on the same images and
the same metrics.

The classical methods (region growing, k-means, split and merge; :mod:`cnnzoo.classical`)
return regions, which are matched to classes (majority or Hungarian, see
:mod:`cnnzoo.classical.evaluate`); a trained segmenter returns classes directly. Both class
maps are then scored by :func:`cnnzoo.classical.metrics.score_segmentation` with the
confusion matrices summed over the data set, so every row of the table uses one definition
of IoU and pixel accuracy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from skimage.measure import label as connected_regions

from cnnzoo.classical.evaluate import MATCHINGS, MethodEvaluation, evaluate_method
from cnnzoo.classical.metrics import SegmentationScores, score_segmentation
from cnnzoo.classical.predicates import make_predicate
from cnnzoo.data import build_data
from cnnzoo.data.spec import DataSpec
from cnnzoo.engine.checkpoint import load_trained, read_checkpoint
from cnnzoo.engine.predict import prepare_image
from cnnzoo.engine.tiling import segment_image

__all__ = ["TUNING_GRID", "compare_segmenters", "evaluate_trained", "evaluation_pairs", "tune_classical"]

TRAINED = "none (classes)"

# The options tried for each classical method: the thresholds (0-255 units) span "every
# pixel its own region" to "one region per image" on the built-in sets' noise levels.
TUNING_GRID: dict[str, list[dict]] = {
    "region_growing": [{"threshold": t} for t in (20, 30, 45, 60, 90)],
    "kmeans": [{"texture": texture} for texture in ("lbp", "oriented", "none")],
    "split_and_merge": [{"predicate": make_predicate("max-std", t)} for t in (10, 15, 20, 30, 45)],
}


def evaluation_pairs(spec: DataSpec, num_images: int, split: str = "val") -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``num_images`` samples of ``split`` as (image, mask) NumPy pairs: the image
    ``H x W`` (one channel) or ``H x W x C`` as 8-bit values, the way the classical methods
    and their thresholds (in 0-255 units) take it."""
    if spec.task != "segmentation":
        raise ValueError(f"{spec.name!r} is a {spec.task} data set; the comparison needs a segmentation set")
    if num_images < 1:
        raise ValueError(f"the number of images must be at least 1, got {num_images}")
    dataset = spec.val if split == "val" else spec.train
    pairs = []
    for index in range(min(num_images, len(dataset))):
        sample = dataset[index]
        image = (sample["image"].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        pairs.append((image[..., 0] if image.shape[-1] == 1 else image, sample["target"].numpy()))
    return pairs


@torch.no_grad()
def evaluate_trained(run: str | os.PathLike, pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int,
                     ignore_index: int | None = None) -> MethodEvaluation:
    """Score a trained segmenter (a run directory or checkpoint) on (image, mask) pairs."""
    trained = load_trained(run)
    meta = trained.meta
    if meta.task != "segmentation":
        raise ValueError(f"{run} holds a {meta.task} model, not a segmenter")
    if meta.num_classes != num_classes:
        raise ValueError(f"{run} was trained for {meta.num_classes} classes; the data set has {num_classes}")
    total: SegmentationScores | None = None
    seconds, regions, count = 0.0, 0, 0
    for image, mask in pairs:
        pixels = torch.from_numpy(np.atleast_3d(image)).permute(2, 0, 1).float() / 255
        start = time.perf_counter()
        labels, _ = segment_image(trained.model, prepare_image(pixels, meta, resize=False))
        seconds += time.perf_counter() - start
        labels = labels.numpy()
        scores = score_segmentation(mask, labels, num_classes, ignore_index)
        total = scores if total is None else total + scores
        # Regions: 4-connected pieces of one class, as the classical methods count theirs.
        regions += int(connected_regions(labels, background=-1, connectivity=1).max())
        count += 1
    if total is None:
        raise ValueError("no (image, mask) pairs to evaluate")
    return MethodEvaluation(f"{meta.model} ({Path(run).name})", TRAINED, count, total, regions / count,
                            seconds / count)


def tune_classical(pairs: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int,
                   ignore_index: int | None = None, grid: dict[str, list[dict]] | None = None) -> dict[str, dict]:
    """For each classical method, the options of ``grid`` (default :data:`TUNING_GRID`) with the
    best mean IoU under Hungarian matching on ``pairs``.

    Hungarian (one-to-one) matching is the criterion because majority matching rewards
    over-segmentation: a region per pixel scores a perfect 1.0. Tune on training images and
    report on validation images, as one would tune any model.
    """
    grid = TUNING_GRID if grid is None else grid
    chosen = {}
    for method, candidates in grid.items():
        extra = {"k": num_classes} if method == "kmeans" else {}
        scored = [(evaluate_method(method, pairs, num_classes, "hungarian", ignore_index, **extra, **options)
                   .scores.mean_iou, index) for index, options in enumerate(candidates)]
        chosen[method] = {**extra, **candidates[max(scored)[1]]}
    return chosen


def compare_segmenters(data: str, runs: Sequence[str | os.PathLike] = (), *, num_images: int = 50,
                       tune_images: int = 10, matchings: Sequence[str] = ("majority", "hungarian"),
                       data_dir: str | None = None, image_size: int | None = None,
                       seed: int = 0) -> list[MethodEvaluation]:
    """The three classical methods (options tuned by :func:`tune_classical` on
    ``tune_images`` training images, each scored with every matching in ``matchings``) and
    each trained run, on the first ``num_images`` validation images of ``data``."""
    for matching in matchings:
        if matching not in MATCHINGS:
            raise ValueError(f"unknown matching {matching!r}; choose from {', '.join(MATCHINGS)}")
    for run in runs:  # a bad run directory fails now, not after the classical methods have run
        read_checkpoint(run)
    spec = build_data(data, data_dir=data_dir, image_size=image_size, train_size=max(tune_images, 1),
                      val_size=num_images, seed=seed)
    pairs = evaluation_pairs(spec, num_images)
    methods = tune_classical(evaluation_pairs(spec, tune_images, split="train"), spec.num_classes, spec.ignore_index)
    rows = [evaluate_method(method, pairs, spec.num_classes, matching, spec.ignore_index, **options)
            for matching in matchings for method, options in methods.items()]
    rows += [evaluate_trained(run, pairs, spec.num_classes, spec.ignore_index) for run in runs]
    return rows
