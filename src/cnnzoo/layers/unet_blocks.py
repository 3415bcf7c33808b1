"""Building blocks of encoder-decoder segmenters (U-Net, SegNet).

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, section 2: every level of the network is "the repeated
application of two 3x3 convolutions (unpadded convolutions), each followed by a rectified
linear unit (ReLU)" (:class:`DoubleConv`); every step of the expansive path is "an
upsampling of the feature map followed by a 2x2 convolution ("up-convolution") that halves
the number of feature channels, a concatenation with the correspondingly cropped feature
map from the contracting path, and two 3x3 convolutions" (:class:`UNetUpBlock`).

Also here: the paper's initialization (a Gaussian with standard deviation ``sqrt(2 / N)``,
N the number of inputs of one unit, :func:`fan_in_normal_init`) and mirror padding of any
amount (:func:`mirror_pad`, the paper's "missing context is extrapolated by mirroring the
input image").
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.conv import ConvNormAct
from cnnzoo.layers.upsample import UP_MODES, UpsampleConv, up_block

__all__ = [
    "DoubleConv",
    "UNetUpBlock",
    "fan_in_normal_init",
    "incoming_connections",
    "match_size",
    "mirror_indices",
    "mirror_pad",
    "upsample_by",
]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (batch norm and) ReLU: one U-Net level.

    ``padding=False`` is the paper's unpadded ("valid") convolution: each loses a one-pixel
    border, so the block maps ``H x W`` to ``(H - 4) x (W - 4)``; ``padding=True`` keeps the
    size. Children: ``conv1`` and ``conv2`` (each a :class:`~cnnzoo.layers.conv.ConvNormAct`,
    with a conv bias only when there is no batch norm).
    """

    def __init__(self, in_channels: int, out_channels: int, padding: bool = False, batch_norm: bool = False) -> None:
        norm_layer = nn.BatchNorm2d if batch_norm else None
        pad = 1 if padding else 0
        super().__init__(OrderedDict(
            conv1=ConvNormAct(in_channels, out_channels, 3, padding=pad, norm_layer=norm_layer),
            conv2=ConvNormAct(out_channels, out_channels, 3, padding=pad, norm_layer=norm_layer),
        ))
        self.in_channels = in_channels
        self.out_channels = out_channels


def upsample_by(in_channels: int, out_channels: int, mode: str = "transposed", factor: int = 2) -> nn.Module:
    """Upsample by an integer ``factor`` while mapping ``in_channels`` to ``out_channels``.

    ``factor=2`` is :func:`cnnzoo.layers.upsample.up_block` (U-Net's 2x2 up-convolution, or
    fixed upsampling then a 2x2 conv); other factors (a backbone whose consecutive stages
    are 1 or 4 strides apart) use a ``factor x factor`` transposed conv of stride ``factor``
    (the copies of its kernel tile the output without overlapping) or
    :class:`~cnnzoo.layers.upsample.UpsampleConv` with ``scale=factor``.
    """
    if mode not in UP_MODES:
        raise ValueError(f"upsampling must be one of {', '.join(UP_MODES)}; got {mode!r}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"upsampling factor must be a positive integer, got {factor!r}")
    if factor == 2:
        return up_block(in_channels, out_channels, mode)
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=factor, stride=factor)
    return UpsampleConv(in_channels, out_channels, mode=mode, scale=factor)


