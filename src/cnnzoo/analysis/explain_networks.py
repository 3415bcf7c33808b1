"""The ``cnnzoo explain`` topics about networks: what stacking layers does to the receptive
field (VGG's 3x3 stacks, through every branch), and the cost arguments of MobileNet, fully
convolutional heads, DenseNet's growth rate and ResNet's skip connection (seeds 000-004).

Each function returns its topic's text, every number computed when it is called: by
:mod:`cnnzoo.analysis.formulas`, by :func:`~cnnzoo.analysis.summarize` on real ``torch.nn``
modules, or by running them. :mod:`cnnzoo.analysis.explain` names and orders the topics.
"""

from __future__ import annotations

import torch
from torch import nn

import cnnzoo.analysis.formulas as f
from cnnzoo.analysis.explain_layers import fraction_text
from cnnzoo.analysis.summary import summarize

__all__ = ["dense_growth", "fcn_head", "mobilenet", "receptive_field", "residual", "stacked_3x3"]


def stacked_3x3() -> str:
    """Stacked 3x3 convolutions, VGG (seed 002)."""
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


def receptive_field() -> str:
    """Receptive field, through every branch."""
    lines = [
        "The receptive field (RF) of a unit is the input window it depends on; the jump is the",
        "distance in input pixels between neighbouring units of the map. Layer by layer:",
        "    conv / pooling (kernel k, stride s, dilation r): RF += ((k - 1) r) x jump;  jump x= s",
        "    transposed conv: RF += (ceil(((k - 1) r + 1) / s) - 1) x jump;  jump /= s",
        "    global pooling, flatten + dense layer: global, no spatial path left (RF and jump kept)",
        "    branches meeting (addition, concatenation): the largest RF and jump of the spatial",
        "    paths; a global branch joining one (a squeeze-and-excitation gate) marks it gated",
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


def mobilenet() -> str:
    """MobileNet: depthwise separable layers and the width multiplier (seed 000)."""
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


def fcn_head() -> str:
    """Fully convolutional networks: dense layers as convolutions (seeds 001, 002, 004)."""
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
        f"    H x W = 1024 / 4 = {fraction_text(area)} (e.g. 16x16); any other image size breaks it.",
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


def dense_growth() -> str:
    """DenseNet's growth rate (seeds 003, 004)."""
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


def residual() -> str:
    """Residual block: what the skip connection costs (seed 004)."""
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
