"""The cost formulas of the lecture notes, as small pure functions.

Conventions (the same as :func:`cnnzoo.analysis.summarize`):

* a **MAC** is one multiply-accumulate (one multiplication and one addition); the notes'
  "number of multiplications" is the MAC count; **FLOPs = 2 x MACs**;
* convolution costs are for **one image** and leave the bias out (one addition per output,
  negligible and often folded into the next normalization);
* ``kernel_size`` and spatial sizes are an ``int`` (square) or a pair ``(h, w)``;
* ratios are exact :class:`fractions.Fraction` values (``float()`` them to print).

Every function's docstring carries the notes' worked example it reproduces; the tests in
``tests/test_worked_examples.py`` assert each one.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import Iterable, NamedTuple, Sequence

from cnnzoo.utils.sizes import IntOrPair, pair

__all__ = [
    "MOBILENET_V1_BODY",
    "ConvSpec",
    "MobileNetCost",
    "RFStep",
    "bottleneck_macs",
    "bottleneck_params",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "dense_layer_in_channels",
    "depthwise_params",
    "depthwise_reduction_factor",
    "effective_kernel_size",
    "factorized_weights",
    "fc_spatial_area",
    "grouped_reduction_factor",
    "mobilenet_v1_cost",
    "pair",
    "receptive_field",
    "separable_macs",
    "separable_params",
    "separable_reduction_factor",
    "stacked_receptive_field",
    "stacked_weights",
    "transposed_conv_macs",
    "transposed_conv_output_size",
    "transposed_conv_scatter",
    "width_multiplier_ratio",
]


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    _positive("groups", groups)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")


# ----------------------------------------------------------------------------- sizes

def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Extent of a dilated kernel: ``(k - 1) * r + 1`` pixels with only ``k`` taps.

    A 3x3 kernel with dilation 2 spans 5x5; with dilation 4, 9x9 (seed 000, "Dilated
    Convolution", l = 1, 2, 4).
    """
    return (kernel_size - 1) * dilation + 1


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis:
    ``floor((size + 2p - r(k - 1) - 1) / s) + 1``.

    MobileNet's first 3x3 stride-2 conv with padding 1 takes 224 to 112 (seed 000).
    """
    return (size + 2 * padding - effective_kernel_size(kernel_size, dilation)) // stride + 1


def transposed_conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis:
    ``(size - 1) * s - 2p + r(k - 1) + output_padding + 1``.

    A 2x2 kernel with stride 2 doubles the size: 2 -> 4 in the seed 004 example, and
    U-Net's up-convolutions (seed 000).
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


# ----------------------------------------------------------------------------- parameters and MACs

def conv_params(in_channels: int, out_channels: int, kernel_size: IntOrPair, groups: int = 1, bias: bool = False) -> int:
    """Weights of a (grouped) convolution: ``k_h * k_w * (C_in / g) * C_out`` (+ ``C_out`` biases).

    Seed 001: three 3x3 filters on a 6-channel input need ``3 x 3 x 6 x 3 = 162`` weights.
    """
    _check_groups(in_channels, out_channels, groups)
    kh, kw = pair(kernel_size)
    return kh * kw * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def conv_macs(in_channels: int, out_channels: int, kernel_size: IntOrPair, output_size: IntOrPair, groups: int = 1) -> int:
    """MACs of a (grouped / depthwise / dilated) convolution for one image:
    ``(H_out * W_out * C_out) x (k_h * k_w * C_in / g)``, output neurons times cost per neuron.

    Dilation changes the output size, not the cost per neuron. Seed 001, "Cost of
    Convolution Layer": 5x5 filters, 256 input channels, a 128x128x64 output:
    ``(128 x 128 x 64) x (5 x 5 x 256) = 6,710,886,400``.
    """
    _check_groups(in_channels, out_channels, groups)
    kh, kw = pair(kernel_size)
    oh, ow = pair(output_size)
    return oh * ow * out_channels * kh * kw * (in_channels // groups)


def transposed_conv_macs(in_channels: int, out_channels: int, kernel_size: IntOrPair, input_size: IntOrPair, groups: int = 1) -> int:
    """MACs of a transposed convolution for one image: ``H_in * W_in * C_in * C_out * k_h * k_w / g``.

    Every input value scales a copy of its ``C_out / g`` kernels of ``k_h x k_w`` and adds it
    into the output (seed 001: "superimposes copies of the filter F scaled by the values in
    input 1"), so the cost is counted on the *input* grid. The seed 004 example (1 channel,
    2x2 input, 2x2 kernel) costs 16 MACs.
    """
    _check_groups(in_channels, out_channels, groups)
    kh, kw = pair(kernel_size)
    ih, iw = pair(input_size)
    return ih * iw * in_channels * (out_channels // groups) * kh * kw


def depthwise_params(channels: int, kernel_size: IntOrPair, multiplier: int = 1) -> int:
    """Weights of a depthwise conv (C_in = groups, C_out = multiplier * C_in): ``k_h * k_w * C * multiplier``."""
    kh, kw = pair(kernel_size)
    return kh * kw * channels * multiplier


def separable_params(in_channels: int, out_channels: int, kernel_size: IntOrPair) -> int:
    """Weights of a depthwise-separable conv: ``k_h * k_w * C_in`` (depthwise) ``+ C_in * C_out`` (1x1).

    Seed 001: 3x3 filters, 6 input and 3 output channels: ``(3 x 3 x 6) + (6 x 3) = 72``
    against 162 for the standard conv.
    """
    return depthwise_params(in_channels, kernel_size) + in_channels * out_channels


def separable_macs(in_channels: int, out_channels: int, kernel_size: IntOrPair, output_size: IntOrPair) -> int:
    """MACs of a depthwise-separable conv for one image:
    ``H_out W_out (k_h k_w C_in + C_in C_out)`` (Howard et al. 2017, eq. 4)."""
    kh, kw = pair(kernel_size)
    oh, ow = pair(output_size)
    return oh * ow * in_channels * (kh * kw + out_channels)


def separable_reduction_factor(out_channels: int, kernel_size: IntOrPair) -> Fraction:
    """Cost of a depthwise-separable conv relative to the standard one: ``1/N + 1/k^2``
    (N = output channels; Howard et al. 2017, eq. 5). Exact for both weights and MACs
    (at equal output size), whatever the number of input channels.

    Seed 004 asks "Reduction factor - ?": for 3x3 kernels and 3 outputs ``1/3 + 1/9 = 4/9``
    (= 72/162, seed 001); for 3x3 and many channels it tends to ``1/9`` ("roughly nine
    times faster", seed 000).
    """
    kh, kw = pair(kernel_size)
    return Fraction(1, out_channels) + Fraction(1, kh * kw)


def grouped_reduction_factor(groups: int) -> Fraction:
    """Weights and MACs of a grouped conv relative to the standard one: ``1/g``.

    Each of the ``g`` groups connects ``C_in/g`` inputs to ``C_out/g`` outputs:
    ``g * (C_in/g) * (C_out/g) = C_in C_out / g`` channel pairs (seeds 000 and 003,
    "Parameter reduction??").
    """
    return Fraction(1, _positive("groups", groups))


def depthwise_reduction_factor(channels: int) -> Fraction:
    """A depthwise conv (C in, C out, g = C) relative to the standard C -> C conv: ``1/C``."""
    return grouped_reduction_factor(channels)


def bottleneck_params(in_channels: int, mid_channels: int, out_channels: int, kernel_size: IntOrPair) -> int:
    """Weights of a 1x1 reduction to ``mid_channels`` followed by a k x k conv (no biases)."""
    return conv_params(in_channels, mid_channels, 1) + conv_params(mid_channels, out_channels, kernel_size)


def bottleneck_macs(in_channels: int, mid_channels: int, out_channels: int, kernel_size: IntOrPair, output_size: IntOrPair) -> int:
    """MACs of a 1x1 reduction then a k x k conv, both at the output resolution.

    Seed 001, "1x1 Conv": 256 channels reduced to 32, then 5x5 to 64 at 128x128:
    ``128*128*32*(1*1*256) + 128*128*64*(5*5*32) = 973,078,528``, almost 7 times fewer
    than the direct 6,710,886,400.
    """
    return conv_macs(in_channels, mid_channels, 1, output_size) + conv_macs(mid_channels, out_channels, kernel_size, output_size)


def stacked_weights(n: int, kernel_size: int = 3) -> int:
    """Weights per channel pair of ``n`` stacked k x k convs: ``n * k^2``.

    Seed 002 (VGG16): 3x3 + 3x3 = 9 + 9 = 18; five 3x3 = 9 x 5 = 45.
    """
    return n * kernel_size * kernel_size


def stacked_receptive_field(n: int, kernel_size: int = 3) -> int:
    """Receptive field of ``n`` stacked stride-1 k x k convs: ``n (k - 1) + 1``.

    Two 3x3 see 5x5 (25 weights for one 5x5 kernel against 18); five 3x3 see 11x11
    (121 against 45), seed 002.
    """
    return n * (kernel_size - 1) + 1


def factorized_weights(n: int) -> tuple[int, int]:
    """Weights per channel pair of a 1xN conv followed by an Nx1 conv, against one NxN:
    ``(N + N, N * N)``. Inception v2/v3 with N = 7: ``(14, 49)`` (seed 002)."""
    return (n + n, n * n)


def dense_layer_in_channels(k0: int, growth_rate: int, layer: int) -> int:
    """Input channels of the ``layer``-th layer of a dense block: ``k0 + k (l - 1)`` (seed 004)."""
    return k0 + growth_rate * (layer - 1)


def fc_spatial_area(fc_inputs: int, channels: int) -> Fraction:
    """The ``H x W`` a dense layer with ``fc_inputs`` inputs forces on a ``channels``-deep map.

    Seed 001, "The problem with fully connected layers": 1024 inputs from a 4-channel map
    force ``H x W = 256``, so the network only works at one image size.
    """
    return Fraction(fc_inputs, channels)


# ----------------------------------------------------------------------------- receptive field

class RFStep(NamedTuple):
    """Receptive field (size) and jump (distance in input pixels between neighbouring
    outputs) after one layer, along one axis."""

    size: float
    jump: float


class ConvSpec(NamedTuple):
    """A layer as the receptive-field recurrence sees it (one axis)."""

    kernel_size: int
    stride: int = 1
    dilation: int = 1
    transposed: bool = False


def receptive_field(layers: Iterable[ConvSpec | tuple[int, ...]], start: RFStep = RFStep(1, 1)) -> list[RFStep]:
    """Receptive field and jump after each layer of a chain (one axis).

    Convolution / pooling: ``rf += (k_eff - 1) * jump``, ``jump *= stride`` with
    ``k_eff = (k - 1) r + 1``. Transposed convolution: an output sees at most
    ``ceil(k_eff / s)`` neighbouring inputs, so ``rf += (ceil(k_eff / s) - 1) * jump`` and
    ``jump /= s``.

    Two stacked 3x3 convs: 3, 5; three: 3, 5, 7 (VGG). 3x3 convs with dilations 1, 2, 4:
    3, 7, 15 (Yu and Koltun 2016, Fig. 1; the "l = 1, 2, 4" of seed 000); their context
    module, dilations 1, 1, 2, 4, 8, 16, 1: 3, 5, 9, 17, 33, 65, 67 (Table 1).
    """
    size, jump = float(start.size), float(start.jump)
    steps = []
    for layer in layers:
        spec = ConvSpec(*layer)
        k_eff = effective_kernel_size(spec.kernel_size, spec.dilation)
        if spec.transposed:
            size += (ceil(k_eff / spec.stride) - 1) * jump
            jump /= spec.stride
        else:
            size += (k_eff - 1) * jump
            jump *= spec.stride
        steps.append(RFStep(size, jump))
    return steps


# ----------------------------------------------------------------------------- transposed convolution by hand

def transposed_conv_scatter(values: Sequence[Sequence[float]], kernel: Sequence[Sequence[float]], stride: int = 1) -> list[list[float]]:
    """Single-channel transposed convolution (no padding) computed by hand: every input value
    scales a copy of the kernel, placed ``stride`` pixels apart, and the copies are summed.

    The independent check of ``nn.ConvTranspose2d`` for the seed 004 example.
    """
    ih, iw = len(values), len(values[0])
    kh, kw = len(kernel), len(kernel[0])
    oh, ow = transposed_conv_output_size(ih, kh, stride), transposed_conv_output_size(iw, kw, stride)
    out = [[0.0] * ow for _ in range(oh)]
    for i in range(ih):
        for j in range(iw):
            for a in range(kh):
                for b in range(kw):
                    out[i * stride + a][j * stride + b] += values[i][j] * kernel[a][b]
    return out


# ----------------------------------------------------------------------------- MobileNet (formula side)

# Howard et al. 2017, Table 1: after a standard 3x3 stride-2 conv 3 -> 32, thirteen
# depthwise-separable layers (C_in, C_out, stride of the depthwise conv); then global
# average pooling and a 1024 -> 1000 fully connected layer. The table prints stride 2 for
# the last depthwise conv, a known typo: the map stays 7x7, as its output size says.
MOBILENET_V1_BODY: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
    (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1),
    (512, 1024, 2), (1024, 1024, 1),
)


class MobileNetCost(NamedTuple):
    output_size: int
    output_channels: int
    macs: int
    params: int


def mobilenet_v1_cost(alpha: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                      separable: bool = True, classifier: bool = True) -> MobileNetCost:
    """MobileNet v1's MACs and weights from its layer table, for width multiplier ``alpha``
    (the notes' "depth multiplier") and input ``resolution`` (biases and batch norm left out,
    as in the paper).

    The output of the last conv is 7x7x1024 for a 224x224x3 input (seed 000). Reproduces
    the paper's Tables 4, 6 and 7: 569M MACs / 4.2M weights at alpha = 1 and 224;
    325M / 2.6M at 0.75; 149M / 1.3M at 0.5 (about 4 times fewer: "a depth multiplier of
    0.5 ... reducing the number of computations by a factor of 4"); 41M / 0.5M at 0.25;
    418M, 290M, 186M at 192, 160, 128 pixels; 4866M / 29.3M with standard convolutions
    ("roughly nine times" more).
    """
    width = lambda c: int(c * alpha)  # noqa: E731  (the paper's alpha * M channels)
    size = conv_output_size(resolution, 3, 2, 1)
    macs = conv_macs(3, width(32), 3, size)
    params = conv_params(3, width(32), 3)
    for c_in, c_out, stride in MOBILENET_V1_BODY:
        size = conv_output_size(size, 3, stride, 1)
        if separable:
            macs += separable_macs(width(c_in), width(c_out), 3, size)
            params += separable_params(width(c_in), width(c_out), 3)
        else:
            macs += conv_macs(width(c_in), width(c_out), 3, size)
            params += conv_params(width(c_in), width(c_out), 3)
    channels = width(MOBILENET_V1_BODY[-1][1])
    if classifier:
        macs += channels * num_classes
        params += channels * num_classes
    return MobileNetCost(size, channels, macs, params)


def width_multiplier_ratio(alpha: float, in_channels: int, out_channels: int, kernel_size: int = 3) -> Fraction:
    """MACs of one depthwise-separable layer at width ``alpha`` relative to ``alpha = 1``:
    ``(k^2 aM + aM aN) / (k^2 M + M N)``. The pointwise part, which dominates, scales as
    ``alpha^2``; the depthwise part as ``alpha``. For 512 -> 512 and alpha = 0.5: 0.254,
    about 1/4."""
    a = Fraction(alpha).limit_denominator(1000)
    m, n = int(in_channels * a), int(out_channels * a)
    k2 = kernel_size * kernel_size
    return Fraction(k2 * m + m * n, k2 * in_channels + in_channels * out_channels)
