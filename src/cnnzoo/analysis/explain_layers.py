"""The ``cnnzoo explain`` topics about single layers: what one convolution costs, how it
splits into per-channel convolutions and a sum, and what 1x1, grouped, depthwise,
separable, factorized, dilated and transposed convolutions and max unpooling change about
it (seeds 000-004).

Each function returns its topic's text, every number computed when it is called: by
:mod:`cnnzoo.analysis.formulas`, by :func:`~cnnzoo.analysis.summarize` on real ``torch.nn``
layers, or by running them. :mod:`cnnzoo.analysis.explain` names and orders the topics.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo.analysis.formulas as f
from cnnzoo.analysis.summary import summarize

__all__ = [
    "bottleneck", "channel_sum_ones", "conv_as_depthwise_sum", "convolution_as_sums", "convolution_cost",
    "depthwise", "depthwise_products_weight", "depthwise_separable", "dilated", "factorized", "fraction_text",
    "grouped", "transposed", "unpooling",
]


def fraction_text(x: Fraction) -> str:
    """``1/9``, or ``3`` for a whole number."""
    return f"{x.numerator}/{x.denominator}" if x.denominator != 1 else str(x.numerator)


def _grid(t: torch.Tensor) -> str:
    rows = t.reshape(t.shape[-2], t.shape[-1]).tolist()
    width = max(len(f"{v:g}") for row in rows for v in row)
    return "\n".join("    [" + ", ".join(f"{v:g}".rjust(width) for v in row) + "]" for row in rows)


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convolution_cost() -> str:
    """Cost of a convolution layer (seed 001)."""
    macs = f.conv_macs(256, 64, 5, 128)
    layer = nn.Conv2d(256, 64, 5, padding=2, bias=False)
    measured = summarize(layer, (256, 128, 128)).total.macs
    return "\n".join([
        "Each output neuron of a k x k convolution reads k x k x C_in inputs (C_in / g with",
        "g groups), one multiply-accumulate (MAC) each:",
        "    MACs = (H_out x W_out x C_out) x (k_h x k_w x C_in / g)   [FLOPs = 2 x MACs]",
        "    weights = k_h x k_w x (C_in / g) x C_out (+ C_out biases)",
        "",
        "Notes' example: 5x5 filters over 256 channels producing a 128x128x64 output:",
        f"    (128 x 128 x 64) x (5 x 5 x 256) = {macs:,} multiplications ({macs / 1e9:.1f} billion)",
        f"    weights: {f.conv_params(256, 64, 5):,}",
        f"summarize(nn.Conv2d(256, 64, 5, padding=2), (256, 128, 128)) counts {measured:,} MACs.",
    ])


def bottleneck() -> str:
    """1x1 convolution as a bottleneck (seed 001)."""
    direct = f.conv_macs(256, 64, 5, 128)
    reduce_ = f.conv_macs(256, 32, 1, 128)
    conv = f.conv_macs(32, 64, 5, 128)
    total = f.bottleneck_macs(256, 32, 64, 5, 128)
    block = nn.Sequential(nn.Conv2d(256, 32, 1, bias=False), nn.Conv2d(32, 64, 5, padding=2, bias=False))
    measured = summarize(block, (256, 128, 128)).total.macs
    return "\n".join([
        "A 1x1 convolution is a linear combination of the input channels at each pixel: put",
        "in front of an expensive k x k conv it first shrinks the channels it must read.",
        "",
        "Notes' example, 128x128 output, 256 -> 64 channels with 5x5 filters:",
        f"    direct:     (128 x 128 x 64) x (5 x 5 x 256)       = {direct:,}",
        f"    1x1 to 32:  (128 x 128 x 32) x (1 x 1 x 256)       = {reduce_:,}",
        f"    then 5x5:   (128 x 128 x 64) x (5 x 5 x 32)        = {conv:,}",
        f"    together                                           = {total:,} ({total / 1e9:.2f} billion)",
        f"    reduction: {direct:,} / {total:,} = {direct / total:.2f}  (\"almost 7 times\")",
        f"    weights: {f.conv_params(256, 64, 5):,} direct, {f.bottleneck_params(256, 32, 64, 5):,} with the bottleneck",
        f"summarize() on the two real layers counts {measured:,} MACs.",
    ])


def depthwise_separable() -> str:
    """Depthwise separable convolution (seeds 000, 001, 004)."""
    standard = nn.Conv2d(6, 3, 3, bias=False)
    separable = nn.Sequential(nn.Conv2d(6, 6, 3, groups=6, bias=False), nn.Conv2d(6, 3, 1, bias=False))
    factor = f.separable_reduction_factor(3, 3)
    lines = [
        "A k x k depthwise conv filters each of the M input channels on its own; a 1x1",
        "pointwise conv then combines them into N outputs (Howard et al., MobileNets, 2017):",
        "    weights: k^2 M + M N against k^2 M N",
        "    MACs:    H W (k^2 M + M N) against H W k^2 M N",
        "    reduction factor (\"Reduction factor - ?\") = (k^2 M + M N) / (k^2 M N) = 1/N + 1/k^2",
        "",
        "Notes' example, 3x3 filters, 6 input and 3 output channels:",
        f"    standard:  3 x 3 x 6 x 3         = {f.conv_params(6, 3, 3)}   (nn.Conv2d counts {_weights(standard)})",
        f"    separable: (3 x 3 x 6) + (6 x 3) = {f.separable_params(6, 3, 3)}    (depthwise + pointwise modules count {_weights(separable)})",
        f"    factor: 1/3 + 1/9 = {fraction_text(factor)} = {f.separable_params(6, 3, 3)}/{f.conv_params(6, 3, 3)}",
        "",
        "With 3x3 kernels the factor tends to 1/9 as N grows (\"roughly nine times\" cheaper):",
    ]
    for n in (3, 32, 64, 256, 1024):
        r = f.separable_reduction_factor(n, 3)
        lines.append(f"    N = {n:>4}: 1/N + 1/9 = {float(r):.4f}  ({1 / float(r):.2f} times fewer)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- a conv is depthwise convs summed

def depthwise_products_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``(C_in * C_out, 1, k, k)`` filters of the grouped conv (``groups = C_in``) that
    computes every per-channel product of a standard conv of ``weight`` (``C_out x C_in x k x k``):
    filter ``c * C_out + o`` is ``weight[o, c]``, applied to input channel ``c`` alone (seed 001,
    "The first output channel is produced by 6 channel-wise convolutions")."""
    out_channels, in_channels, kh, kw = weight.shape
    return weight.transpose(0, 1).reshape(in_channels * out_channels, 1, kh, kw)


