"""Why stride-2 transposed convolutions leave checkerboards, counted exactly.

Seed 002: transposed convolutions "cause artefacts due to overlap"; U-Net's upsampling
followed by a convolution avoids them (Odena, Dumoulin and Olah, "Deconvolution and
Checkerboard Artifacts", Distill 2016). A transposed convolution with kernel ``k``, stride
``s`` and padding ``p`` adds input pixel ``i`` into outputs ``o = i*s - p + t`` for the taps
``t = 0 .. k-1``; so output ``o`` receives one tap from every input ``i`` with
``0 <= o + p - i*s <= k-1``, that is ``floor((o+p)/s) - floor((o+p-k)/s)`` of them away from
the border (fewer near it, where the inputs run out). Along one axis that count is
``ceil(k/s)`` or ``floor(k/s)`` by ``o mod s``: uneven whenever ``s`` does not divide ``k``.
In 2-D the count is the product of the two axes' counts: for ``k=3, s=2`` the interior
alternates 1, 2 per axis, so 1, 2 and 4 taps in a 2x2 period (the checkerboard); for
``k=4, s=2`` it is 2 everywhere per axis, 4 in 2-D (even overlap). Resizing by ``s``
(nearest or bilinear: either gives each output pixel one value) then a ``k x k``
convolution reaches every interior output with ``k^2`` taps: uniform.

These are counts of kernel taps, not learned values: a trained network can learn weights
that cancel an uneven overlap, but has to spend capacity doing so, and at initialization
and early in training the pattern shows (:mod:`cnnzoo.engine.checkerboard` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TapStats", "checkerboard_strength", "interior", "resize_conv_tap_counts", "tap_stats",
           "transposed_interior", "transposed_tap_counts", "upsampling_padding"]


def _check_positive(**values: int) -> None:
    bad = {name: value for name, value in values.items() if value < 1}
    if bad:
        raise ValueError("must be at least 1: " + ", ".join(f"{name}={value}" for name, value in bad.items()))


def _transposed_counts_1d(size_in: int, kernel: int, stride: int, padding: int, output_padding: int) -> np.ndarray:
    """Closed form: inputs ``i`` in ``[0, size_in)`` with ``o + p - k < i*s <= o + p``."""
    size_out = (size_in - 1) * stride - 2 * padding + kernel + output_padding
    shifted = np.arange(size_out) + padding
    last = np.minimum(shifted // stride, size_in - 1)  # the largest i with i*s <= o + p
    first = np.maximum((shifted - kernel) // stride + 1, 0)  # the smallest i with i*s > o + p - k
    return np.maximum(last - first + 1, 0).astype(np.int64)


def transposed_tap_counts(size_in: int, kernel: int, stride: int = 2, padding: int = 0,
                          output_padding: int = 0) -> np.ndarray:
    """How many kernel taps reach each output pixel of a ``kernel x kernel`` transposed
    convolution (``stride``, ``padding``, ``output_padding`` as in ``nn.ConvTranspose2d``)
    on a ``size_in x size_in`` input."""
    _check_positive(size_in=size_in, kernel=kernel, stride=stride)
    if padding < 0 or not 0 <= output_padding < stride:
        raise ValueError(f"padding must be >= 0 and output_padding in [0, stride); got padding={padding}, "
                         f"output_padding={output_padding}, stride={stride}")
    if (size_in - 1) * stride - 2 * padding + kernel + output_padding < 1:
        raise ValueError(f"padding {padding} leaves no output for kernel {kernel} on a {size_in}-pixel input")
    line = _transposed_counts_1d(size_in, kernel, stride, padding, output_padding)
    return np.outer(line, line)


def upsampling_padding(kernel: int, stride: int) -> tuple[int, int]:
    """``(padding, output_padding)`` that make a transposed convolution map ``n`` pixels to
    exactly ``stride * n``: ``(n-1)s - 2p + k + op = sn`` needs ``op = s + 2p - k`` in
    ``[0, s)``, so ``p = ceil((k - s) / 2)`` (3, 2 -> (1, 1); 4, 2 -> (1, 0))."""
    _check_positive(kernel=kernel, stride=stride)
    padding = max(0, -(-(kernel - stride) // 2))
    output_padding = stride + 2 * padding - kernel
    if not 0 <= output_padding < stride:
        raise ValueError(f"no padding makes kernel {kernel}, stride {stride} upsample by exactly {stride}")
    return padding, output_padding


def transposed_interior(size_in: int, kernel: int, stride: int = 2, padding: int = 0,
                        output_padding: int = 0) -> np.ndarray:
    """The tap counts without the border where the inputs run out: output ``o`` surely has
    all its inputs when ``o + p - (k-1) >= 0`` (so ``k-1-p`` pixels cut at the start) and
    ``o + p <= (n-1)s`` (``k-1-p+op`` cut at the end)."""
    counts = transposed_tap_counts(size_in, kernel, stride, padding, output_padding)
    start = max(0, kernel - 1 - padding)
    return interior(counts, start, max(0, kernel - 1 - padding + output_padding))


def resize_conv_tap_counts(size_in: int, kernel: int = 3, factor: int = 2) -> np.ndarray:
    """How many kernel taps reach each output pixel of a resize by ``factor`` (nearest or
    bilinear) followed by a ``kernel x kernel`` convolution ('same' padding, zeros at the
    border): ``kernel^2`` wherever the window lies inside the resized map."""
    _check_positive(size_in=size_in, kernel=kernel, factor=factor)
    size = size_in * factor
    start = np.arange(size) - kernel // 2  # the window covers start .. start + k - 1
    line = np.minimum(start + kernel, size) - np.maximum(start, 0)
    return np.outer(line, line).astype(np.int64)


def interior(counts: np.ndarray, margin: int, end_margin: int | None = None) -> np.ndarray:
    """``counts`` without ``margin`` rows and columns at the start and ``end_margin``
    (default ``margin``) at the end: where zero padding, not overlap, sets the count."""
    end = margin if end_margin is None else end_margin
    rows, cols = counts.shape
    if margin < 0 or end < 0 or margin + end >= min(rows, cols):
        raise ValueError(f"margins {margin} and {end} leave nothing of a {rows}x{cols} map")
    return counts[margin:rows - end, margin:cols - end]


def checkerboard_strength(counts: np.ndarray) -> float:
    """``(max - min) / mean`` of a tap-count map: 0 for even overlap."""
    values = counts.astype(np.float64)
    return float((values.max() - values.min()) / values.mean())


def _period(counts: np.ndarray, axis: int) -> int:
    """The smallest shift along ``axis`` that maps ``counts`` onto itself where both overlap."""
    length = counts.shape[axis]
    for shift in range(1, length):
        if np.array_equal(np.take(counts, range(shift, length), axis), np.take(counts, range(length - shift), axis)):
            return shift
    return length


@dataclass(frozen=True)
class TapStats:
    minimum: int
    maximum: int
    period: tuple[int, int]  # rows, columns
    strength: float  # (max - min) / mean over whole periods


def tap_stats(counts: np.ndarray) -> TapStats:
    """Min, max, period and strength of an interior tap-count map; the mean behind the
    strength is taken over whole periods (a part period would weigh one phase more)."""
    period = (_period(counts, 0), _period(counts, 1))
    rows, cols = (size - size % step for size, step in zip(counts.shape, period))
    whole = counts[:rows, :cols]
    return TapStats(int(counts.min()), int(counts.max()), period, checkerboard_strength(whole))
