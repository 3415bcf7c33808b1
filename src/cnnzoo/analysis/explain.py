"""The lecture notes' cost questions, answered with computed numbers (``cnnzoo explain``).

Every number printed here is computed when the text is built: by the pure functions of
:mod:`cnnzoo.analysis.formulas`, by :func:`cnnzoo.analysis.summarize` on real
``torch.nn`` modules, or by running those modules (the transposed-convolution and
unpooling examples). Nothing is typed in, so the text cannot drift from the library.
"""

from __future__ import annotations

import sys
import types
from fractions import Fraction
from typing import Callable

import torch
from torch import nn

from cnnzoo.analysis import formulas as f
from cnnzoo.analysis.summary import summarize

__all__ = ["explain", "topics"]

_TOPICS: dict[str, tuple[str, Callable[[], str]]] = {}
_ALIASES = {
    "cost": "convolution-cost", "conv": "convolution-cost", "convolution": "convolution-cost",
    "1x1": "bottleneck", "1x1-conv": "bottleneck", "pointwise": "bottleneck",
    "separable": "depthwise-separable", "depthwise-separable-conv": "depthwise-separable",
    "group": "grouped", "grouped-conv": "grouped", "group-conv": "grouped",
    "dilation": "dilated", "atrous": "dilated",
    "transpose": "transposed", "deconvolution": "transposed", "transposed-conv": "transposed",
    "unpool": "unpooling", "vgg": "stacked-3x3", "stacked": "stacked-3x3",
    "inception": "factorized", "factorized-conv": "factorized",
    "rf": "receptive-field", "depth-multiplier": "mobilenet", "width-multiplier": "mobilenet",
    "fcn": "fcn-head", "fully-convolutional": "fcn-head", "densenet": "dense-growth",
    "growth-rate": "dense-growth", "resnet": "residual",
}


def _topic(name: str, title: str):
    def register(fn: Callable[[], str]) -> Callable[[], str]:
        _TOPICS[name] = (title, fn)
        return fn
    return register


def _frac(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}" if x.denominator != 1 else str(x.numerator)


def _grid(t: torch.Tensor) -> str:
    rows = t.reshape(t.shape[-2], t.shape[-1]).tolist()
    width = max(len(f"{v:g}") for row in rows for v in row)
    return "\n".join("    [" + ", ".join(f"{v:g}".rjust(width) for v in row) + "]" for row in rows)


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- topics

@_topic("convolution-cost", "Cost of a convolution layer (seed 001)")
def _convolution_cost() -> str:
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


@_topic("bottleneck", "1x1 convolution as a bottleneck (seed 001)")
def _bottleneck() -> str:
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


@_topic("depthwise-separable", "Depthwise separable convolution (seeds 000, 001, 004)")
def _separable() -> str:
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
        f"    factor: 1/3 + 1/9 = {_frac(factor)} = {f.separable_params(6, 3, 3)}/{f.conv_params(6, 3, 3)}",
        "",
        "With 3x3 kernels the factor tends to 1/9 as N grows (\"roughly nine times\" cheaper):",
    ]
    for n in (3, 32, 64, 256, 1024):
        r = f.separable_reduction_factor(n, 3)
        lines.append(f"    N = {n:>4}: 1/N + 1/9 = {float(r):.4f}  ({1 / float(r):.2f} times fewer)")
    return "\n".join(lines)


@_topic("grouped", "Grouped convolution (seeds 000, 002, 003)")
def _grouped() -> str:
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
            f"{f.conv_macs(256, 256, 3, 56, g):>11,} MACs, factor {_frac(f.grouped_reduction_factor(g))}"
        )
    lines += [
        "",
        "AlexNet's two GPUs are g = 2: conv2's \"256 kernels (2x128)\", 5x5 over 96 = 2 x 48 channels:",
        f"    {f.conv_params(96, 256, 5, groups=2):,} weights instead of {f.conv_params(96, 256, 5):,}.",
        "g = C_in = C_out is the depthwise conv (see `explain depthwise`); ResNeXt calls g the cardinality.",
    ]
    return "\n".join(lines)


