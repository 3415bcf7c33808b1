"""The pictures of :mod:`cnnzoo.visualize`, drawn with matplotlib and written as PNG.

Each ``draw_*`` function takes what :mod:`~cnnzoo.visualize.attribution` and
:mod:`~cnnzoo.visualize.stages` computed and writes one PNG atomically (a temporary file,
then a rename). Drawn with matplotlib's object-oriented Agg API, as the run pictures are
(no pyplot, no global backend switch, no display needed). What a picture shows is in
``docs/visualize.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnnzoo.images.write import display_rgb
from cnnzoo.utils.figures import new_figure, save_figure
from cnnzoo.visualize.attribution import Attribution, ReceptiveFields
from cnnzoo.visualize.stages import StageMap

__all__ = [
    "channel_tiles", "draw_attributions", "draw_features", "draw_filters", "draw_receptive_fields", "filter_tiles",
    "normalized",
]

MAX_FILTERS = 64  # an 8 x 8 grid; a wider first layer shows its first 64 filters


def normalized(values: np.ndarray) -> np.ndarray:
    """``values`` stretched from their min..max to 0..1 (all zeros where they are constant)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def filter_tiles(weight: torch.Tensor) -> np.ndarray:
    """One ``k x k x 3`` tile in [0, 1] per filter of a convolution's ``O x I x k x k``
    weight (the first :data:`MAX_FILTERS`), each filter normalized on its own: an RGB
    filter as colour, one input channel as gray, other counts as their mean in gray."""
    weight = weight.detach().float().cpu()[:MAX_FILTERS]
    if weight.shape[1] != 3:
        weight = weight.mean(dim=1, keepdim=True).repeat(1, 3, 1, 1)
    return np.stack([normalized(w.permute(1, 2, 0).numpy()) for w in weight])


def channel_tiles(stage: StageMap, channels: int) -> list[tuple[str, np.ndarray]]:
    """The pictures of one stage's map: its mean over the channels, then its first
    ``channels`` channels, each normalized on its own, with a label."""
    maps = stage.map[0].detach().float().cpu()
    tiles = [("mean", normalized(maps.mean(dim=0).numpy()))]
    tiles += [(f"ch {c}", normalized(maps[c].numpy())) for c in range(min(channels, len(maps)))]
    return tiles


def _shown(image: torch.Tensor) -> np.ndarray:
    """A ``C x H x W`` image in [0, 1] as an ``H x W x 3`` array in [0, 1] for imshow."""
    return display_rgb(image.detach().cpu().permute(1, 2, 0).numpy()) / 255


