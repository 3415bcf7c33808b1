"""The U-Net loss weight map (Ronneberger, Fischer, Brox 2015, section 3, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

"w_c is the weight map to balance the class frequencies, d1 denotes the distance to the
border of the nearest cell and d2 the distance to the border of the second nearest cell.
In our experiments we set w0 = 10 and sigma ~ 5 pixels." The border term makes the thin
background gaps between touching cells expensive to get wrong, so the network learns to
separate them.

Conventions used here (the paper leaves them open):

- distances are Euclidean, between pixel centres: a background pixel's distance to a cell
  is its distance to the cell's nearest pixel (``scipy.ndimage.distance_transform_edt``),
  so a background pixel next to a cell is at distance 1;
- the border term is given to background pixels (``instances == 0``) only: those are the
  separation borders the paper weights; a pixel inside a cell gets ``w_c`` alone;
- with fewer than two cells there is no second-nearest cell and no border term;
- ``w_c`` defaults to inverse class frequency normalized so that every class present
  carries the same total weight and the map's mean of ``w_c`` is 1:
  ``w_c[k] = n_pixels / (n_classes_present * n_pixels_of_class_k)``.

Plain NumPy + SciPy (no torch), so data builders can call it while preparing samples.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["border_distances", "class_balance_weights", "unet_weight_map"]

# Beyond d1 + d2 = sigma * _CUTOFF_SIGMAS the border term is below w0 * 1e-12 (far below
# the float32 resolution of a weight near 1), so each cell's distance transform is computed only in its bounding
# box grown by that radius: the cost grows with the cells' sizes, not cells x image.
_CUTOFF_SIGMAS = math.sqrt(2 * math.log(1e12))


def unet_weight_map(
    instances: np.ndarray,
    classes: np.ndarray | None = None,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per-pixel loss weights of the U-Net paper (eq. 2), float32 ``H x W``.

    ``instances``: int ``H x W``, 0 = background, 1..n one id per object (cell); ids need
    not be consecutive. ``classes``: int ``H x W`` class map for ``w_c`` (default
    ``instances > 0``: background 0, foreground 1). ``class_weights``: ``w_c`` per class
    label (length > the largest label); default from the class frequencies, see the module
    docstring. ``w0``, ``sigma``: the paper's 10 and 5 pixels.
    """
    instances = _check_label_map("instances", instances)
    if classes is None:
        classes = (instances > 0).astype(np.int64)
    else:
        classes = _check_label_map("classes", classes)
        if classes.shape != instances.shape:
            raise ValueError(f"classes shape {classes.shape} differs from instances shape {instances.shape}")
    if not (math.isfinite(w0) and w0 >= 0):
        raise ValueError(f"w0 must be a finite number >= 0, got {w0!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")

    weight = _class_weight_map(classes, class_weights)
    if w0 > 0:
        nearest, second = border_distances(instances, max_distance=sigma * _CUTOFF_SIGMAS)
        border = w0 * np.exp(-((nearest + second) ** 2) / (2 * sigma**2))
        weight += np.where(instances == 0, border, 0.0)
    return weight.astype(np.float32)


def class_balance_weights(classes: np.ndarray) -> np.ndarray:
    """Default ``w_c`` per class label 0..max: ``n_pixels / (n_present * count_k)``, 0 for
    an absent class. Every present class then carries the same total weight, and the mean
    weight over the map is 1."""
    classes = _check_label_map("classes", classes)
    counts = np.bincount(classes.ravel()).astype(np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = classes.size / (present.sum() * counts[present])
    return weights


def border_distances(instances: np.ndarray, max_distance: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """``(d1, d2)``: each pixel's Euclidean distance to the nearest and second-nearest
    object (pixel centre to the object's nearest pixel centre; 0 inside an object for
    its own object), float64 ``H x W``; ``inf`` where there is no such object.

    Each object's distance transform is computed only in its bounding box grown by
    ``max_distance``, so an object farther than that from a pixel may be left out for it:
    ``d1`` and ``d2`` are exact wherever the true ``d2 < max_distance``, and never smaller
    than the truth elsewhere (``unet_weight_map`` passes a distance past which the border
    term is negligible).
    """
    instances = _compact_ids(_check_label_map("instances", instances))
    nearest = np.full(instances.shape, np.inf)
    second = np.full(instances.shape, np.inf)
    for label, box in _objects(instances):
        window = _grown(box, max_distance, instances.shape)
        distance = ndimage.distance_transform_edt(instances[window] != label)
        d1, d2 = nearest[window], second[window]
        # The two smallest of {d1 <= d2, distance}: d2 becomes max(d1, distance) capped by d2.
        second[window] = np.minimum(d2, np.maximum(d1, distance))
        nearest[window] = np.minimum(d1, distance)
    return nearest, second


def _compact_ids(instances: np.ndarray) -> np.ndarray:
    """Renumber sparse huge ids 1..n (order kept, 0 stays background) so that
    ``find_objects``' table, one entry per id up to the largest, stays small."""
    if instances.size == 0 or instances.max() <= instances.size:
        return instances
    ids, inverse = np.unique(instances, return_inverse=True)
    return (inverse.reshape(instances.shape) + (0 if ids[0] == 0 else 1)).astype(np.int64)


def _objects(instances: np.ndarray) -> list[tuple[int, tuple[slice, ...]]]:
    """(label, bounding box) of every object id > 0 present in the map."""
    boxes = ndimage.find_objects(instances)  # index i holds label i + 1, None if absent
    return [(index + 1, box) for index, box in enumerate(boxes) if box is not None]


def _grown(box: tuple[slice, ...], margin: float, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` pixels on every side, clipped to the image."""
    if math.isinf(margin):
        return tuple(slice(0, size) for size in shape)
    grow = int(math.ceil(margin))
    return tuple(slice(max(0, s.start - grow), min(size, s.stop + grow)) for s, size in zip(box, shape))


def _class_weight_map(classes: np.ndarray, class_weights: np.ndarray | None) -> np.ndarray:
    if class_weights is None:
        table = class_balance_weights(classes)
    else:
        table = np.asarray(class_weights, dtype=np.float64)
        if table.ndim != 1 or not np.all(np.isfinite(table)) or np.any(table < 0):
            raise ValueError("class_weights must be a 1-D array of finite numbers >= 0")
        if classes.size and classes.max() >= table.size:
            raise ValueError(f"classes holds label {classes.max()}, but class_weights has only "
                             f"{table.size} entries (labels 0..{table.size - 1})")
    return table[classes]


def _check_label_map(name: str, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be a 2-D H x W label map, got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} holds negative label {labels.min()}; labels must be >= 0")
    return labels