def match_size(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``x`` centre-cropped or symmetrically zero-padded to ``height x width``.

    An encoder with padded convolutions halves odd sizes by rounding down (or up), so its
    upsampled map can be a pixel or two off the skip map it is concatenated with.
    """
    in_height, in_width = x.shape[-2:]
    crop_height, crop_width = min(in_height, height), min(in_width, width)
    if (crop_height, crop_width) != (in_height, in_width):
        top, left = (in_height - crop_height) // 2, (in_width - crop_width) // 2
        x = x[..., top : top + crop_height, left : left + crop_width]
    if (crop_height, crop_width) != (height, width):
        extra_h, extra_w = height - crop_height, width - crop_width
        x = F.pad(x, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2))
    return x


class UNetUpBlock(nn.Module):
    """One step of U-Net's expansive path: upsample (by ``factor``, mapping ``in_channels``
    to ``out_channels``), concatenate the skip map, then :class:`DoubleConv`.

    ``forward(x, skip)``. With unpadded convs (``padding=False``) the skip map is larger
    than the upsampled one and is centre-cropped to it (the paper's "copy and crop"); with
    padded convs the upsampled map is fitted to the skip map (:func:`match_size`; a no-op
    whenever the sizes are multiples of the strides). The skip map comes first in the
    concatenation. Children: ``up`` and ``conv``.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        padding: bool = False,
        batch_norm: bool = False,
        upsampling: str = "transposed",
        factor: int = 2,
    ) -> None:
        super().__init__()
        self.up = upsample_by(in_channels, out_channels, upsampling, factor)
        self.conv = DoubleConv(skip_channels + out_channels, out_channels, padding, batch_norm)
        self.padding = padding

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if self.padding:
            x = match_size(x, *skip.shape[-2:])
        else:
            skip = _center_crop(skip, *x.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # The same window as cnnzoo.models._segmenter.center_crop (layers must not import models).
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def incoming_connections(layer: nn.Module) -> int:
    """N, the number of inputs of one output unit of a (transposed) convolution.

    A convolution: ``k_h * k_w * C_in / groups`` (the paper's example: "for a 3x3
    convolution and 64 feature channels in the previous layer N = 9 * 64 = 576"). A
    transposed convolution of stride s: ``ceil(k_h / s_h) * ceil(k_w / s_w) * C_in / groups``,
    the kernel taps that land on one output pixel (for U-Net's 2x2 stride-2 up-convolution
    exactly one per input channel: N = C_in; for stride 1 the same as a convolution).
    """
    if isinstance(layer, nn.Conv2d):
        kernel_h, kernel_w = layer.kernel_size
        return kernel_h * kernel_w * layer.in_channels // layer.groups
    if isinstance(layer, nn.ConvTranspose2d):
        (kernel_h, kernel_w), (stride_h, stride_w) = layer.kernel_size, layer.stride
        taps = -(-kernel_h // stride_h) * -(-kernel_w // stride_w)
        return taps * layer.in_channels // layer.groups
    raise TypeError(f"expected a Conv2d or ConvTranspose2d, got {type(layer).__name__}")


def fan_in_normal_init(model: nn.Module) -> None:
    """The U-Net paper's initialization (section 3), also He et al. 2015's: every
    (transposed) conv weight drawn from a Gaussian with standard deviation ``sqrt(2 / N)``,
    N = :func:`incoming_connections`; zero biases; batch norm starts as the identity."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / incoming_connections(module)))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def mirror_indices(size: int, before: int, after: int) -> list[int]:
    """Indices into ``range(size)`` of a row mirrored at both ends (the edge pixel is not
    repeated: ``[a b c]`` padded by 2 reads ``[c b a b c b a]``), for any amount of padding:
    the mirrored row repeats with period ``2 * (size - 1)`` (a single pixel just repeats)."""
    if size < 1 or before < 0 or after < 0:
        raise ValueError(f"cannot mirror-pad a row of {size} pixels by ({before}, {after})")
    period = max(2 * (size - 1), 1)
    indices = []
    for position in range(-before, size + after):
        folded = position % period
        indices.append(folded if folded < size else period - folded)
    return indices


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror ``x``'s last two dimensions outward by the given amounts (any amounts; unlike
    ``F.pad(mode="reflect")``, which needs each one smaller than the side)."""
    height, width = x.shape[-2:]
    if top or bottom:
        rows = torch.tensor(mirror_indices(height, top, bottom), device=x.device)
        x = x.index_select(-2, rows)
    if left or right:
        columns = torch.tensor(mirror_indices(width, left, right), device=x.device)
        x = x.index_select(-1, columns)
    return x