def _grid(count: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def _axes(figure, rows: int, columns: int) -> list:
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel().tolist()
    for ax in axes:
        ax.set_axis_off()
    return axes


def draw_attributions(path: str | os.PathLike, image: torch.Tensor, maps: Sequence[Attribution],
                      class_names: Sequence[str], title: str, overlay: bool = True) -> Path:
    """The image, then each map (one per class) over it in a heat colour map (``overlay``)
    or on its own; each map normalized to its own maximum."""
    rows, columns = _grid(len(maps) + 1, 4)
    figure = new_figure(3 * columns, 3 * rows + 0.4)
    axes = _axes(figure, rows, columns)
    shown = _shown(image)
    axes[0].imshow(shown)
    axes[0].set_title("input (as the model sees it)", fontsize=9)
    for ax, attribution in zip(axes[1:], maps):
        values = normalized(attribution.values.detach().cpu().numpy())
        if overlay:
            ax.imshow(shown)
            ax.imshow(values, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        else:
            ax.imshow(values, cmap="hot", vmin=0, vmax=1)
        name = class_names[attribution.target] if attribution.target < len(class_names) else str(attribution.target)
        ax.set_title(f"class {attribution.target}: {name}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def draw_filters(path: str | os.PathLike, layer: str, weight: torch.Tensor) -> Path:
    """The first layer's filters in a grid, each normalized on its own (:func:`filter_tiles`)."""
    tiles = filter_tiles(weight)
    rows, columns = _grid(len(tiles), 8)
    figure = new_figure(1.2 * columns, 1.2 * rows + 0.5)
    for ax, tile in zip(_axes(figure, rows, columns), tiles):
        ax.imshow(tile, interpolation="nearest")
    out_channels, in_channels, kh, kw = weight.shape
    shown = f", first {len(tiles)}" if len(tiles) < out_channels else ""
    colour = "RGB" if in_channels == 3 else "gray" if in_channels == 1 else f"mean of {in_channels} channels"
    figure.suptitle(f"{layer}: {out_channels} filters {kh}x{kw} ({colour}{shown}), each normalized", fontsize=10)
    return save_figure(figure, path)


def draw_features(path: str | os.PathLike, stages: Sequence[StageMap], channels: int) -> Path:
    """One row per stage: the channel mean, then the first ``channels`` channels."""
    rows = [channel_tiles(stage, channels) for stage in stages]
    columns = max(len(row) for row in rows)
    figure = new_figure(1.4 * columns + 1, 1.4 * len(rows) + 0.5)
    axes = np.asarray(_axes(figure, len(rows), columns)).reshape(len(rows), columns)
    for stage, row, line in zip(stages, rows, axes):
        for ax, (label, tile) in zip(line, row):
            ax.imshow(tile, cmap="viridis", interpolation="nearest")
            ax.set_title(label, fontsize=7)
        _, c, h, w = stage.map.shape
        line[0].text(-0.1, 0.5, f"{stage.name}\n{c}x{h}x{w}", transform=line[0].transAxes, ha="right",
                     va="center", fontsize=8)
    figure.suptitle("feature maps per stage (each normalized on its own)", fontsize=10)
    return save_figure(figure, path)


def draw_receptive_fields(path: str | os.PathLike, fields: ReceptiveFields) -> Path:
    """The effective receptive field of the stage's centre unit (on a square-root scale, so
    that its faint tails show), with the theoretical one drawn over it as a dashed square
    centred on the effective field's centre of mass; the view is the part of the plane
    either reaches, with a margin."""
    # with matplotlib, imported late (see _figure)
    from matplotlib.colors import PowerNorm
    from matplotlib.patches import Rectangle

    figure = new_figure(6, 5.6)
    ax = figure.subplots()
    erf = fields.erf.detach().cpu().numpy()
    ax.imshow(normalized(erf), cmap="magma", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
    height, width = fields.support()
    text = f"effective: {height}x{width} pixels reached"
    rows, columns = np.nonzero(erf)
    box = [rows.min(), rows.max(), columns.min(), columns.max()] if len(rows) else [0, erf.shape[0] - 1, 0,
                                                                                  erf.shape[1] - 1]
    if fields.size is not None:
        row, column = fields.erf_centre()
        size_y, size_x = fields.size
        top, left = row - size_y / 2, column - size_x / 2
        ax.add_patch(Rectangle((left, top), size_x, size_y, fill=False, edgecolor="cyan", linestyle="--",
                               linewidth=1.5))
        box = [min(box[0], top), max(box[1], top + size_y), min(box[2], left), max(box[3], left + size_x)]
        text += f"; theoretical (dashed): {size_y:g}x{size_x:g}"
    else:
        text += "; theoretical: none (a global operation on the way)"
    margin = 0.1 * max(box[1] - box[0], box[3] - box[2]) + 2
    ax.set_xlim(box[2] - margin, box[3] + margin)  # past the image where the theoretical field is larger
    ax.set_ylim(box[1] + margin, box[0] - margin)
    ax.set_title(f"receptive field of the centre unit of {fields.stage} (|gradient|, square-root scale)\n{text}",
                 fontsize=9)
    return save_figure(figure, path)
