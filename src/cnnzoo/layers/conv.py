"""Convolution building blocks: the conv-norm-activation triple and its named variants.

Every variant the lecture notes name is one configuration of :class:`ConvNormAct`
(or of :class:`ConvTransposeNormAct` for the transposed case):

=====================  =====================================================  ==========================================
block                  configuration                                          parameters (no bias)
=====================  =====================================================  ==========================================
standard               groups = 1                                             k_h * k_w * C_in * C_out
grouped                groups = g (C_in and C_out divisible by g)             k_h * k_w * C_in * C_out / g
depthwise              C_in = groups = C_out                                  k_h * k_w * C_in
pointwise (1x1)        kernel 1x1: a linear combination of input channels     C_in * C_out
dilated                dilation r: a k x k kernel sees (k-1)r+1 pixels        unchanged
factorized             1xN then Nx1                                           N * C_in * C_mid + N * C_mid * C_out
depthwise separable    k x k depthwise, then 1x1 pointwise                    k^2 * C_in + C_in * C_out
=====================  =====================================================  ==========================================

Multiply-accumulates (MACs) of a convolution: ``H_out * W_out * C_out * k_h * k_w * C_in / g``.
A depthwise-separable block costs ``1/C_out + 1/k^2`` of the standard one (Howard et al.,
"MobileNets", 2017, eq. 5).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from cnnzoo.utils.sizes import IntOrPair, pair

__all__ = [
    "ConvNormAct",
    "ConvTransposeNormAct",
    "DepthwiseSeparableConv",
    "FactorizedConv",
    "FixedUnpool",
    "LEGACY_ONNX_UNPOOL_MESSAGE",
    "MaxPoolWithIndices",
    "MaxUnpool",
    "ModuleFactory",
    "conv_norm_act",
    "conv_then_norm_act",
    "depthwise_conv",
    "dilated_conv",
    "grouped_conv",
    "make_activation",
    "pair",
    "pointwise_conv",
    "same_padding",
]

ModuleFactory = Callable[..., nn.Module]


def same_padding(kernel_size: IntOrPair, dilation: IntOrPair = 1) -> tuple[int, int]:
    """Padding that keeps the spatial size at stride 1 for an odd kernel: ``(k - 1) * r / 2``."""
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    return ((kh - 1) * dh // 2, (kw - 1) * dw // 2)


class ConvNormAct(nn.Sequential):
    """Convolution, then normalization, then activation: the triple every CNN repeats.

    Children are named ``conv``, ``bn`` and ``act`` (the ones left out are absent), so the
    state-dict keys read ``<name>.conv.weight`` and ``<name>.bn.running_mean`` as in
    torchvision's ``BasicConv2d`` (GoogLeNet, Inception v3).

    Args:
        in_channels / out_channels: C_in and C_out.
        kernel_size: k, or (k_h, k_w).
        stride, dilation, groups: as in :class:`torch.nn.Conv2d`.
        padding: ``None`` (default) keeps the size at stride 1 ("same" padding for odd
            kernels); an int or pair is used as is; ``0`` gives the paper-style "valid" conv.
        bias: defaults to ``True`` only when there is no normalization after the conv
            (a bias before batch norm is cancelled by its mean subtraction).
        norm_layer: a factory called with ``out_channels`` (``nn.BatchNorm2d`` by default,
            ``None`` for none).
        act_layer: a factory called with no arguments (``nn.ReLU`` by default, ``None``
            for none). ReLU-like activations are built in-place.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        padding: IntOrPair | None = None,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm_layer: ModuleFactory | None = nn.BatchNorm2d,
        act_layer: ModuleFactory | None = nn.ReLU,
    ) -> None:
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide both in_channels={in_channels} "
                f"and out_channels={out_channels}"
            )
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        if bias is None:
            bias = norm_layer is None
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias,
        )
        super().__init__(conv_then_norm_act(conv, out_channels, norm_layer, act_layer))
        self.in_channels = in_channels
        self.out_channels = out_channels


