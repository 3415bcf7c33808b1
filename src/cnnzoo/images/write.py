"""Label maps and overlays out, as PNG files written atomically.

Label maps are written as palette PNGs when they have at most 256 labels (the pixel values
are the labels and any viewer shows them in colour), as 16-bit grayscale PNGs up to 65,536
labels. Every file is written to a temporary file in the destination folder and then renamed
over the target, so a reader never sees half a file. ``cnnzoo predict`` and ``cnnzoo
segment-classic`` write the same files.
"""

from __future__ import annotations

import colorsys
import os

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from cnnzoo.images.arrays import as_float_image
from cnnzoo.utils.atomic import write_atomically

__all__ = ["class_palette", "display_rgb", "label_palette", "write_label_map", "write_overlay", "write_png"]

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def write_label_map(path: str | os.PathLike, labels: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an HxW map of labels 0..65535 as a PNG whose pixel values are the labels, shown in
    ``palette``'s colours (``(N, 3)`` uint8, N <= 256; default :func:`label_palette`)."""
    labels = _check_label_map(labels)
    highest = int(labels.max())
    if highest < 256:
        picture = Image.fromarray(labels.astype(np.uint8))
        picture.putpalette(_full_palette(palette).ravel().tolist())  # turns the "L" image into a "P" one
    elif highest < 65536:
        picture = Image.fromarray(labels.astype(np.uint16))
    else:
        raise ValueError(f"a PNG label map holds at most 65536 labels; this one has label {highest}")
    _save_png_atomically(picture, path)


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8 ``H x W``, ``H x W x 1`` (gray) or ``H x W x 3`` (RGB) pixels as a PNG."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3)):
        raise ValueError(f"a PNG is written from uint8 H x W (x 1 or x 3) pixels, got {pixels.dtype} {pixels.shape}")
    _save_png_atomically(Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels), path)


def write_overlay(
    path: str | os.PathLike, image: np.ndarray, labels: np.ndarray, alpha: float = 0.45, boundaries: bool = True,
    palette: np.ndarray | None = None,
) -> None:
    """Write ``image`` with each region tinted in its colour of ``palette`` (``(N, 3)`` uint8;
    default :func:`label_palette`) and, optionally, region outlines in white."""
    base = display_rgb(image)
    labels = _check_label_map(labels)
    if labels.shape != base.shape[:2]:
        raise ValueError(f"label map shape {labels.shape} does not match the image's {base.shape[:2]}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    tint = _full_palette(palette, int(labels.max()) + 1)[labels]
    blended = (1 - alpha) * base + alpha * tint
    if boundaries:
        blended[find_boundaries(labels, mode="inner", background=-1)] = 255  # label 0 is a region too
    _save_png_atomically(Image.fromarray(np.round(blended).astype(np.uint8)), path)


def label_palette(num_labels: int) -> np.ndarray:
    """(num_labels, 3) uint8 colours, far apart for neighbouring labels and the same in every run.

    Hues step by the golden ratio, so consecutive labels get very different hues; saturation
    and brightness alternate so that labels whose hues come close again still differ.
    """
    colours = np.empty((num_labels, 3), dtype=np.uint8)
    for label in range(num_labels):
        hue = (label * _GOLDEN_RATIO_CONJUGATE) % 1.0
        saturation = 0.85 if label % 2 == 0 else 0.55
        value = 0.95 if (label // 2) % 2 == 0 else 0.75
        colours[label] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    return colours


def class_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours of the classes of a segmentation task: class 0
    (background in every built-in set) black, then matplotlib's 20 distinct "tab20" colours.
    The training plots, ``cnnzoo predict``'s masks and overlays all draw classes with it."""
    from matplotlib import colormaps  # here, not at import: matplotlib costs the CLI's start-up

    tab20 = colormaps["tab20"]
    colours = [(0, 0, 0)] + [tuple(round(255 * c) for c in tab20(i % 20)[:3]) for i in range(max(0, num_classes - 1))]
    return np.array(colours[:num_classes], dtype=np.uint8)


def _full_palette(palette: np.ndarray | None, needed: int = 256) -> np.ndarray:
    """``palette`` checked to hold a colour for each of ``needed`` labels (256 for a PNG's
    palette: the rest from :func:`label_palette`)."""
    if palette is None:
        return label_palette(needed)
    palette = np.asarray(palette, dtype=np.uint8)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) > 256:
        raise ValueError(f"a palette is an (N, 3) array of at most 256 colours, got shape {palette.shape}")
    if len(palette) >= needed:
        return palette
    return np.concatenate([palette, label_palette(needed)[len(palette):]])


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An HxWx3 float array in 0..255 for showing ``image``.

    uint8 as is, uint16 divided by 257, images already in [0, 1] times 255, anything else
    stretched from its min..max; one channel is repeated, four channels lose the fourth and
    other channel counts are averaged to gray.
    """
    dtype = np.asarray(image).dtype
    values = as_float_image(image)
    if dtype == np.uint8:
        scaled = values
    elif dtype == np.uint16:
        scaled = values / 257
    elif values.min() >= 0 and values.max() <= 1:
        scaled = values * 255
    else:
        low, high = values.min(), values.max()
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    channels = scaled.shape[2]
    if channels == 3:
        return scaled
    if channels == 4:
        return scaled[..., :3]
    gray = scaled if channels == 1 else scaled.mean(axis=2, keepdims=True)
    return np.repeat(gray, 3, axis=2)


def _check_label_map(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"a label map must be a non-empty HxW array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"a label map must hold integers, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"a label map must hold labels >= 0, found {labels.min()}")
    return labels


def _save_png_atomically(picture: Image.Image, path: str | os.PathLike) -> None:
    write_atomically(path, lambda stream: picture.save(stream, format="PNG"))
