"""Where the maps of a dense predictor over a classifier sit, and how to line them up.

* :class:`Grid`: unit ``y`` of a map is centred on input pixel ``start + jump * y``; followed
  through convolutions, poolings and transposed convolutions it gives the crop offsets of the
  reference FCNs (Caffe's ``coord_map``, for one axis) - :func:`crop_at` takes them;
* :func:`stage_taps` and :func:`check_stage_sizes`: which ``feature_info`` stages a decoder
  reads, and that they are exactly ``H/s x W/s`` (padded backbones), checked on the meta device;
* :func:`pad_to_multiple`: the zero padding (bottom, right) that makes every stage whole.

Used by :mod:`cnnzoo.models.fcn` (FCN-32s / 16s / 8s) and :mod:`cnnzoo.models.fcn_deconv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnzoo.models._base import Classifier
from cnnzoo.utils.meta import meta_copy

__all__ = ["COARSEST", "Grid", "check_stage_sizes", "crop_at", "pad_to_multiple", "stage_taps"]

COARSEST = 32  # stride of the coarsest map an FCN decoder starts from


@dataclass(frozen=True)
class Grid:
    """Where the units of a map sit on the input: unit ``y`` is centred on input pixel
    ``start + jump * y`` (the coordinate maps of Caffe's ``crop``, written for one axis)."""

    jump: float = 1.0
    start: float = 0.0

    def conv(self, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Grid:
        """After a convolution or pooling: output ``y`` reads inputs ``s y - p ... s y - p + k_eff - 1``."""
        span = (kernel - 1) * dilation
        return Grid(self.jump * stride, self.start + (span / 2 - padding) * self.jump)

    def transposed(self, kernel: int, stride: int, padding: int) -> Grid:
        """After a transposed convolution: input ``i`` is spread around output ``s i + (k - 1) / 2 - p``."""
        return Grid(self.jump / stride, self.start + (padding - (kernel - 1) / 2) * self.jump / stride)

    def offset_of(self, reference: Grid) -> int:
        """The index in this map of the unit centred where ``reference``'s unit 0 is: the
        crop offset that aligns this map to ``reference``."""
        offset = (reference.start - self.start) / self.jump
        if self.jump != reference.jump or offset < 0 or offset != int(offset):
            raise ValueError(f"a map on {self} cannot be cropped to one on {reference}")
        return int(offset)


def crop_at(x: torch.Tensor, offset: int, height: int, width: int, what: str) -> torch.Tensor:
    """``x[..., offset : offset + height, offset : offset + width]``, or a ``ValueError``
    naming ``what`` when ``x`` is too small to give it."""
    if x.shape[-2] < offset + height or x.shape[-1] < offset + width:
        raise ValueError(
            f"FCN: the {what} map is {x.shape[-2]}x{x.shape[-1]}, too small for a {height}x{width} "
            f"crop at offset {offset}"
        )
    return x[..., offset : offset + height, offset : offset + width]


def stage_taps(classifier: Classifier, strides: list[int], what: str) -> dict[int, int]:
    """The index in ``classifier.feature_info`` of the (last) stage at each of ``strides``,
    or a ``ValueError`` naming the strides it has; ``what`` names the model asking."""
    info = {stage.stride: index for index, stage in enumerate(classifier.feature_info)}
    missing = sorted(s for s in strides if s not in info)
    if missing:
        raise ValueError(
            f"{what} needs backbone stages at strides {', '.join(map(str, sorted(strides)))}; "
            f"{type(classifier).__name__} has stages at strides {', '.join(map(str, sorted(info)))} "
            f"(none at {', '.join(map(str, missing))})"
        )
    return {s: info[s] for s in strides}


def check_stage_sizes(body: Classifier, taps: dict[int, int], in_chans: int, what: str) -> None:
    """Check on a meta copy (no computation) that each tapped stage of ``body`` is exactly
    ``H/s x W/s`` for two inputs that are multiples of 32: what a decoder that upsamples by
    2s and adds the maps (or crops nothing) assumes. ``ValueError`` otherwise."""
    twin = meta_copy(body).eval()
    first = max(COARSEST, -(-body.min_input_size // COARSEST) * COARSEST)
    for size in (first, first + COARSEST):
        with torch.no_grad():
            maps = twin.forward_features(torch.zeros(1, in_chans, size, size, device="meta"))
        for stride, index in taps.items():
            got = tuple(maps[index].shape[-2:])
            if got != (size // stride, size // stride):
                raise ValueError(
                    f"{what} needs a backbone whose stride-{stride} map is exactly {size // stride}x{size // stride} "
                    f"for a {size}x{size} input (padded convolutions); {type(body).__name__} gives "
                    f"{got[0]}x{got[1]} (unpadded convolutions), which {what}'s decoder cannot align"
                )


def pad_to_multiple(x: torch.Tensor, multiple: int, least: int = 1) -> torch.Tensor:
    """Zero-pad the bottom and right of ``x`` to a multiple of ``multiple`` (and at least ``least``)."""
    height, width = x.shape[-2:]
    target_h, target_w = (math.ceil(max(least, n) / multiple) * multiple for n in (height, width))
    return F.pad(x, (0, target_w - width, 0, target_h - height))
