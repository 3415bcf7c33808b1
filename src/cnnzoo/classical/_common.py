"""Helpers shared by the classical segmenters: image checks, label bookkeeping, pixel adjacency."""

from __future__ import annotations

import numpy as np

# Row/column steps to the neighbours of a pixel. Each pair is listed once (right, down and
# the two downward diagonals): adjacency is symmetric, so the other half adds nothing.
_FORWARD_STEPS = {
    4: ((0, 1), (1, 0)),
    8: ((0, 1), (1, 0), (1, 1), (1, -1)),
}


def check_connectivity(connectivity: int) -> int:
    """Return ``connectivity`` if it is 4 or 8, else raise ``ValueError``."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return int(connectivity)


def neighbour_steps(connectivity: int) -> tuple[tuple[int, int], ...]:
    """All (row, column) steps to the 4 or 8 neighbours of a pixel."""
    forward = _FORWARD_STEPS[check_connectivity(connectivity)]
    return forward + tuple((-dr, -dc) for dr, dc in forward)


def nominal_range(image: np.ndarray) -> float:
    """The span of values an image of this dtype is meant to use; default thresholds are fractions of it.

    255 for uint8, 65535 for uint16, 1 for booleans and for float images in [0, 1]; for
    other integer types, which have no conventional range, and for float images outside
    [0, 1] (a float TIFF holding 0-255 values, say), the image's own max - min (1 if flat).
    """
    image = np.asarray(image)
    dtype = image.dtype
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    low, high = float(np.min(image)), float(np.max(image))
    if dtype == bool or (np.issubdtype(dtype, np.floating) and 0.0 <= low and high <= 1.0):
        return 1.0
    return high - low if high > low else 1.0


def relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber a label map 0..R-1 in the raster order in which each label first appears."""
    flat = labels.ravel()
    values, first_index, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(values.size, dtype=np.int64)
    rank[np.argsort(first_index, kind="stable")] = np.arange(values.size)
    return rank[inverse].reshape(labels.shape)


def adjacent_label_pairs(labels: np.ndarray, connectivity: int = 4) -> np.ndarray:
    """The distinct pairs (a, b), a < b, of labels that touch somewhere in an HxW label map."""
    pairs = []
    height, width = labels.shape
    for dr, dc in _FORWARD_STEPS[check_connectivity(connectivity)]:
        # Overlap the map with itself shifted by (dr, dc): each pixel meets that neighbour.
        first_col, end_col = max(0, -dc), width - max(0, dc)
        here = labels[: height - dr, first_col:end_col]
        there = labels[dr:, first_col + dc : end_col + dc]
        differ = here != there
        pairs.append(np.stack([here[differ], there[differ]], axis=1))
    return unique_pairs(np.concatenate(pairs), int(labels.max()) + 1 if labels.size else 0)


def unique_pairs(pairs: np.ndarray, num_labels: int) -> np.ndarray:
    """The distinct unordered pairs among ``pairs`` ((E, 2) labels below ``num_labels``).

    Returned as (a, b) rows with a < b, in increasing order; pairs (a, a) are dropped.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    low, high = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    distinct = low != high
    # One integer key per pair makes the de-duplication a 1-D unique (far faster than axis=0).
    keys = np.unique(low[distinct] * num_labels + high[distinct])
    return np.stack([keys // num_labels, keys % num_labels], axis=1)