def channel_sum_ones(in_channels: int, out_channels: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 0/1 weight ``(C_out, C_in * C_out, 1, 1)`` of the 1x1 conv that adds, for each output
    channel ``o``, its ``C_in`` products ``c * C_out + o`` (seed 001: "Summation of per-channel
    results corresponds to 1 x 1 convolution with a volume of 1s")."""
    ones = torch.zeros(out_channels, in_channels * out_channels, 1, 1, dtype=dtype)
    for o in range(out_channels):
        ones[o, o::out_channels] = 1.0
    return ones


def conv_as_depthwise_sum(x: torch.Tensor, weight: torch.Tensor, ones: torch.Tensor | None = None) -> torch.Tensor:
    """A standard convolution of ``x`` (no padding, stride 1) computed the notes' way: the
    grouped conv of :func:`depthwise_products_weight`, then the 1x1 conv ``ones`` (by default
    :func:`channel_sum_ones`). Equals ``F.conv2d(x, weight)`` up to rounding."""
    out_channels, in_channels = weight.shape[:2]
    if ones is None:
        ones = channel_sum_ones(in_channels, out_channels, weight.dtype)
    products = F.conv2d(x, depthwise_products_weight(weight), groups=in_channels)
    return F.conv2d(products, ones)


def _costs(layers: list[nn.Module], input_size: tuple[int, int, int]) -> tuple[int, int]:
    """(weights, MACs) of ``layers`` run in sequence, counted by summarize() on the modules."""
    total = summarize(nn.Sequential(*layers), input_size).total
    return total.params, total.macs


def convolution_as_sums() -> str:
    """A standard convolution is depthwise convolutions summed by a 1x1 conv of ones (seed 001)."""
    c_in, c_out, k, side = 6, 3, 3, 8  # the notes' figure: 3 filters of 3x3 on a 6-channel input
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, c_in, side, side, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, k, k, generator=gen, dtype=torch.float64)
    standard = F.conv2d(x, weight)
    difference = (conv_as_depthwise_sum(x, weight) - standard).abs().max().item()
    # Depthwise separable: one kernel D[c] per input channel, a learned 1x1 mix P[o, c]. It is
    # the standard conv whose kernels factor as W[o, c] = P[o, c] D[c].
    kernels = torch.randn(c_in, 1, k, k, generator=gen, dtype=torch.float64)
    mix = torch.randn(c_out, c_in, 1, 1, generator=gen, dtype=torch.float64)
    separable = F.conv2d(F.conv2d(x, kernels, groups=c_in), mix)
    factored = F.conv2d(x, mix * kernels.transpose(0, 1))
    separable_difference = (separable - factored).abs().max().item()
    ones = channel_sum_ones(c_in, c_out)
    out = side - k + 1
    size = (c_in, side, side)
    conv_w, conv_macs = _costs([nn.Conv2d(c_in, c_out, k, bias=False)], size)
    dw_w, dw_macs = _costs([nn.Conv2d(c_in, c_in * c_out, k, groups=c_in, bias=False)], size)
    sum_w, sum_macs = _costs([nn.Conv2d(c_in * c_out, c_out, 1, bias=False)], (c_in * c_out, out, out))
    sep_dw_w, sep_dw_macs = _costs([nn.Conv2d(c_in, c_in, k, groups=c_in, bias=False)], size)
    sep_pw_w, sep_pw_macs = _costs([nn.Conv2d(c_in, c_out, 1, bias=False)], (c_in, out, out))
    return "\n".join([
        "Output channel o of a standard conv with weight W (C_out x C_in x k x k) is the sum over",
        "the input channels c of the per-channel (depthwise) convolutions x_c * W[o, c].",
        "Computed on random float64 tensors (seed 0), C_in = 6, C_out = 3, 3x3 kernels, 8x8 input:",
        f"  1. a grouped conv, groups = C_in = {c_in}, with C_in x C_out = {c_in * c_out} filters: filter c x C_out + o",
        "     is W[o, c], applied to channel c alone; it gives every product x_c * W[o, c];",
        f"  2. a 1x1 conv with the 0/1 \"ones\" matrix ({c_out} x {c_in * c_out}, {int(ones.sum())} ones): row o adds"
        f" the {c_in} products of o.",
        "  ones matrix (row o, columns c x C_out + o'):",
        *(f"    {''.join('1' if v else '.' for v in row)}" for row in ones.reshape(c_out, -1).tolist()),
        f"  largest |F.conv2d(x, W) - (1 then 2)| = {difference:.1e}  (float64 rounding)",
        "",
        f"Costs at this size ({out}x{out} output; summarize() on the real layers):",
        f"    standard conv:          {conv_w:>3} weights (3 x 3 x 6 x 3), {conv_macs:>5,} MACs",
        f"    1. depthwise products:  {dw_w:>3} weights (the same W),     {dw_macs:>5,} MACs",
        f"    2. 1x1 sum of ones:     {sum_w:>3} fixed weights, {int(ones.sum())} ones,    {sum_macs:>5,} MACs as a dense 1x1 conv",
        f"                            ({out * out * c_out * c_in:,} of them multiply by a one: the additions)",
        "The standard conv is this two-step route with the sum fused in: nothing is saved yet.",
        "",
        "Depthwise separable (seed 001: \"Replace sum by a linear combination\"): the 1x1 conv is",
        "LEARNED instead of ones, and the depthwise part keeps ONE kernel D[c] per input channel,",
        "shared by all outputs, so W[o, c] = P[o, c] D[c]; a conv whose kernels factor that way",
        f"equals depthwise then pointwise (largest difference {separable_difference:.1e}). Its costs:",
        f"    depthwise, 1 kernel per channel: {sep_dw_w:>3} weights, {sep_dw_macs:>5,} MACs",
        f"    learned 1x1 mix:                 {sep_pw_w:>3} weights, {sep_pw_macs:>5,} MACs",
        f"    together {sep_dw_w + sep_pw_w} weights, {sep_dw_macs + sep_pw_macs:,} MACs against {conv_w} and {conv_macs:,}"
        f" ({fraction_text(Fraction(sep_dw_macs + sep_pw_macs, conv_macs))}; `explain depthwise-separable`).",
    ])


def grouped() -> str:
    """Grouped convolution (seeds 000, 002, 003)."""
    lines = [
        "Input channels and kernels are split into g groups; each group convolves C_in/g",
        "channels into C_out/g. Only g x (C_in/g) x (C_out/g) = C_in C_out / g channel pairs",
        "are connected, so weights and MACs are 1/g of the standard conv (\"Parameter reduction??\").",
        "",
        "A 3x3 conv, 256 -> 256 channels, at 56x56 (nn.Conv2d parameter counts alongside):",
    ]
    for g in (1, 2, 4, 8, 32, 256):
        conv = nn.Conv2d(256, 256, 3, groups=g, bias=False)
        lines.append(
            f"    g = {g:>3}: {f.conv_params(256, 256, 3, g):>7,} weights (module: {_weights(conv):>7,}), "
            f"{f.conv_macs(256, 256, 3, 56, g):>11,} MACs, factor {fraction_text(f.grouped_reduction_factor(g))}"
        )
    lines += [
        "",
        "AlexNet's two GPUs are g = 2: conv2's \"256 kernels (2x128)\", 5x5 over 96 = 2 x 48 channels:",
        f"    {f.conv_params(96, 256, 5, groups=2):,} weights instead of {f.conv_params(96, 256, 5):,}.",
        "g = C_in = C_out is the depthwise conv (see `explain depthwise`); ResNeXt calls g the cardinality.",
    ]
    return "\n".join(lines)


def depthwise() -> str:
    """Depthwise convolution (seed 000)."""
    lines = [
        "The special case # input channels = # groups = # output channels: every channel is",
        "filtered on its own by one k x k kernel. Against the standard C -> C conv the",
        "reduction is 1/C (\"Parameter reduction??\"):",
    ]
    for c in (32, 64, 512):
        dw = nn.Conv2d(c, c, 3, groups=c, bias=False)
        lines.append(
            f"    C = {c:>3}: depthwise {f.depthwise_params(c, 3):>5,} weights (module: {_weights(dw):>5,}) "
            f"against {f.conv_params(c, c, 3):>9,}, factor {fraction_text(f.depthwise_reduction_factor(c))}"
        )
    lines.append("It mixes no channels: MobileNet follows it with a 1x1 conv (`explain depthwise-separable`).")
    return "\n".join(lines)


def dilated() -> str:
    """Dilated (atrous) convolution (seed 000)."""
    lines = [
        "A k x k kernel with dilation r places its taps r pixels apart: it spans",
        "(k - 1) r + 1 pixels with k^2 weights, widening the receptive field for free.",
        "",
        "A 3x3 kernel (9 weights per channel pair whatever r):",
    ]
    for r in (1, 2, 4):
        lines.append(f"    r = {r}: spans {f.effective_kernel_size(3, r)}x{f.effective_kernel_size(3, r)}")
    stack = f.receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])
    lines += [
        "",
        "The notes' figure (l = 1, 2, 4; Yu and Koltun 2016, Fig. 1) stacks them: 3x3 convs with",
        "dilations 1, 2, 4 give receptive fields " + ", ".join(f"{int(s.size)}x{int(s.size)}" for s in stack) + ",",
        "growing exponentially while the weights grow linearly.",
    ]
    dilations = (1, 1, 2, 4, 8, 16, 1)
    context = f.receptive_field([(3, 1, d) for d in dilations])
    net = nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in dilations))
    traced = [r.rf[0] for r in summarize(net, (1, 64, 64)).rows]
    lines += [
        "",
        "Yu and Koltun's context module, dilations " + ", ".join(map(str, dilations)) + ":",
        "    receptive fields " + ", ".join(str(int(s.size)) for s in context),
        "    traced by summarize() on the real layers: " + ", ".join(str(int(v)) for v in traced),
    ]
    return "\n".join(lines)


