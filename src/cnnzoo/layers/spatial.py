"""Cropping and padding the spatial axes: the geometry encoder-decoder nets and tiled
prediction share.

* :func:`center_crop`: U-Net crops each encoder map to the decoder's size before
  concatenating them, and training crops the target to the output's size: "the cropping is
  necessary due to the loss of border pixels in every convolution" (Ronneberger et al.
  2015, section 2);
* :func:`mirror_positions` / :func:`mirror_pad`: "the missing context is extrapolated by
  mirroring the input image" (Fig. 2), for any amount of padding; overlap-tile prediction
  (:mod:`cnnzoo.engine.tiling`) reads its tiles through the same indices;
* :func:`match_size`: an upsampled map fitted to its skip map when padded convolutions
  rounded an odd size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

__all__ = ["center_crop", "match_size", "mirror_indices", "mirror_pad", "mirror_positions"]


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of the last two dimensions of ``x`` (when the
    margin is odd, the extra pixel is cut after the window)."""
    in_height, in_width = x.shape[-2:]
    if height > in_height or width > in_width:
        raise ValueError(f"cannot crop a {in_height}x{in_width} map to a larger {height}x{width}")
    top = (in_height - height) // 2
    left = (in_width - width) // 2
    return x[..., top : top + height, left : left + width]


def mirror_positions(positions: Iterable[int], length: int) -> list[int]:
    """Each position on an infinite row folded into ``0 .. length-1`` by mirroring at both
    ends without repeating the edge pixel (``... c b | a b c d | c b ...``); the mirrored row
    repeats with period ``2 * (length - 1)``, and a single pixel just repeats."""
    if length < 1:
        raise ValueError(f"cannot mirror a row of {length} pixels")
    period = max(2 * (length - 1), 1)
    folded = [position % period for position in positions]
    return [index if index < length else period - index for index in folded]


def mirror_indices(size: int, before: int, after: int) -> list[int]:
    """Indices into ``range(size)`` of a row mirror-padded by ``before`` and ``after`` pixels
    (``[a b c]`` padded by 2 reads ``[c b a b c b a]``), for any amount of padding."""
    if size < 1 or before < 0 or after < 0:
        raise ValueError(f"cannot mirror-pad a row of {size} pixels by ({before}, {after})")
    return mirror_positions(range(-before, size + after), size)


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror ``x``'s last two dimensions outward by the given amounts (any amounts; unlike
    ``F.pad(mode="reflect")``, which needs each one smaller than the side).

    The indices are Python lists made into constant tensors, so an exported graph holds a
    fixed gather rather than the arithmetic that made it."""
    height, width = x.shape[-2:]
    if top or bottom:
        rows = torch.tensor(mirror_indices(height, top, bottom), device=x.device)
        x = x.index_select(-2, rows)
    if left or right:
        columns = torch.tensor(mirror_indices(width, left, right), device=x.device)
        x = x.index_select(-1, columns)
    return x


def match_size(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``x`` centre-cropped or symmetrically zero-padded to ``height x width``.

    An encoder with padded convolutions halves odd sizes by rounding down (or up), so its
    upsampled map can be a pixel or two off the skip map it is concatenated with.
    """
    in_height, in_width = x.shape[-2:]
    crop_height, crop_width = min(in_height, height), min(in_width, width)
    if (crop_height, crop_width) != (in_height, in_width):
        x = center_crop(x, crop_height, crop_width)
    if (crop_height, crop_width) != (height, width):
        extra_h, extra_w = height - crop_height, width - crop_width
        x = F.pad(x, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2))
    return x