@_topic("depthwise", "Depthwise convolution (seed 000)")
def _depthwise() -> str:
    lines = [
        "The special case # input channels = # groups = # output channels: every channel is",
        "filtered on its own by one k x k kernel. Against the standard C -> C conv the",
        "reduction is 1/C (\"Parameter reduction??\"):",
    ]
    for c in (32, 64, 512):
        dw = nn.Conv2d(c, c, 3, groups=c, bias=False)
        lines.append(
            f"    C = {c:>3}: depthwise {f.depthwise_params(c, 3):>5,} weights (module: {_weights(dw):>5,}) "
            f"against {f.conv_params(c, c, 3):>9,}, factor {_frac(f.depthwise_reduction_factor(c))}"
        )
    lines.append("It mixes no channels: MobileNet follows it with a 1x1 conv (`explain depthwise-separable`).")
    return "\n".join(lines)


@_topic("dilated", "Dilated (atrous) convolution (seed 000)")
def _dilated() -> str:
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


@_topic("transposed", "Transposed convolution (seeds 000, 001, 004)")
def _transposed() -> str:
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


@_topic("unpooling", "Max unpooling (seed 001)")
def _unpooling() -> str:
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


@_topic("stacked-3x3", "Stacked 3x3 convolutions, VGG (seed 002)")
def _stacked() -> str:
    lines = [
        "n stacked 3x3 convs (stride 1) see a (2n + 1) x (2n + 1) window with n x 9 weights per",
        "channel pair, against (2n + 1)^2 for one large kernel, and add n nonlinearities:",
    ]
    for n in range(1, 6):
        k = f.stacked_receptive_field(n, 3)
        view = f"{k}x{k}"
        lines.append(f"    {n} x 3x3: {f.stacked_weights(n):>2} weights, sees {view:<5}  (one {view:<5} kernel: {k * k:>3} weights)")
    net = nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)))
    traced = [int(r.rf[0]) for r in summarize(net, (1, 32, 32)).rows]
    vgg = [(3, 1)] * 2 + [(2, 2)] + [(3, 1)] * 2 + [(2, 2)] + ([(3, 1)] * 3 + [(2, 2)]) * 3
    rf = f.receptive_field(vgg)
    lines += [
        "",
        "The notes: 5x5 kernel 25 parameters per channel, 3x3 + 3x3 = "
        f"{f.stacked_weights(1)} + {f.stacked_weights(1)} = {f.stacked_weights(2)}; "
        f"11x11 kernel {f.stacked_receptive_field(5) ** 2}, five 3x3 = {f.stacked_weights(5)}.",
        "Receptive fields traced by summarize() through three real 3x3 convs: " + ", ".join(map(str, traced)),
        f"VGG16's thirteen 3x3 convs and five 2x2 poolings: receptive field {int(rf[-1].size)} at pool5, jump {int(rf[-1].jump)}.",
    ]
    return "\n".join(lines)


@_topic("factorized", "Factorized N x N into 1 x N + N x 1, Inception v2/v3 (seed 002)")
def _factorized() -> str:
    lines = ["A 1 x N conv followed by an N x 1 conv sees the same N x N window:"]
    for n in (3, 5, 7):
        pair_, full = f.factorized_weights(n)
        lines.append(f"    N = {n}: {n} + {n} = {pair_:>2} weights per channel pair against {n} x {n} = {full:>2} ({_frac(Fraction(pair_, full))})")
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


@_topic("receptive-field", "Receptive field, through every branch")
def _receptive_field() -> str:
    lines = [
        "The receptive field (RF) of a unit is the input window it depends on; the jump is the",
        "distance in input pixels between neighbouring units of the map. Layer by layer:",
        "    conv / pooling (kernel k, stride s, dilation r): RF += ((k - 1) r) x jump;  jump x= s",
        "    transposed conv: RF += (ceil(((k - 1) r + 1) / s) - 1) x jump;  jump /= s",
        "    global pooling, flatten + dense layer: the whole map (RF += (extent - 1) x jump)",
        "    branches meeting (addition, concatenation): the largest RF and jump",
        "",
        "A chain of 3x3 convs and 2x2 poolings (one axis):",
    ]
    chain = [("conv 3x3", (3, 1)), ("conv 3x3", (3, 1)), ("pool 2x2/2", (2, 2)), ("conv 3x3", (3, 1)),
             ("conv 3x3 /2", (3, 2)), ("conv 3x3 r=2", (3, 1, 2)), ("transposed 2x2/2", (2, 2, 1, True))]
    for (label, spec), step in zip(chain, f.receptive_field(spec for _, spec in chain)):
        lines.append(f"    {label:<18} RF {step.size:>5g}  jump {step.jump:g}")

    class TwoBranch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.small = nn.Conv2d(1, 1, 3, padding=1)
            self.large = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=2, dilation=2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.small(x) + self.large(x)

    s = summarize(TwoBranch(), (1, 32, 32))
    labels = [("the addition" if r.own else r.label) for r in s.rows]
    width = max(map(len, labels))
    lines += [
        "",
        "summarize() follows every branch: 3x3 in parallel with (3x3 then 3x3 dilated 2), added:",
        *(f"    {label:<{width}}  RF {int(r.rf[0])}" for label, r in zip(labels, s.rows)),
    ]
    return "\n".join(lines)


