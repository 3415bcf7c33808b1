"""The pictures of a run: loss and metric curves, confusion matrix, segmentation overlays.

Drawn with matplotlib's object-oriented Agg API (no pyplot, no global backend switch, no
display needed) and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cnnzoo.engine.metrics import psnr_from_mse
from cnnzoo.images.write import class_palette
from cnnzoo.utils.figures import new_figure, save_figure

__all__ = ["colorize_mask", "plot_confusion", "plot_curves", "plot_overlays", "plot_reconstructions"]

# Metrics drawn against the epochs, per task (those the history holds).
CURVE_METRICS = {
    "classification": ("acc1", "train_acc1", "acc5"),
    "segmentation": ("miou", "pixel_acc", "dice"),
    "reconstruction": ("psnr",),  # in dB; ssim (0-1) would sit flat on the same axis
}


def plot_curves(history: Sequence[dict[str, Any]], task: str, path: str | Path, title: str = "") -> Path:
    """Two panels against the epoch: training and validation loss; the task's metrics."""
    figure = new_figure(11, 4)
    ax_loss, ax_metric = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        values = [row.get(key, np.nan) for row in history]
        ax_loss.plot(epochs, values, marker="o", markersize=3, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key in CURVE_METRICS[task]:
        if any(key in row for row in history):
            ax_metric.plot(epochs, [row.get(key, np.nan) for row in history], marker="o", markersize=3, label=key)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("metric (validation unless train_)")
    ax_metric.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_confusion(confusion: Any, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """The confusion matrix (rows: truth, columns: prediction), coloured by the fraction of
    each true class, with the counts written in when there are few classes."""
    counts = np.asarray(confusion.tolist() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.int64)
    classes = counts.shape[0]
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    size = min(14, 3 + 0.5 * classes)
    figure = new_figure(size + 1.5, size)
    ax = figure.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="fraction of the true class")
    labels = list(class_names) if len(class_names) == classes else [str(i) for i in range(classes)]
    ax.set_xticks(range(classes), labels, rotation=90 if classes > 5 else 0)
    ax.set_yticks(range(classes), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if classes <= 20:
        for i in range(classes):
            for j in range(classes):
                colour = "white" if fractions[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_title(title or "confusion matrix")
    return save_figure(figure, path)


def colorize_mask(mask: Any, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """An ``H x W`` class map as an ``H x W x 3`` uint8 picture (ignored pixels grey)."""
    mask = np.asarray(mask.tolist() if isinstance(mask, torch.Tensor) else mask, dtype=np.int64)
    palette = class_palette(num_classes)
    picture = np.full(mask.shape + (3,), 128, dtype=np.uint8)
    valid = (mask >= 0) & (mask < num_classes)
    if ignore_index is not None:
        valid &= mask != ignore_index
    picture[valid] = palette[mask[valid]]
    return picture


def plot_overlays(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    num_classes: int,
    path: str | Path,
    class_names: Sequence[str] = (),
    ignore_index: int | None = None,
) -> Path:
    """One row per image: the image (values in [0, 1]), the true mask, the prediction, and
    the prediction blended over the image."""
    rows = images.shape[0]
    figure = new_figure(12, 3 * rows + 0.6)
    axes = np.asarray(figure.subplots(rows, 4, squeeze=False))
    for row in range(rows):
        picture = _rgb(images[row])
        truth = colorize_mask(targets[row], num_classes, ignore_index)
        predicted = colorize_mask(predictions[row], num_classes)
        blended = (0.55 * picture + 0.45 * predicted / 255.0).clip(0, 1)
        for ax, shown, name in zip(
            axes[row], (picture, truth, predicted, blended), ("image", "truth", "prediction", "overlay")
        ):
            ax.imshow(shown, interpolation="nearest")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name)
    if class_names:
        palette = class_palette(num_classes) / 255.0
        from matplotlib.patches import Patch

        handles = [Patch(color=palette[i], label=name) for i, name in enumerate(class_names[:num_classes])]
        figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8)
    return save_figure(figure, path)


def plot_reconstructions(images: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Two rows: the images (values in [0, 1]) and, below each, its reconstruction with its
    PSNR (dB; 10 log10(1 / MSE) over the image's pixels, the reconstruction clamped to [0, 1])."""
    columns = images.shape[0]
    figure = new_figure(max(4.0, 1.6 * columns), 3.8)
    axes = np.asarray(figure.subplots(2, columns, squeeze=False))
    for column in range(columns):
        original, generated = _rgb(images[column]), _rgb(reconstructions[column])
        psnr = psnr_from_mse(float(np.mean((original - generated) ** 2)))
        for ax, shown, name in ((axes[0, column], original, "input"),
                                (axes[1, column], generated, f"{psnr:.1f} dB")):
            ax.imshow(shown, interpolation="nearest", vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(name, fontsize=9)
    figure.suptitle(title or "validation images (top) and their reconstructions (bottom)")
    return save_figure(figure, path)


def _rgb(image: torch.Tensor) -> np.ndarray:
    """A C x H x W image as H x W x 3 values in [0, 1] (grey repeated, RGB(A) cut to RGB)."""
    picture = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return np.repeat(picture, 3, axis=2) if picture.shape[2] == 1 else picture[..., :3]