def transposed() -> str:
    """Transposed convolution (seeds 000, 001, 004)."""
    values = [[0.0, 1.0], [2.0, 3.0]]
    kernels = {"kernel1": [[0.0, 1.0], [2.0, 3.0]], "kernel2": [[4.0, 1.0], [2.0, 3.0]]}
    layer = nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2, padding=0, bias=False)
    x = torch.tensor(values).reshape(1, 1, 2, 2)
    size = f.transposed_conv_output_size(2, 2, 2)
    lines = [
        "A transposed convolution superimposes copies of the kernel, each scaled by one input",
        "value and placed `stride` pixels apart; it enlarges the map:",
        "    H_out = (H_in - 1) s - 2p + r (k - 1) + output_padding + 1",
        "    MACs  = H_in x W_in x C_in x C_out x k_h x k_w / g   (counted on the input grid)",
        "",
        "The notes' example (seed 004): input [[0, 1], [2, 3]], 2x2 kernel, stride 2, no padding:",
        f"    output size (2 - 1) x 2 + (2 - 1) + 1 = {size}; MACs = {f.transposed_conv_macs(1, 1, 2, 2)}",
    ]
    for label, kernel in kernels.items():
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(kernel).reshape(1, 1, 2, 2))
            out = layer(x)
        by_hand = torch.tensor(f.transposed_conv_scatter(values, kernel, stride=2))
        agree = "agrees" if torch.equal(out.reshape(size, size), by_hand) else "DISAGREES"
        lines += [
            "",
            f"  {label} = {kernel}: nn.ConvTranspose2d gives",
            _grid(out),
            f"  (scattering input value x kernel by hand {agree})",
        ]
    lines += [
        "",
        "A 2x2 kernel with stride 2 exactly doubles the size (U-Net's up-convolution); kernels",
        "larger than the stride overlap, the source of checkerboard artefacts (seed 002).",
    ]
    return "\n".join(lines)


