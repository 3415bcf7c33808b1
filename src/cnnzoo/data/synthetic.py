"""The built-in segmentation sets, drawn on the fly: no download, seeded, any size and count.

- ``shapes``: circles, squares, triangles and crosses (classes 1-4, background 0) of
  random size, colour and small tilt, each class with its own faint fill pattern, on
  striped, noisy RGB backgrounds; later shapes hide earlier ones, and the mask is exactly
  the drawn geometry.
- ``cells``: touching, blob-like cells (ellipses cut against each other where they
  overlap) in grayscale, separated by one-pixel background gaps as in the U-Net paper's
  microscopy data; with instance maps and the U-Net loss weight map per sample.
- ``fashion-scenes``: real Fashion-MNIST garments pasted onto a larger textured canvas,
  overlapping; each pixel labelled by the garment class + 1 (background 0).

Reproducibility: samples are drawn in chunks of :data:`CHUNK` with a generator seeded by
``(set, seed, split, chunk)``, so the same arguments give the same arrays, the train and
val splits differ, and the first ``n`` samples of a larger set are the set of ``n``. The
last 4 splits drawn are kept in memory (shared tensors: treat them as read-only).
Geometry convention: pixel ``(row, col)`` is the point ``y = row, x = col``; an angle
turns from the x axis (columns) towards the y axis (rows).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from cnnzoo.data.fashion_mnist import CLASS_NAMES, find_fashion_mnist, load_fashion_mnist
from cnnzoo.data.weight_map import unet_weight_map

__all__ = [
    "CELL_CLASSES",
    "CHUNK",
    "FASHION_SCENE_CLASSES",
    "SHAPE_CLASSES",
    "SyntheticSet",
    "make_cells",
    "make_fashion_scenes",
    "make_shapes",
    "make_shapes_scene",
    "shape_contains",
]

CHUNK = 64
SHAPE_CLASSES = ("background", "circle", "square", "triangle", "cross")
CELL_CLASSES = ("background", "cell")
_SPLITS = {"train": 0, "val": 1}
_SET_IDS = {"shapes": 1, "cells": 2, "fashion-scenes": 3}


@dataclass(frozen=True)
class SyntheticSet:
    """A generated split: ``images`` uint8 ``N x C x H x W``, ``masks`` uint8 ``N x H x W`` class maps;
    ``instances`` int32 ``N x H x W`` object ids (0 = background), ``weights`` float32 ``N x H x W``
    and ``params`` (what was drawn, one array per field, ``N x K``) where the set has them."""

    images: torch.Tensor
    masks: torch.Tensor
    instances: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    params: dict[str, np.ndarray] | None = None


# ----------------------------------------------------------------------------- shapes

MAX_SHAPES = 3
MAX_TILT_DEGREES = 15
_UPRIGHT = np.array([0.0, 0.0, 0.0, -math.pi / 2, 0.0])  # per class: a triangle's first vertex points up
# The size parameter of each class, for the same area as a circle of radius r:
# square half-side s = r sqrt(pi) / 2; equilateral triangle circumradius R, area
# (3 sqrt(3) / 4) R^2; cross of arm half-length L and half-width L / 3, area (20 / 9) L^2.
_EQUAL_AREA = np.array([1.0, 1.0, math.sqrt(math.pi) / 2, math.sqrt(4 * math.pi / (3 * math.sqrt(3))),
                        math.sqrt(9 * math.pi / 20)])  # indexed by class


def make_shapes(count: int, image_size: int | tuple[int, int] = (64, 64), seed: int = 0,
                split: str = "train") -> SyntheticSet:
    """``count`` RGB images of 1-3 overlapping shapes and their class masks (:data:`SHAPE_CLASSES`).

    ``params``: ``kind`` (class 1-4, 0 = slot unused), ``cy``, ``cx``, ``size`` (circle
    radius, square half-side, triangle circumradius, cross arm half-length, pixels),
    ``angle`` (radians), drawn in slot order (a later slot hides an earlier one); see
    :func:`shape_contains` for the exact geometry.
    """
    return _cached("shapes", count, _check_size(image_size), seed, split)


def shape_contains(kind: int, cy: np.ndarray, cx: np.ndarray, size: np.ndarray, angle: np.ndarray,
                   rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether the points ``(rows, cols)`` lie in shapes of class ``kind`` (parameters broadcast against the points).

    circle (1): distance to the centre <= size; square (2): both rotated coordinates
    within +-size; triangle (3): inside the three edges at distance size / 2 (the
    inradius) from the centre, vertices at ``angle + 2 pi k / 3``; cross (4): the union of
    two rotated bars of half-length size and half-width size / 3.
    """
    dy, dx = rows - cy, cols - cx
    if kind == 1:
        return dx * dx + dy * dy <= size * size
    if kind == 3:  # edge k faces the direction angle + pi/3 + 2 pi k/3, midway between two vertices
        normals = [angle + np.float32(math.pi / 3 + 2 * math.pi * k / 3) for k in range(3)]
        return np.logical_and.reduce([dx * np.cos(normal) + dy * np.sin(normal) <= size / 2 for normal in normals])
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = np.abs(dx * cos + dy * sin), np.abs(-dx * sin + dy * cos)
    if kind == 2:
        return np.maximum(u, v) <= size
    if kind == 4:
        arm = size / 3
        return ((u <= size) & (v <= arm)) | ((v <= size) & (u <= arm))
    raise ValueError(f"unknown shape class {kind}: 1 circle, 2 square, 3 triangle, 4 cross")


