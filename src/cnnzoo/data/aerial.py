"""``aerial``: a built-in set of drawn aerial scenes with the ISPRS 2D semantic labeling classes.

The ISPRS Vaihingen and Potsdam benchmarks (the data sets of Volpi and Tuia, "Dense Semantic
Labeling of Subdecimeter Resolution Images With Convolutional Neural Networks", IEEE TGRS
2017) label every pixel of an orthophoto as one of six classes: impervious surfaces,
building, low vegetation, tree, car, clutter/background. Those tiles cannot be shipped, so
this module draws look-alikes, seeded, at any size (128 x 128 RGB by default), about 9 cm a
pixel as in Vaihingen (a car is some 45 x 20 pixels there; here 8 x 4 at 128 x 128, everything
scaled with the canvas):

- low vegetation (class 2) is the ground: a grass colour with patchy, fine texture;
- impervious surfaces (0): one or two grey roads (strips 10-18 pixels wide, near horizontal or
  vertical) and sometimes a paved yard beside them;
- buildings (1): one to four rectangles, slightly turned, off the roads, with gable-roof
  shading (the two halves of the roof lit differently, a bright ridge) and a cast shadow that
  darkens what lies beside them but keeps its label, as the ISPRS ground truth does;
- trees (3): round crowns with ragged outlines, darker and far more textured than the grass
  (colour alone does not tell them apart), overhanging roads and roofs;
- cars (4): small rectangles on the roads, along them, in car colours;
- clutter (5): a few small objects of any colour, anywhere.

Grey roofs are the colour of roads and tree crowns the hue of grass, so a network must read
shape and texture, not only colour. The mask is exactly the drawn geometry (the last thing
drawn at a pixel owns it). Reproducibility follows :mod:`cnnzoo.data.synthetic`: chunks of
:data:`~cnnzoo.data.synthetic.CHUNK` samples, each from a generator seeded by
``(set, seed, split, chunk)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import ndimage

from cnnzoo.data.synthetic import CHUNK, SyntheticSet, _check_size, _grid, _to_uint8

__all__ = ["AERIAL_CLASSES", "AERIAL_MIN_SIZE", "make_aerial"]

# The ISPRS benchmark's classes in its order (its label colours: white, blue, cyan, green, yellow, red).
AERIAL_CLASSES = ("impervious surfaces", "building", "low vegetation", "tree", "car", "clutter")
IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE, CAR, CLUTTER = range(len(AERIAL_CLASSES))
AERIAL_MIN_SIZE = 32
_SET_ID = 4  # beside synthetic's shapes 1, cells 2, fashion-scenes 3
_SPLITS = {"train": 0, "val": 1}
_CAR_COLOURS = np.array([[0.75, 0.1, 0.1], [0.9, 0.9, 0.9], [0.1, 0.2, 0.6], [0.08, 0.08, 0.08],
                         [0.65, 0.67, 0.7], [0.1, 0.45, 0.2]], dtype=np.float32)


def make_aerial(count: int, image_size: int | tuple[int, int] = (128, 128), seed: int = 0,
                split: str = "train") -> SyntheticSet:
    """``count`` RGB aerial-like scenes (uint8 ``N x 3 x H x W``) and their class masks (uint8
    ``N x H x W``, :data:`AERIAL_CLASSES`); every scene draws a road, one to three cars on each
    road and a piece of clutter (a tree crown may hide them). ``image_size``: at least
    :data:`AERIAL_MIN_SIZE` a side."""
    size = _check_size(image_size)
    if min(size) < AERIAL_MIN_SIZE:
        raise ValueError(f"aerial scenes need at least {AERIAL_MIN_SIZE}x{AERIAL_MIN_SIZE} pixels, got {size}")
    return _cached(count, size, seed, split)


@functools.lru_cache(maxsize=4)
def _cached(count: int, size: tuple[int, int], seed: int, split: str) -> SyntheticSet:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of samples must be a positive int, got {count!r}")
    # Each chunk of CHUNK scenes from its own generator: the first n scenes of a larger set are the set of n.
    generators = [np.random.default_rng([_SET_ID, seed, _SPLITS[split], chunk])
                  for chunk in range(math.ceil(count / CHUNK))]
    scenes = [_draw_scene(rng, size) for chunk, rng in enumerate(generators)
              for _ in range(min(CHUNK, count - chunk * CHUNK))]
    images = np.stack([image for image, _ in scenes])
    masks = np.stack([mask for _, mask in scenes])
    return SyntheticSet(images=torch.from_numpy(images), masks=torch.from_numpy(masks))


class _Canvas:
    """One scene being drawn: the float RGB image, the class mask and the pixel grid."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]) -> None:
        self.rng = rng
        self.rows, self.cols = _grid(size)
        self.scale = min(size) / 128  # every length below is given for a 128-pixel canvas
        self.image = np.zeros((3, *size), dtype=np.float32)
        self.mask = np.full(size, LOW_VEGETATION, dtype=np.uint8)

    def noise(self, sigma: float) -> np.ndarray:
        """Gaussian noise smoothed over ``sigma`` (128-canvas) pixels, scaled to unit spread."""
        field = ndimage.gaussian_filter(self.rng.standard_normal(self.mask.shape).astype(np.float32),
                                        max(sigma * self.scale, 0.5))
        return field / (field.std() + 1e-6)

    def paint(self, where: np.ndarray, colour: np.ndarray, label: int, texture: np.ndarray | float = 0.0) -> None:
        self.image = np.where(where, colour[:, None, None] * (1 + texture), self.image)
        self.mask[where] = label

    def rectangle(self, cy: float, cx: float, half_length: float, half_width: float, angle: float) -> np.ndarray:
        """Pixels of the rectangle centred at (cy, cx), its long axis turned by ``angle``."""
        u, v = self.along(cy, cx, angle)
        return (np.abs(u) <= half_length) & (np.abs(v) <= half_width)

    def along(self, cy: float, cx: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's coordinates in the frame at (cy, cx) whose first axis is turned by ``angle``."""
        dy, dx = self.rows - cy, self.cols - cx
        return dx * math.cos(angle) + dy * math.sin(angle), -dx * math.sin(angle) + dy * math.cos(angle)


def _draw_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    canvas = _Canvas(rng, size)
    _grass(canvas)
    roads = _roads(canvas)
    _buildings(canvas, occupied=canvas.mask == IMPERVIOUS)
    _cars(canvas, roads)
    _trees(canvas)
    _clutter(canvas)
    light = rng.uniform(0.85, 1.15)  # time of day / exposure
    image = canvas.image * light + rng.standard_normal(canvas.image.shape).astype(np.float32) * 0.02
    return _to_uint8(image), canvas.mask


def _grass(canvas: _Canvas) -> None:
    rng = canvas.rng
    colour = np.array([0.42, 0.52, 0.28], dtype=np.float32) + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    dry = np.array([0.62, 0.6, 0.38], dtype=np.float32)  # dry patches, yellower
    patches = np.clip(canvas.noise(12) * 0.5, 0, 1)[None] * rng.uniform(0.2, 0.6)
    texture = 0.06 * canvas.noise(6) + 0.04 * canvas.noise(0.7)
    canvas.image = (colour[:, None, None] * (1 - patches) + dry[:, None, None] * patches) * (1 + texture)


def _roads(canvas: _Canvas) -> list[tuple[float, float, float, float]]:
    """One or two roads (and maybe a paved yard); returns each road's (cy, cx, angle, half-width)."""
    rng, height, width = canvas.rng, *canvas.mask.shape
    grey = rng.uniform(0.45, 0.65)
    colour = np.array([grey, grey, grey + 0.02], dtype=np.float32)
    roads = []
    for index in range(rng.integers(1, 3)):
        angle = (index + rng.integers(0, 2)) % 2 * math.pi / 2 + rng.uniform(-0.17, 0.17)
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        half_width = rng.uniform(5, 9) * canvas.scale
        _, across = canvas.along(cy, cx, angle)
        canvas.paint(np.abs(across) <= half_width, colour, IMPERVIOUS, 0.03 * canvas.noise(1))
        roads.append((cy, cx, angle, half_width))
    if rng.random() < 0.5:  # a paved yard or parking lot beside the first road
        cy, cx, angle, half_width = roads[0]
        side = rng.choice([-1, 1]) * (half_width + 8 * canvas.scale)
        yard = canvas.rectangle(cy + side * math.cos(angle), cx - side * math.sin(angle), 14 * canvas.scale,
                                8 * canvas.scale, angle)
        canvas.paint(yard, colour * np.float32(rng.uniform(0.9, 1.1)), IMPERVIOUS, 0.03 * canvas.noise(1))
    return roads


def _buildings(canvas: _Canvas, occupied: np.ndarray) -> None:
    """One to four gable-roofed buildings off the roads, each with a cast shadow."""
    rng, height, width = canvas.rng, *canvas.mask.shape
    roof_colours = np.array([[0.62, 0.3, 0.24], [0.55, 0.55, 0.56], [0.32, 0.31, 0.33], [0.5, 0.36, 0.3]],
                            dtype=np.float32)
    wanted, placed = rng.integers(1, 5), 0
    shadow = np.array([rng.uniform(2, 4), rng.uniform(2, 4)]) * canvas.scale
    for _ in range(20):  # tries
        if placed == wanted:
            break
        half_length, half_width = rng.uniform(9, 18) * canvas.scale, rng.uniform(6, 11) * canvas.scale
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        angle = rng.integers(0, 2) * math.pi / 2 + rng.uniform(-0.25, 0.25)
        footprint = canvas.rectangle(cy, cx, half_length, half_width, angle)
        if (footprint & occupied).any() or not footprint.any():
            continue
        cast = canvas.rectangle(cy + shadow[0], cx + shadow[1], half_length, half_width, angle) & ~footprint
        canvas.image = np.where(cast & ~occupied, canvas.image * np.float32(0.55), canvas.image)
        colour = roof_colours[rng.integers(len(roof_colours))] + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
        _, across = canvas.along(cy, cx, angle)
        lit = np.where(across > 0, np.float32(0.12), np.float32(-0.15))  # the two halves of the roof
        ridge = np.where(np.abs(across) < 1.0 * canvas.scale, np.float32(0.2), np.float32(0))
        canvas.paint(footprint, colour, BUILDING, lit + ridge + 0.02 * canvas.noise(1))
        occupied = occupied | footprint | cast
        placed += 1


def _cars(canvas: _Canvas, roads: list[tuple[float, float, float, float]]) -> None:
    """One to three cars per road, on a lane, along the road."""
    rng, extent = canvas.rng, max(canvas.mask.shape)
    for cy, cx, angle, half_width in roads:
        for _ in range(rng.integers(1, 4)):
            distance = rng.uniform(-0.4, 0.4) * extent
            lane = rng.choice([-0.5, 0.5]) * half_width
            y = cy + distance * math.sin(angle) + lane * math.cos(angle)
            x = cx + distance * math.cos(angle) - lane * math.sin(angle)
            car = canvas.rectangle(y, x, 4 * canvas.scale, 2 * canvas.scale, angle)
            colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))]
            canvas.paint(car, colour, CAR, 0.05 * canvas.noise(0.7))


