"""Building blocks of encoder-decoder segmenters (U-Net, SegNet).

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, section 2: every level of the network is "the repeated
application of two 3x3 convolutions (unpadded convolutions), each followed by a rectified
linear unit (ReLU)" (:class:`DoubleConv`); every step of the expansive path is "an
upsampling of the feature map followed by a 2x2 convolution ("up-convolution") that halves
the number of feature channels, a concatenation with the correspondingly cropped feature
map from the contracting path, and two 3x3 convolutions" (:class:`UNetUpBlock`).

Also here: the paper's initialization (a Gaussian with standard deviation ``sqrt(2 / N)``,
N the number of inputs of one unit, :func:`fan_in_normal_init`). Cropping and mirror padding
live in :mod:`cnnzoo.layers.spatial`.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct
from cnnzoo.layers.spatial import center_crop, match_size
from cnnzoo.layers.upsample import UP_MODES, UpsampleConv, up_block

__all__ = [
    "DoubleConv",
    "UNetUpBlock",
    "fan_in_normal_init",
    "incoming_connections",
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
            skip = center_crop(skip, *x.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


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