def conv_then_norm_act(
    conv: nn.Module, out_channels: int, norm_layer: ModuleFactory | None, act_layer: ModuleFactory | None
) -> OrderedDict[str, nn.Module]:
    """The children ``conv``, ``bn`` and ``act`` of a conv-norm-activation triple, leaving
    out the norm or the activation whose factory is ``None``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv=conv)
    if norm_layer is not None:
        layers["bn"] = norm_layer(out_channels)
    if act_layer is not None:
        layers["act"] = make_activation(act_layer)
    return layers


def make_activation(act_layer: ModuleFactory) -> nn.Module:
    """Build an activation, in-place where the activation supports it (saves memory)."""
    if act_layer in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.LeakyReLU):
        return act_layer(inplace=True)
    return act_layer()


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: IntOrPair = 3, **kwargs) -> ConvNormAct:
    """Standard convolution + BN + ReLU (alias of :class:`ConvNormAct`)."""
    return ConvNormAct(in_channels, out_channels, kernel_size, **kwargs)


def grouped_conv(in_channels: int, out_channels: int, kernel_size: IntOrPair = 3, groups: int = 2, **kwargs) -> ConvNormAct:
    """Grouped convolution: input and kernels are split into ``groups`` along the channels.

    Each group convolves ``C_in / g`` channels into ``C_out / g``, so parameters and MACs are
    ``1/g`` of the standard conv (AlexNet's two towers are ``g = 2``; ResNeXt's cardinality is g).
    """
    return ConvNormAct(in_channels, out_channels, kernel_size, groups=groups, **kwargs)


def depthwise_conv(channels: int, kernel_size: IntOrPair = 3, stride: IntOrPair = 1, **kwargs) -> ConvNormAct:
    """Depthwise convolution: ``C_in = groups = C_out``, one k x k filter per channel."""
    return ConvNormAct(channels, channels, kernel_size, stride=stride, groups=channels, **kwargs)


def pointwise_conv(in_channels: int, out_channels: int, **kwargs) -> ConvNormAct:
    """1x1 convolution: a learned linear combination of the input channels at each pixel.

    Used as a bottleneck (reduce channels before an expensive conv) and as the
    convolutional equivalent of a fully connected layer.
    """
    return ConvNormAct(in_channels, out_channels, 1, **kwargs)


def dilated_conv(in_channels: int, out_channels: int, kernel_size: IntOrPair = 3, dilation: int = 2, **kwargs) -> ConvNormAct:
    """Dilated (atrous) convolution: kernel taps ``dilation`` pixels apart.

    A k x k kernel with dilation r covers ``(k - 1) * r + 1`` pixels with k^2 weights, which
    widens the receptive field without pooling (Yu and Koltun, 2016).
    """
    return ConvNormAct(in_channels, out_channels, kernel_size, dilation=dilation, **kwargs)


class DepthwiseSeparableConv(nn.Sequential):
    """k x k depthwise conv then 1x1 pointwise conv, each followed by BN and an activation.

    Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications", 2017. Weights: ``k^2 * C_in + C_in * C_out`` against ``k^2 * C_in * C_out``
    for the standard conv, a reduction factor of ``1/C_out + 1/k^2``. With 6 input and 3
    output channels and 3x3 kernels: 72 weights against 162 (the CS-568 lecture example).
    Children: ``depthwise`` and ``pointwise`` (each a :class:`ConvNormAct`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 3,
        stride: IntOrPair = 1,
        norm_layer: ModuleFactory | None = nn.BatchNorm2d,
        act_layer: ModuleFactory | None = nn.ReLU,
    ) -> None:
        super().__init__(OrderedDict(
            depthwise=depthwise_conv(in_channels, kernel_size, stride, norm_layer=norm_layer, act_layer=act_layer),
            pointwise=pointwise_conv(in_channels, out_channels, norm_layer=norm_layer, act_layer=act_layer),
        ))
        self.in_channels = in_channels
        self.out_channels = out_channels


class FactorizedConv(nn.Sequential):
    """An N x N convolution factorized into 1 x N followed by N x 1.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016,
    section 3.2: for N = 7 each output sees the same 7x7 window with 7 + 7 = 14 weights per
    channel pair instead of 49. Children: ``conv_1xn`` and ``conv_nx1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 7,
        mid_channels: int | None = None,
        norm_layer: ModuleFactory | None = nn.BatchNorm2d,
        act_layer: ModuleFactory | None = nn.ReLU,
    ) -> None:
        mid_channels = out_channels if mid_channels is None else mid_channels
        super().__init__(OrderedDict(
            conv_1xn=ConvNormAct(in_channels, mid_channels, (1, n), norm_layer=norm_layer, act_layer=act_layer),
            conv_nx1=ConvNormAct(mid_channels, out_channels, (n, 1), norm_layer=norm_layer, act_layer=act_layer),
        ))
        self.in_channels = in_channels
        self.out_channels = out_channels


class ConvTransposeNormAct(nn.Sequential):
    """Transposed ("fractionally strided") convolution, then normalization and activation.

    It scatters a copy of the kernel, scaled by each input value, into a larger output
    (stride s moves the copies s pixels apart), reversing the spatial effect of a strided
    conv: output size ``(H - 1) * s - 2p + r(k - 1) + output_padding + 1``. A 2x2 kernel with
    stride 2 exactly doubles the size (U-Net's up-convolution). MACs:
    ``H_in * W_in * C_in * C_out * k_h * k_w / g``. Children: ``conv``, ``bn``, ``act``.
    Normalization and activation default to none, the common use in decoders.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair = 2,
        stride: IntOrPair = 2,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        dilation: IntOrPair = 1,
        bias: bool | None = None,
        norm_layer: ModuleFactory | None = None,
        act_layer: ModuleFactory | None = None,
    ) -> None:
        if bias is None:
            bias = norm_layer is None
        conv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            output_padding=output_padding, groups=groups, bias=bias, dilation=dilation,
        )
        super().__init__(conv_then_norm_act(conv, out_channels, norm_layer, act_layer))
        self.in_channels = in_channels
        self.out_channels = out_channels