def make_shapes_scene(image_size: int | tuple[int, int], scale: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One large ``shapes`` picture and its class mask: uint8 ``3 x H x W`` and ``H x W``.

    Drawn as a ``shapes`` image is, on one background, with shapes sized as on a ``scale`` x
    ``scale`` image and as many of them per area (2 per ``scale``-square on average), so a
    model trained on ``shapes`` at ``scale`` sees nothing new in it but its size: the
    picture the overlap-tile path is shown on. (A mosaic of separate images would not do: the
    edges between their backgrounds are outlines a model never saw in training.)
    """
    height, width = _check_size(image_size)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 8:
        raise ValueError(f"scale must be an int of at least 8 pixels, got {scale!r}")
    shapes = max(1, round(2 * height * width / scale**2))  # 1-3 per image: 2 on average
    rng = np.random.default_rng([_SET_IDS["shapes"], seed, len(_SPLITS), height, width, scale])
    drawn = _draw_shapes(rng, 1, (height, width), scale=scale, shapes=shapes)
    return drawn["images"][0], drawn["masks"][0]


def _draw_shapes(rng: np.random.Generator, count: int, size: tuple[int, int], scale: int | None = None,
                 shapes: int | None = None) -> dict[str, np.ndarray]:
    """``count`` shapes images: 1-3 shapes each, sized by the image's shorter side; or, for a
    scene, exactly ``shapes`` of them sized as on a ``scale``-square image."""
    height, width = size
    side = min(height, width) if scale is None else scale
    slots = MAX_SHAPES if shapes is None else shapes
    if shapes is None:
        used = np.arange(MAX_SHAPES)[None] < rng.integers(1, MAX_SHAPES + 1, size=(count, 1))
    else:
        used = np.ones((count, shapes), dtype=bool)
    kind = np.where(used, rng.integers(1, len(SHAPE_CLASSES), size=(count, slots)), 0)
    radius = rng.uniform(0.12, 0.22, size=(count, slots)) * side  # of the circle with the same area
    shape_size = radius * _EQUAL_AREA[kind]
    rows, cols = _grid(size)
    params = {
        "kind": kind,
        "cy": rng.uniform(0.1, 0.9, size=(count, slots)) * height,
        "cx": rng.uniform(0.1, 0.9, size=(count, slots)) * width,
        "size": shape_size,
        # Near their upright pose (triangles pointing up): tilted by up to 15 degrees.
        "angle": _UPRIGHT[kind] + rng.uniform(-1, 1, size=(count, slots)) * math.radians(MAX_TILT_DEGREES),
    }
    inside = np.zeros((count, slots, height, width), dtype=bool)
    for kind_id in range(1, len(SHAPE_CLASSES)):
        chosen = kind == kind_id
        if chosen.any():
            inside[chosen] = shape_contains(kind_id, *(params[key][chosen, None, None].astype(np.float32)
                                                       for key in ("cy", "cx", "size", "angle")), rows, cols)
    background_colour = rng.uniform(0, 1, size=(count, 1, 3)).astype(np.float32)
    cycles = 1.0 if scale is None else max(size) / scale  # the background's gratings, as on a scale-square image
    image = background_colour[:, 0, :, None, None] + _stripes(rng, count, size, (0.03, 0.1), (cycles, 4 * cycles))[:, None]
    shape_colour = rng.uniform(0, 1, size=(count, slots, 3)).astype(np.float32)
    # A shape the colour of its background would be invisible but still in the mask.
    too_close = np.linalg.norm(shape_colour - background_colour, axis=-1, keepdims=True) < 0.3
    shape_colour = np.where(too_close, (background_colour + 0.5) % 1.0, shape_colour)
    mask = np.zeros((count, height, width), dtype=np.uint8)
    for slot in range(slots):
        fill = shape_colour[:, slot, :, None, None] + _fill_pattern(rng, params, slot, rows, cols)[:, None]
        image = np.where(inside[:, slot, None], fill, image)
        mask = np.where(inside[:, slot], kind[:, slot, None, None].astype(np.uint8), mask)
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * rng.uniform(
        0.02, 0.06, size=(count, 1, 1, 1)).astype(np.float32)
    return {"images": _to_uint8(image), "masks": mask, "params": params}


def _fill_pattern(rng: np.random.Generator, params: dict[str, np.ndarray], slot: int, rows: np.ndarray,
                  cols: np.ndarray) -> np.ndarray:
    """``count x H x W`` brightness pattern of each sample's shape in ``slot``, in the shape's
    own turned frame: circles plain, squares a checkerboard, triangles stripes, crosses rings
    (period 4-7 pixels, amplitude 0.06-0.12). A second, local cue to the class besides the
    outline, so that a small network learns the set in minutes."""
    count = len(params["kind"])

    def column(values: np.ndarray) -> np.ndarray:
        return values[:, None, None].astype(np.float32)

    kind = params["kind"][:, slot, None, None]
    angle, cy, cx = (column(params[key][:, slot]) for key in ("angle", "cy", "cx"))
    dy, dx = rows - cy, cols - cx
    u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    wave = np.float32(2 * math.pi) / column(rng.uniform(4, 7, count))
    checker = np.sign(np.sin(wave * u) * np.sin(wave * v))
    stripes = np.sign(np.sin(wave * u))
    rings = np.sign(np.sin(wave * np.hypot(u, v)))
    pattern = np.select([kind == 2, kind == 3, kind == 4], [checker, stripes, rings], 0.0)
    return pattern * column(rng.uniform(0.06, 0.12, count))


# ------------------------------------------------------------------------------ cells

CELL_SPACING = 16  # pixels between neighbouring cell seeds (before jitter)
_CELL_JITTER = 0.3  # of the spacing
_CELL_AXES = (0.45, 0.8)  # semi-axes, as fractions of the spacing
_CELL_DROP = 0.25  # fraction of seeds left empty, so that clusters of cells have background between them
# A pixel looks only at the seeds of its nearest grid point and the 8 around it: a cell
# reaches at most jitter + longest semi-axis = 1.1 spacings from its grid point along
# either axis, and a pixel is at least 1.5 spacings (along one axis) from any grid point
# two steps away from its nearest one.
assert _CELL_JITTER + _CELL_AXES[1] < 1.5


def make_cells(count: int, image_size: int | tuple[int, int] = (64, 64), seed: int = 0,
               split: str = "train") -> SyntheticSet:
    """``count`` grayscale images of touching cells: class masks (:data:`CELL_CLASSES`), instance
    maps (8-connected cells, 1..n) and U-Net weight maps (w0 = 10, sigma = 5 pixels)."""
    return _cached("cells", count, _check_size(image_size), seed, split)


def _draw_cells(rng: np.random.Generator, count: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    from scipy import ndimage

    seeds = _cell_seeds(rng, count, size)
    owner, distance = _cell_owners(seeds, size)
    gaps = _separating_pixels(owner)
    foreground = (owner > 0) & ~gaps
    instances = np.stack([ndimage.label(one, structure=np.ones((3, 3)))[0] for one in foreground]).astype(np.int32)
    brightness = seeds["brightness"].reshape(count, -1)
    level = np.take_along_axis(brightness, np.maximum(owner - 1, 0).reshape(count, -1), axis=1)
    background = np.float32(0.25) + _stripes(rng, count, size, (0.02, 0.06), (1, 3))
    # Brighter towards each cell's middle; darker membranes along the gaps; a little blur and noise.
    image = np.where(foreground, level.reshape(owner.shape) * (1 - np.float32(0.25) * distance), background)
    image = np.where(gaps, np.float32(0.6) * background, image)
    image = ndimage.gaussian_filter(image, sigma=(0, 0.6, 0.6))
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(0.03)
    return {"images": _to_uint8(image[:, None]), "masks": foreground.astype(np.uint8), "instances": instances}


def _cell_seeds(rng: np.random.Generator, count: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One seed per point of a jittered grid (point g at (g - 0.5) spacings, so a ring of
    points lies beyond each border), ``count x grid_h x grid_w`` arrays: centre, ellipse
    semi-axes and angle, brightness, and whether the seed holds a cell (a quarter do not)."""
    spacing = CELL_SPACING
    shape = (count, size[0] // spacing + 3, size[1] // spacing + 3)

    def uniform(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, shape).astype(np.float32)

    rows, cols = (np.arange(side, dtype=np.float32) for side in shape[1:])
    return {
        "cy": (rows[:, None] - 0.5) * spacing + uniform(-1, 1) * _CELL_JITTER * spacing,
        "cx": (cols[None] - 0.5) * spacing + uniform(-1, 1) * _CELL_JITTER * spacing,
        "a": uniform(*_CELL_AXES) * spacing,
        "b": uniform(*_CELL_AXES) * spacing,
        "angle": uniform(0, math.pi),
        "present": rng.random(shape) >= _CELL_DROP,
        "brightness": uniform(0.5, 0.85),
    }


def ellipse_distance(seeds: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``((u / a)^2 + (v / b)^2)`` of the points in each seed's rotated frame (< 1: inside its
    ellipse; ``inf`` for an empty seed); seed arrays broadcast against the points."""
    cos, sin = np.cos(seeds["angle"]), np.sin(seeds["angle"])
    off_y, off_x = rows - seeds["cy"], cols - seeds["cx"]
    distance = ((off_x * cos + off_y * sin) / seeds["a"]) ** 2 + ((-off_x * sin + off_y * cos) / seeds["b"]) ** 2
    return np.where(seeds["present"], distance, np.inf)


def _cell_owners(seeds: dict[str, np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(owner, distance): each pixel's cell (flat seed index + 1, 0 = background) and its
    :func:`ellipse_distance` to it (< 1), where a pixel inside several ellipses goes to the
    one it is deepest inside. Only the seeds of the pixel's nearest grid point and the 8
    around it can reach it (see the assertion above), so only those are compared."""
    count, grid_h, grid_w = seeds["cy"].shape
    rows, cols = _grid(size)
    nearest_row, nearest_col = (rows + CELL_SPACING) // CELL_SPACING, (cols + CELL_SPACING) // CELL_SPACING
    best = np.full((count, *size), np.inf, dtype=np.float32)
    owner = np.zeros((count, *size), dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            gy = np.clip(nearest_row + dy, 0, grid_h - 1).astype(np.int64)
            gx = np.clip(nearest_col + dx, 0, grid_w - 1).astype(np.int64)
            distance = ellipse_distance({key: value[:, gy, gx] for key, value in seeds.items()}, rows, cols)
            closer = distance < best
            best = np.where(closer, distance, best)
            owner = np.where(closer, gy * grid_w + gx + 1, owner)
    inside = best < 1
    return np.where(inside, owner, 0), np.where(inside, best, 1).astype(np.float32)


def _separating_pixels(owner: np.ndarray) -> np.ndarray:
    """Pixels of a cell with an 8-neighbour in a cell of higher id: removing them leaves a
    one-pixel background gap, so no two cells touch even diagonally."""
    padded = np.pad(owner, ((0, 0), (1, 1), (1, 1)))
    height, width = owner.shape[1:]
    gaps = np.zeros(owner.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            neighbour = padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
            gaps |= (owner > 0) & (neighbour > owner)
    return gaps


# --------------------------------------------------------------------- fashion-scenes

FASHION_SCENE_CLASSES = ("background", *CLASS_NAMES)
# A garment pixel at or above this level is opaque and labelled; darker ones show the canvas.
FOREGROUND_LEVEL = 24
_GARMENT = 28


def make_fashion_scenes(count: int, image_size: int | tuple[int, int] = (64, 64), seed: int = 0,
                        split: str = "train", data_dir: str | os.PathLike | None = None) -> SyntheticSet:
    """``count`` grayscale scenes of Fashion-MNIST garments (train scenes from the train split,
    val from t10k) on a textured canvas, masks = garment class + 1 (:data:`FASHION_SCENE_CLASSES`).

    Each scene holds 2 to ``max(2, round(4 * H * W / 64^2))`` (4 at 64x64) garments at random positions,
    pasted in slot order: a later garment's pixels >= :data:`FOREGROUND_LEVEL` hide what
    is under them. ``params``: ``index`` (into the Fashion-MNIST split, -1 = slot unused),
    ``top``, ``left``.
    """
    size = _check_size(image_size)
    if min(size) < _GARMENT:
        raise ValueError(f"fashion-scenes needs images of at least {_GARMENT}x{_GARMENT} (one garment), got {size}")
    garment_split = "train" if split == "train" else "test"
    images_file, _ = find_fashion_mnist(garment_split, data_dir)
    return _cached("fashion-scenes", count, size, seed, split, str(images_file.parent), garment_split)


def _draw_fashion_scenes(rng: np.random.Generator, count: int, size: tuple[int, int], folder: str,
                         garment_split: str) -> dict:
    garments, labels = _fashion_split(folder, garment_split)
    height, width = size
    most = max(2, round(4 * height * width / 64**2))
    used = np.arange(most)[None] < rng.integers(2, most + 1, size=(count, 1))
    index = np.where(used, rng.integers(0, len(garments), size=(count, most)), -1)
    top = rng.integers(0, height - _GARMENT + 1, size=(count, most))
    left = rng.integers(0, width - _GARMENT + 1, size=(count, most))
    canvas = rng.uniform(0.1, 0.3, size=(count, 1, 1)) + _stripes(rng, count, size, (0.03, 0.1), (1, 4))
    image = _to_uint8(canvas + rng.normal(0, 0.02, size=canvas.shape))
    mask = np.zeros((count, height, width), dtype=np.uint8)
    for sample, slot in zip(*np.nonzero(used)):
        garment = garments[index[sample, slot]]
        opaque = garment >= FOREGROUND_LEVEL
        window = (sample, slice(top[sample, slot], top[sample, slot] + _GARMENT),
                  slice(left[sample, slot], left[sample, slot] + _GARMENT))
        image[window] = np.where(opaque, garment, image[window])
        mask[window] = np.where(opaque, labels[index[sample, slot]] + 1, mask[window])
    return {"images": image[:, None], "masks": mask, "params": {"index": index, "top": top, "left": left}}


@functools.lru_cache(maxsize=2)
def _fashion_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    return load_fashion_mnist(split, folder)


# ------------------------------------------------------------------------------ common

_DRAW = {"shapes": _draw_shapes, "cells": _draw_cells, "fashion-scenes": _draw_fashion_scenes}


@functools.lru_cache(maxsize=4)
def _cached(name: str, count: int, size: tuple[int, int], seed: int, split: str, *extra: str) -> SyntheticSet:
    """The split, generated chunk by chunk and kept in memory (the last 4 asked for: a set's
    train and val splits, or two sets). The tensors are shared by every caller: read only."""
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of samples must be a positive int, got {count!r}")
    chunks = []
    for chunk in range(math.ceil(count / CHUNK)):
        rng = np.random.default_rng([_SET_IDS[name], seed, _SPLITS[split], chunk])
        chunks.append(_DRAW[name](rng, CHUNK, size, *extra))
    parts = {key: _concatenate([chunk[key] for chunk in chunks], count) for key in chunks[0]}
    weights = None
    if name == "cells":
        weights = torch.from_numpy(np.stack([unet_weight_map(one) for one in parts["instances"]]))
    return SyntheticSet(
        images=torch.from_numpy(parts["images"]), masks=torch.from_numpy(parts["masks"]),
        instances=torch.from_numpy(parts["instances"]) if "instances" in parts else None,
        weights=weights, params=parts.get("params"),
    )


def _concatenate(values: list, count: int):
    if isinstance(values[0], dict):
        return {key: np.concatenate([value[key] for value in values])[:count] for key in values[0]}
    return np.ascontiguousarray(np.concatenate(values)[:count])


def _check_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(side, bool) or int(side) != side or side < 8 for side in size):
        raise ValueError(f"image_size must be an int or (height, width) of at least 8 pixels, got {image_size}")
    return int(size[0]), int(size[1])


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:size[0], :size[1]]
    return rows.astype(np.float32), cols.astype(np.float32)


def _stripes(rng: np.random.Generator, count: int, size: tuple[int, int], amplitude: tuple[float, float],
             cycles: tuple[float, float]) -> np.ndarray:
    """``count x H x W`` texture: the sum of two sinusoidal gratings of random direction, phase,
    amplitude and frequency (``cycles`` across the image)."""
    rows, cols = _grid(size)
    side = max(size)
    texture = np.zeros((count, *size), dtype=np.float32)
    for _ in range(2):
        direction = rng.uniform(0, math.pi, (count, 1, 1)).astype(np.float32)
        frequency = (rng.uniform(*cycles, (count, 1, 1)) * 2 * math.pi / side).astype(np.float32)
        phase = rng.uniform(0, 2 * math.pi, (count, 1, 1)).astype(np.float32)
        strength = rng.uniform(*amplitude, (count, 1, 1)).astype(np.float32)
        texture += strength * np.sin(frequency * (cols * np.cos(direction) + rows * np.sin(direction)) + phase)
    return texture


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