def unpooling() -> str:
    """Max unpooling (seed 001)."""
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 2.0, 1.0, 4.0], [0.0, 1.0, 6.0, 2.0], [7.0, 2.0, 3.0, 1.0]]).reshape(1, 1, 4, 4)
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(x)
    unpooled = nn.MaxUnpool2d(2)(pooled, indices)
    return "\n".join([
        "Unpooling reverses the size reduction of subsampling: each pooled value goes back to",
        "the place its maximum came from, the rest is zero. The sparse result is then filled",
        "in by a (transposed) convolution. It has no weights; its cost is one copy per input.",
        "",
        "A 4x4 map:", _grid(x),
        "2x2 max-pooling (nn.MaxPool2d(2, return_indices=True)):", _grid(pooled),
        "unpooled to a sparse 4x4 (nn.MaxUnpool2d(2)):", _grid(unpooled),
    ])


def factorized() -> str:
    """Factorized N x N into 1 x N + N x 1, Inception v2/v3 (seed 002)."""
    lines = ["A 1 x N conv followed by an N x 1 conv sees the same N x N window:"]
    for n in (3, 5, 7):
        pair_, full = f.factorized_weights(n)
        lines.append(f"    N = {n}: {n} + {n} = {pair_:>2} weights per channel pair against {n} x {n} = {full:>2} ({fraction_text(Fraction(pair_, full))})")
    block = nn.Sequential(nn.Conv2d(64, 64, (1, 7), padding=(0, 3), bias=False), nn.Conv2d(64, 64, (7, 1), padding=(3, 0), bias=False))
    full = nn.Conv2d(64, 64, 7, padding=3, bias=False)
    s_block, s_full = summarize(block, (64, 17, 17)), summarize(full, (64, 17, 17))
    lines += [
        "",
        "Inception v3 uses N = 7 on 17x17 maps. With 64 -> 64 channels (real layers, summarize()):",
        f"    1x7 + 7x1: {s_block.total.params:,} weights, {s_block.total.macs:,} MACs, receptive field "
        f"{'x'.join(str(int(v)) for v in s_block.total.rf)}",
        f"    7x7:       {s_full.total.params:,} weights, {s_full.total.macs:,} MACs, receptive field "
        f"{'x'.join(str(int(v)) for v in s_full.total.rf)}",
    ]
    return "\n".join(lines)