@_topic("mobilenet", "MobileNet: depthwise separable layers and the width multiplier (seed 000)")
def _mobilenet() -> str:
    base = f.mobilenet_v1_cost()
    standard = f.mobilenet_v1_cost(separable=False)
    lines = [
        "MobileNet v1 (Howard et al. 2017, Table 1): a 3x3 stride-2 conv, then 13 depthwise",
        "separable layers, no pooling in between (stride-2 depthwise convs shrink the map while",
        "the pointwise convs double the channels), global pooling and one dense layer.",
        f"    a 224x224x3 input leaves the last conv as {base.output_size}x{base.output_size}x{base.output_channels}",
        f"    MACs: {base.macs:,} (paper: 569M); weights {base.params:,} (paper: 4.2M)",
        f"    the same network with standard convs: {standard.macs:,} MACs, {standard.params:,} weights"
        f" -> {standard.macs / base.macs:.1f} times more (\"roughly nine times\")",
        "",
        "The width (\"depth\") multiplier alpha keeps alpha x M channels in every layer. The",
        "pointwise convs, which do almost all the work, cost alpha^2 as much; the depthwise alpha:",
    ]
    for alpha in (1.0, 0.75, 0.5, 0.25):
        cost = f.mobilenet_v1_cost(alpha)
        lines.append(f"    alpha = {alpha:<4}: {cost.macs / 1e6:7.1f}M MACs, {cost.params / 1e6:.2f}M weights, "
                     f"{base.macs / cost.macs:5.2f} times fewer MACs than alpha = 1")
    ratio = f.width_multiplier_ratio(0.5, 512, 512)
    lines += [
        f"    one 512 -> 512 layer at alpha = 0.5: {float(ratio):.3f} of the cost (about 1/4)",
        "",
        "The resolution multiplier scales the input (cost ~ rho^2):",
    ]
    for res in (224, 192, 160, 128):
        lines.append(f"    {res}x{res}: {f.mobilenet_v1_cost(resolution=res).macs / 1e6:.1f}M MACs")
    return "\n".join(lines)


@_topic("fcn-head", "Fully convolutional networks: dense layers as convolutions (seeds 001, 002, 004)")
def _fcn_head() -> str:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=gen)
    dense = nn.Linear(4 * 16 * 16, 5)
    conv = nn.Conv2d(4, 5, 16)
    point_fc = nn.Linear(4, 5)
    point_conv = nn.Conv2d(4, 5, 1)
    with torch.no_grad():
        for layer in (dense, point_fc):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))
        conv.weight.copy_(dense.weight.reshape(5, 4, 16, 16))
        conv.bias.copy_(dense.bias)
        point_conv.weight.copy_(point_fc.weight.reshape(5, 4, 1, 1))
        point_conv.bias.copy_(point_fc.bias)
        full_diff = (dense(x.flatten(1)) - conv(x).flatten(1)).abs().max().item()
        point_diff = (point_fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) - point_conv(x)).abs().max().item()
    k = 21
    area = f.fc_spatial_area(1024, 4)
    lines = [
        "A dense layer fixes the input size: 1024 inputs from a 4-channel map force",
        f"    H x W = 1024 / 4 = {_frac(area)} (e.g. 16x16); any other image size breaks it.",
        "",
        "A dense layer is a convolution whose kernel spans the whole input (\"convolutionalize\"):",
        f"    Linear(4*16*16 -> 5) and Conv2d(4, 5, kernel 16) with the same weights: largest difference {full_diff:.1e}",
        "and a 1x1 convolution is a dense layer applied at every pixel:",
        f"    Linear(4 -> 5) per pixel and Conv2d(4, 5, 1): largest difference {point_diff:.1e}",
        "    (float32 rounding: the sums are taken in a different order)",
        "",
        f"FCN head: K 1x1 convs (one per class), global pooling, softmax. With C = 512 and K = {k} (PASCAL VOC):",
        f"    {f.conv_params(512, k, 1, bias=True):,} weights whatever the image size; at H x W the 1x1 convs cost",
        f"    H W x {f.conv_macs(512, k, 1, 1):,} MACs, e.g. {f.conv_macs(512, k, 1, 7):,} at 7x7 and "
        f"{f.conv_macs(512, k, 1, 16):,} at 16x16.",
    ]
    return "\n".join(lines)