class MaxPoolWithIndices(nn.MaxPool2d):
    """Max-pooling that also returns where each maximum came from: ``(pooled, indices)``.

    The indices are what :class:`MaxUnpool` needs to put each value back in place
    (SegNet's decoder; the "unpooling" of the CS-568 notes).
    """

    def __init__(self, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None, padding: IntOrPair = 0, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode, return_indices=True)


LEGACY_ONNX_UNPOOL_MESSAGE = (
    "max-unpooling cannot be exported by the TorchScript-based ONNX exporter (torch.onnx.export(..., "
    "dynamo=False)): it has no ONNX conversion for max-unpooling (aten::max_unpool2d) and "
    "F.max_unpool2d fails while being traced; export with the dynamo exporter instead "
    "(torch.onnx.export(..., dynamo=True); `cnnzoo export --exporter dynamo`), which maps it to ONNX MaxUnpool"
)


class MaxUnpool(nn.MaxUnpool2d):
    """Reverse of :class:`MaxPoolWithIndices`: each value goes back to the position of its
    maximum, every other position is zero (a sparse map a following conv fills in).

    ``forward(x, indices, output_size=None)``; pass the pre-pooling size when it was odd.
    Under ``torch.jit.trace`` it calls the ATen operator with the size as it is (
    ``F.max_unpool2d`` compares traced sizes there, a TypeError with torch 2.13); the
    TorchScript-based ONNX exporter, which has no conversion for it, gets a ``ValueError``
    naming the dynamo exporter instead of that crash.
    """

    def __init__(self, kernel_size: IntOrPair = 2, stride: IntOrPair | None = None, padding: IntOrPair = 0) -> None:
        super().__init__(kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size: list[int] | tuple[int, ...] | None = None) -> torch.Tensor:  # type: ignore[override]
        if torch.jit.is_tracing():
            if torch.onnx.is_in_onnx_export():
                raise ValueError(LEGACY_ONNX_UNPOOL_MESSAGE)
            size = output_size[-2:] if output_size is not None else self._default_size(x)
            return torch.ops.aten.max_unpool2d(x, indices, [int(size[0]), int(size[1])])
        return super().forward(x, indices, output_size=output_size)

    def _default_size(self, x: torch.Tensor) -> list[int]:
        # What F.max_unpool2d gives without output_size: (n - 1) * stride - 2 * padding + kernel.
        kernel, stride, padding = (pair(value) for value in (self.kernel_size, self.stride, self.padding))
        return [(int(n) - 1) * s - 2 * p + k for n, k, s, p in zip(x.shape[-2:], kernel, stride, padding)]


class FixedUnpool(nn.Module):
    """Unpooling without indices, a "bed of nails": each value at the top-left corner of its
    ``stride x stride`` cell, zeros elsewhere (rows and columns 0, s, 2s, ...).

    ``forward(x, indices=None, output_size=None)`` takes :class:`MaxUnpool`'s arguments so
    either can fill a decoder's place; ``indices`` are not used. A decoder built on it needs
    nothing from an encoder but the code. No parameters.
    """

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None, output_size: list[int] | tuple[int, ...] | None = None) -> torch.Tensor:
        s = self.stride
        size = output_size[-2:] if output_size is not None else (x.shape[-2] * s, x.shape[-1] * s)
        out = x.new_zeros(*x.shape[:-2], int(size[0]), int(size[1]))
        out[..., ::s, ::s][..., : x.shape[-2], : x.shape[-1]] = x
        return out
