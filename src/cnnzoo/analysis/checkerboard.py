"""Why stride-2 transposed convolutions leave checkerboards, counted exactly.

Seed 002: transposed convolutions "cause artefacts due to overlap"; U-Net's upsampling
followed by a convolution avoids them (Odena, Dumoulin and Olah, "Deconvolution and
Checkerboard Artifacts", Distill 2016). A transposed convolution with kernel ``k`` and
stride ``s`` adds input pixel ``i`` into outputs ``i*s - p + t`` for the taps
``t = 0 .. k-1``; so output ``o`` receives as many taps as there are ``(i, t)`` with
``i*s + t = o + p``. Along one axis that count is ``ceil(k/s)`` or ``floor(k/s)``
depending on ``o mod s``: uneven whenever ``s`` does not divide ``k``. In 2-D the count is
the product of the two axes' counts: for ``k=3, s=2`` the interior alternates 1, 2 per axis,
so 1, 2 and 4 taps in a 2x2 period (the checkerboard); for ``k=4, s=2`` it is 2 everywhere
per axis, 4 in 2-D (even overlap). Resizing by ``s`` then a ``k x k`` convolution reaches
every interior output with ``k^2`` taps: uniform.

These are counts of kernel taps, not learned values: a trained network can learn weights
that cancel an uneven overlap, but has to spend capacity doing so, and at initialization
and early in training the pattern shows (:mod:`cnnzoo.engine.checkerboard` measures it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["checkerboard_strength", "interior", "resize_conv_tap_counts", "transposed_tap_counts"]


def _transposed_counts_1d(size_in: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    size_out = (size_in - 1) * stride - 2 * padding + kernel
    counts = np.zeros(size_out, dtype=np.int64)
    for i in range(size_in):
        for tap in range(kernel):
            out = i * stride - padding + tap
            if 0 <= out < size_out:
                counts[out] += 1
    return counts


def transposed_tap_counts(size_in: int, kernel: int, stride: int = 2, padding: int = 0) -> np.ndarray:
    """How many kernel taps reach each output pixel of a ``kernel x kernel`` transposed
    convolution with ``stride`` and ``padding`` on a ``size_in x size_in`` input."""
    if kernel < 1 or stride < 1 or size_in < 1 or padding < 0:
        raise ValueError(f"kernel, stride and size must be positive and padding >= 0; got k={kernel}, s={stride}, "
                         f"n={size_in}, p={padding}")
    line = _transposed_counts_1d(size_in, kernel, stride, padding)
    return np.outer(line, line)


def resize_conv_tap_counts(size_in: int, kernel: int = 3, factor: int = 2) -> np.ndarray:
    """How many kernel taps reach each output pixel of a nearest-neighbour resize by
    ``factor`` followed by a ``kernel x kernel`` convolution ('same' padding, zeros at the
    border): ``kernel^2`` wherever the window lies inside the resized map."""
    if kernel < 1 or factor < 1 or size_in < 1:
        raise ValueError(f"kernel, factor and size must be positive; got k={kernel}, factor={factor}, n={size_in}")
    size = size_in * factor
    half = kernel // 2
    line = np.array([sum(0 <= o - half + t < size for t in range(kernel)) for o in range(size)], dtype=np.int64)
    return np.outer(line, line)


def interior(counts: np.ndarray, margin: int) -> np.ndarray:
    """``counts`` without a ``margin``-pixel border (where zero padding, not overlap, sets the count)."""
    return counts[margin:counts.shape[0] - margin, margin:counts.shape[1] - margin]


def checkerboard_strength(counts: np.ndarray) -> float:
    """``(max - min) / mean`` of a tap-count map: 0 for even overlap."""
    values = counts.astype(np.float64)
    return float((values.max() - values.min()) / values.mean())