@_topic("dense-growth", "DenseNet's growth rate (seeds 003, 004)")
def _dense_growth() -> str:
    k0, k = 16, 12
    lines = [
        "Layer l of a dense block reads the concatenation of the block input and every earlier",
        "layer's k new maps: k0 + k (l - 1) input channels. With k0 = 16 and growth rate k = 12:",
    ]
    for layer in range(1, 7):
        c_in = f.dense_layer_in_channels(k0, k, layer)
        lines.append(f"    layer {layer}: {c_in:>3} channels in, 3x3 conv {c_in} -> {k}: "
                     f"{f.conv_params(c_in, k, 3):>6,} weights, {f.conv_macs(c_in, k, 3, 32):>9,} MACs at 32x32")
    out = f.dense_layer_in_channels(k0, k, 7)
    lines += [
        f"The block outputs {out} channels. A transition layer (BN, 1x1 conv, 2x2 average pooling)",
        f"halving them costs {f.conv_macs(out, out // 2, 1, 32):,} MACs at 32x32 and quarters the area.",
    ]
    return "\n".join(lines)


@_topic("residual", "Residual block: what the skip connection costs (seed 004)")
def _residual() -> str:
    class BasicBlock(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += identity
            return self.relu(out)

    s = summarize(BasicBlock(64), (64, 56, 56))
    t = s.total
    return "\n".join([
        "out = relu(bn2(conv2(relu(bn1(conv1(x))))) + x): the identity path has no weights and",
        "costs one addition per output element. ResNet's 64-channel block at 56x56 (summarize()):",
        f"    convolutions: {t.macs:,} MACs, {t.params:,} parameters",
        f"    the skip addition: {t.ops['elementwise']:,} additions; batch norm {t.ops['norm']:,}, "
        f"ReLU {t.ops['activation']:,} operations",
        f"    receptive field {int(t.rf[0])} (two 3x3 convs; the identity path adds nothing wider)",
        "A projection shortcut (1x1 conv, stride 2) is used when the shape changes.",
    ])


# ----------------------------------------------------------------------------- entry points

def topics() -> list[str]:
    """The topic names :func:`explain` knows, in lecture order."""
    return list(_TOPICS)


def _resolve(topic: str) -> str:
    key = topic.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    if key not in _TOPICS:
        raise ValueError(f"unknown topic {topic!r}; topics: {', '.join(_TOPICS)}")
    return key


def explain(topic: str | None = None) -> str:
    """The formulas and worked examples of ``topic``, every number computed now.

    ``None`` lists the topics; ``"all"`` gives every topic. An unknown topic raises
    ``ValueError`` listing the known ones.
    """
    if topic is None:
        width = max(map(len, _TOPICS))
        return "\n".join(["Topics (cnnzoo explain TOPIC):"] + [f"  {name:<{width}}  {title}" for name, (title, _) in _TOPICS.items()])
    if topic.strip().lower() == "all":
        return "\n\n".join(explain(name) for name in _TOPICS)
    key = _resolve(topic)
    title, build = _TOPICS[key]
    return f"{title}\n{'=' * len(title)}\n{build()}"


class _CallableModule(types.ModuleType):
    """``from cnnzoo.analysis import explain`` gives this module; calling it is
    :func:`explain`, so ``explain("grouped")``, ``explain.explain("grouped")`` and
    ``explain.topics()`` all work."""

    def __call__(self, topic: str | None = None) -> str:
        return explain(topic)


sys.modules[__name__].__class__ = _CallableModule