def _trees(canvas: _Canvas) -> None:
    """Two to eight crowns: discs with ragged edges, dark, strongly textured, shaded at the rim."""
    rng, height, width = canvas.rng, *canvas.mask.shape
    colour = np.array([0.2, 0.34, 0.15], dtype=np.float32) + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    for _ in range(rng.integers(2, 9)):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, 12) * canvas.scale
        dy, dx = canvas.rows - cy, canvas.cols - cx
        theta = np.arctan2(dy, dx)
        ragged = radius * (1 + sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
                                   for k in (3, 5, 7)))
        distance = np.hypot(dy, dx)
        crown = distance <= ragged
        rim = np.clip(distance / np.maximum(ragged, 1e-6), 0, 1)
        canvas.paint(crown, colour, TREE, 0.22 * canvas.noise(0.8) - 0.25 * rim**2)


def _clutter(canvas: _Canvas) -> None:
    """One to three small objects (discs or boxes) of any colour, anywhere."""
    rng, height, width = canvas.rng, *canvas.mask.shape
    for _ in range(rng.integers(1, 4)):
        cy, cx, extent = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(2, 4) * canvas.scale
        if rng.random() < 0.5:
            where = np.hypot(canvas.rows - cy, canvas.cols - cx) <= extent
        else:
            where = canvas.rectangle(cy, cx, extent, extent * rng.uniform(0.5, 1), rng.uniform(0, math.pi))
        canvas.paint(where, rng.uniform(0.1, 0.95, 3).astype(np.float32), CLUTTER)
