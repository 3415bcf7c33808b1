"""The multi-scale context module (Yu and Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016, section 3 and Table 1).

Seven 3x3 convolutions with dilations 1, 1, 2, 4, 8, 16, 1, each followed by a ReLU
("pointwise truncation max(., 0)"), then a 1x1 convolution: C feature maps in, C out, at the
same resolution (padding = dilation). Dilations that double let the receptive field grow
exponentially with depth - 3, 5, 9, 17, 33, 65, 67 - with nine weights per channel pair in
every layer and no pooling: a 3x3 kernel with dilation r spans ``2r + 1`` pixels, so layer i
adds ``2 r_i`` to the field.

Table 1's two widths: "basic" keeps C channels in every layer; "large" widens them to
2C, 2C, 4C, 8C, 16C, 32C, 32C and maps back to C with the final 1x1.

Initialization (section 3): "random initialization schemes were not effective for the
context module"; each layer starts as the identity instead (their eq. 4),
``k^b(t, a) = 1[t = 0] 1[a = b]``, so the module initially passes a non-negative input
through unchanged. Where the widths change (eq. 5, "large"), input channel ``a`` of ``c_i``
and output channel ``b`` of ``c_{i+1}`` are linked with weight ``C / c_{i+1}`` when
``floor(a C / c_i) = floor(b C / c_{i+1})`` (each of the C input maps is copied to
``c_{i+1} / C`` outputs and scaled down to match), every other weight being a small
``N(0, sigma^2)``, ``sigma << C / c_{i+1}``, which breaks the symmetry between the copies.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct

__all__ = ["CONTEXT_DILATIONS", "CONTEXT_WIDTHS", "ContextModule", "identity_init_"]

# Table 1: dilation of the seven 3x3 layers (the eighth layer is a 1x1 convolution).
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
# Table 1: output channels of layers 1-8, in units of the module's C.
CONTEXT_WIDTHS = {
    "basic": (1, 1, 1, 1, 1, 1, 1, 1),
    "large": (2, 2, 4, 8, 16, 32, 32, 1),
}
ContextVariant = Literal["basic", "large"]


def identity_init_(conv: nn.Conv2d, channels: int, noise: float = 0.0) -> None:
    """Yu and Koltun's identity initialization of ``conv`` (eq. 4, and eq. 5 where its input
    and output widths differ) for a module of ``channels`` (their C): the centre tap links
    input ``a`` to output ``b`` with weight ``C / c_out`` when ``floor(a C / c_in) ==
    floor(b C / c_out)``; other weights are ``N(0, (noise * C / c_out)^2)``; bias zero."""
    c_out, c_in, k_h, k_w = conv.weight.shape
    scale = channels / c_out
    with torch.no_grad():
        if noise > 0:
            conv.weight.normal_(0.0, noise * scale)
        else:
            conv.weight.zero_()
        group_in = torch.arange(c_in, device=conv.weight.device) * channels // c_in
        group_out = torch.arange(c_out, device=conv.weight.device) * channels // c_out
        linked = group_out[:, None] == group_in[None, :]
        centre = conv.weight[:, :, k_h // 2, k_w // 2]
        centre[linked] = scale
        if conv.bias is not None:
            conv.bias.zero_()


class ContextModule(nn.Sequential):
    """The context module of Yu and Koltun (2016), Table 1.

    Children ``layer1`` ... ``layer7`` (:class:`~cnnzoo.layers.conv.ConvNormAct` without
    normalization: a dilated 3x3 conv and a ReLU, named ``conv`` / ``act``) and ``layer8``
    (the final 1x1 conv, no truncation). Input and output: ``N x C x H x W``, any H, W.

    Args:
        channels: C, the channels in and out (the number of classes, in the paper, which
            plugs the module onto a front-end's class-score maps).
        variant: "basic" (C channels throughout: ``7 (9 C^2 + C) + C^2 + C = 64 C^2 + 8 C``
            parameters, ``64 C^2`` multiply-adds per pixel) or "large" (up to 32C channels).
        init_noise: sigma of the "large" variant's symmetry-breaking noise, relative to
            ``C / c_{i+1}`` (0 makes the module an exact identity on non-negative inputs;
            the paper only asks for ``sigma << C / c_{i+1}``). The "basic" variant has no
            noise: eq. 4 is the identity.
    """

    def __init__(self, channels: int, variant: ContextVariant = "basic", init_noise: float = 1e-3) -> None:
        if variant not in CONTEXT_WIDTHS:
            raise ValueError(f"context module variant must be one of {', '.join(CONTEXT_WIDTHS)}; got {variant!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if init_noise < 0:
            raise ValueError(f"init_noise must be non-negative, got {init_noise}")
        widths = [channels * units for units in CONTEXT_WIDTHS[variant]]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = channels
        for index, (dilation, out_width) in enumerate(zip(CONTEXT_DILATIONS, widths), start=1):
            # padding = dilation keeps the resolution ("without losing resolution").
            layers[f"layer{index}"] = ConvNormAct(
                width, out_width, 3, dilation=dilation, norm_layer=None, act_layer=nn.ReLU
            )
            width = out_width
        layers["layer8"] = nn.Conv2d(width, channels, kernel_size=1)
        super().__init__(layers)
        self.channels = channels
        self.variant = variant
        noise = init_noise if variant == "large" else 0.0
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                identity_init_(module, channels, noise)
