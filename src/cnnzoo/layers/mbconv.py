"""The mobile inverted bottleneck (MBConv) and its helper squeeze-and-excitation; its residual
is dropped by :class:`~cnnzoo.layers.stochastic_depth.StochasticDepth`, which ResNets share.

MBConv (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018; with
squeeze-and-excitation as in Tan et al., "MnasNet", 2019, and Tan & Le, "EfficientNet", 2019)
turns the bottleneck of a ResNet inside out: a cheap 1x1 conv *expands* the C_in channels by
a ratio t, a k x k depthwise conv filters each of the t * C_in channels on its own, SE
re-weights them, and a 1x1 conv *projects* back down to C_out with no activation (a "linear
bottleneck": a ReLU/SiLU on the narrow output would destroy information). The residual joins
the two narrow ends when the shape allows it.

For an H x W input, output H' x W' (H' = H / stride), C_e = t * C_in and C_s squeeze channels,
the multiply-adds (MACs) are::

    expand     H  * W  * C_in * C_e          (absent when t = 1)
    depthwise  H' * W' * C_e  * k^2
    SE         C_e * C_s + C_s * C_e          (two 1x1 convs on the pooled 1 x 1 map)
    project    H' * W' * C_e  * C_out

and the weights ``C_in*C_e + k^2*C_e + (2*C_e*C_s + C_s + C_e) + C_e*C_out`` plus two per
BN channel (``2 * (C_e + C_e + C_out)``, the expand BN absent when t = 1).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.conv import ModuleFactory, depthwise_conv, pointwise_conv
from cnnzoo.layers.stochastic_depth import StochasticDepth

# StochasticDepth (cnnzoo.layers.stochastic_depth) stays importable from here.
__all__ = ["MBConv", "SqueezeExcitation", "StochasticDepth", "make_divisible"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10% below.

    Width multipliers give fractional channel counts (32 * 1.1 = 35.2); hardware likes
    multiples of 8, so MobileNet and EfficientNet round to the nearest one (35.2 -> 32) and
    add ``divisor`` when that lost more than 10% of the channels (19.2 -> 16 is 17% short, so
    24). ``min_value`` (default ``divisor``) is the smallest count returned.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: a per-channel gate in (0, 1) computed from the whole image.

    Hu et al., "Squeeze-and-Excitation Networks", 2018. *Squeeze*: global average pooling
    gives one number per channel; *excite*: a 1x1 conv down to ``squeeze_channels``, SiLU, a
    1x1 conv back up and a sigmoid give the gate s; the output is ``x * s`` (broadcast over
    H x W). In EfficientNet ``squeeze_channels = max(1, C_block_in / 4)`` of the MBConv's
    *input* channels, not of the expanded ones.

    Cost: weights ``2 * C * C_s + C_s + C`` (with biases); MACs ``2 * C * C_s`` for the two
    convs plus ``H * W * C`` multiplications for the gating itself.
    Children (as in torchvision): ``avgpool``, ``fc1``, ``activation``, ``fc2``, ``gate``.
    """

    def __init__(self, channels: int, squeeze_channels: int, act_layer: ModuleFactory = nn.SiLU) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, kernel_size=1)
        self.activation = act_layer()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, kernel_size=1)
        self.gate = nn.Sigmoid()

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The gate s, shape N x C x 1 x 1, every value in (0, 1)."""
        return self.gate(self.fc2(self.activation(self.fc1(self.avgpool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel_weights(x)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, k x k depthwise, SE, 1x1 linear projection.

    Sandler et al., "MobileNetV2", 2018 (the inverted residual with linear bottleneck) and
    Tan & Le, "EfficientNet", 2019 (MBConv1 / MBConv6 with SE and SiLU, their Table 1).

    The residual ``out = x + drop(block(x))`` is used only when ``stride == 1`` and
    ``in_channels == out_channels``: otherwise the shapes differ and there is nothing to add.
    See the module docstring for the MAC and parameter formulas.

    Args:
        in_channels / out_channels: C_in and C_out.
        expand_ratio: t; the hidden width is ``make_divisible(t * C_in)``. With t = 1 there
            is no expansion conv and the hidden width is C_in (EfficientNet's MBConv1).
        kernel_size: k of the depthwise conv (3 or 5 in EfficientNet).
        stride: of the depthwise conv.
        se_ratio: squeeze width as a fraction of ``in_channels`` (0 disables SE).
        drop_path: stochastic-depth probability of the residual branch.
        norm_layer / act_layer: factories for the BN and the activation (SiLU).

    Children: ``expand`` (when t > 1), ``depthwise``, ``se`` (when se_ratio > 0), ``project``
    (each conv a :class:`ConvNormAct`), and ``stochastic_depth``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: float = 6,
        kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.SiLU,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MBConv stride must be 1 or 2, got {stride}")
        # torchvision rounds C_in * 1 too, which adds an expansion conv when C_in is not a
        # multiple of 8; EfficientNet's widths always are, so t = 1 can mean "none" here.
        hidden = in_channels if expand_ratio == 1 else make_divisible(in_channels * expand_ratio)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden
        self.stride = stride
        self.use_residual = stride == 1 and in_channels == out_channels

        self.expand = (
            pointwise_conv(in_channels, hidden, norm_layer=norm_layer, act_layer=act_layer)
            if expand_ratio != 1 else None
        )
        self.depthwise = depthwise_conv(hidden, kernel_size, stride, norm_layer=norm_layer, act_layer=act_layer)
        self.se = SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio)), act_layer) if se_ratio > 0 else None
        # Linear bottleneck: no activation after the projection.
        self.project = pointwise_conv(hidden, out_channels, norm_layer=norm_layer, act_layer=None)
        self.stochastic_depth = StochasticDepth(drop_path)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch: expand, depthwise, SE, project."""
        if self.expand is not None:
            x = self.expand(x)
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        return self.project(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.use_residual:
            out = self.stochastic_depth(out) + x
        return out

    def macs(self, height: int, width: int) -> int:
        """Multiply-adds of the convolutions for an ``height x width`` input (module docstring)."""
        out_h, out_w = -(-height // self.stride), -(-width // self.stride)
        kernel_area = self.depthwise.conv.kernel_size[0] * self.depthwise.conv.kernel_size[1]
        total = out_h * out_w * self.hidden_channels * (kernel_area + self.out_channels)
        if self.expand is not None:
            total += height * width * self.in_channels * self.hidden_channels
        if self.se is not None:
            total += 2 * self.hidden_channels * self.se.fc1.out_channels
        return total
