"""Inception modules: several filter sizes side by side on the same input, concatenated.

Inception v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, figure 2b):
four branches see the same map at stride 1 and differ only in scale, a 1x1, a 3x3 and a
5x5 convolution and a 3x3 max-pool. 1x1 "reduce" convolutions in front of the 3x3 and 5x5
(and a 1x1 "pool proj" after the pool) shrink the channels first, which is what keeps a
multi-scale module affordable. Parameters of one module, without normalization::

    C_in * (n1x1 + r3x3 + r5x5 + pool_proj) + 9 * r3x3 * n3x3 + 25 * r5x5 * n5x5

and its multiply-adds are ``H * W`` times that (every conv is stride 1, "same" padded).
Inception (3a) of GoogLeNet (C_in = 192 at 28x28): 163,328 weights, 128 M multiply-adds.

Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016) factorizes the large filters: a 5x5 becomes two stacked 3x3 (9 + 9 = 18 weights
per channel pair instead of 25, section 3.1) and an n x n becomes 1 x n followed by n x 1
(section 3.2; for n = 7, 7 + 7 = 14 weights instead of 49, with the same 7x7 window).
The modules are named as in torchvision:

======================  =========  ==================================================
module                  grid       branches
======================  =========  ==================================================
:class:`InceptionA`     35x35      1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; avg-pool -> 1x1
:class:`InceptionB`     35 -> 17   3x3/2; 1x1 -> 3x3 -> 3x3/2; max-pool/2 (grid reduction)
:class:`InceptionC`     17x17      1x1; 1x1 -> 1x7 -> 7x1; 1x1 -> (7x1 -> 1x7) x 2; pool
:class:`InceptionD`     17 -> 8    1x1 -> 3x3/2; 1x1 -> 1x7 -> 7x1 -> 3x3/2; max-pool/2
:class:`InceptionE`     8x8        1x1; 1x1 -> [1x3, 3x1]; 1x1 -> 3x3 -> [1x3, 3x1]; pool
======================  =========  ==================================================

The grid reductions (B, D) run a stride-2 conv and a stride-2 pool in parallel and
concatenate them, so the map shrinks without a representational bottleneck (section 5).

Every convolution is :func:`inception_conv`: conv without bias, batch norm with
``eps = 0.001`` (the value of the original TensorFlow models, kept by torchvision) and ReLU,
with children ``conv``, ``bn`` and ``act`` like torchvision's ``BasicConv2d``, so the
state-dict keys of these modules equal torchvision's.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, IntOrPair

__all__ = [
    "InceptionA",
    "InceptionAuxV1",
    "InceptionAuxV3",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionV1",
    "imagenet_to_inception_input",
    "inception_conv",
    "inception_v1_params",
    "init_inception_weights",
]

# The original TensorFlow Inception models use batch-norm epsilon 0.001 (torchvision too).
InceptionBatchNorm = partial(nn.BatchNorm2d, eps=1e-3)


def inception_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair = 1,
    stride: IntOrPair = 1,
    padding: IntOrPair | None = None,
) -> ConvNormAct:
    """Conv (no bias) + BN (eps 0.001) + ReLU. ``padding=None`` keeps the size at stride 1
    ("same"); ``padding=0`` is the paper's "valid" conv that trims ``k - 1`` pixels."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride=stride, padding=padding, norm_layer=InceptionBatchNorm)


def concat_branches(x: torch.Tensor, branches: list[nn.Module]) -> torch.Tensor:
    """Run every branch on the same input and stack their maps along the channels."""
    return torch.cat([branch(x) for branch in branches], dim=1)


# ---------------------------------------------------------------------------------------
# Inception v1 (GoogLeNet)
# ---------------------------------------------------------------------------------------


def inception_v1_params(
    in_channels: int,
    ch1x1: int,
    ch3x3_reduce: int,
    ch3x3: int,
    ch5x5_reduce: int,
    ch5x5: int,
    pool_proj: int,
    wide_kernel: int = 5,
    batch_norm: bool = True,
) -> int:
    """Parameters of an Inception v1 module from one row of the paper's Table 1.

    ``wide_kernel`` is the kernel of the "5x5" branch (3 in torchvision's layout);
    ``batch_norm`` adds the BN scale and shift (2 per output channel of every conv).
    """
    weights = (
        in_channels * (ch1x1 + ch3x3_reduce + ch5x5_reduce + pool_proj)
        + 9 * ch3x3_reduce * ch3x3
        + wide_kernel**2 * ch5x5_reduce * ch5x5
    )
    conv_outputs = ch1x1 + ch3x3_reduce + ch3x3 + ch5x5_reduce + ch5x5 + pool_proj
    return weights + (2 * conv_outputs if batch_norm else 0)


class InceptionV1(nn.Module):
    """The Inception v1 module with dimension reductions (Szegedy et al. 2015, figure 2b).

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``; every branch keeps H x W.

    Children (torchvision's names): ``branch1`` (1x1), ``branch2`` (1x1 reduce -> 3x3),
    ``branch3`` (1x1 reduce -> "5x5"), ``branch4`` (3x3 max-pool -> 1x1 pool proj).

    torchvision's GoogLeNet uses a 3x3 conv in ``branch3`` where the paper has a 5x5 (a known
    quirk of the port its weights were trained with); ``wide_kernel=3`` (default) keeps that
    layout so its checkpoints load, ``wide_kernel=5`` is the paper's module.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        wide_kernel: int = 3,
    ) -> None:
        super().__init__()
        if wide_kernel not in (3, 5):
            raise ValueError(f"wide_kernel must be 3 (torchvision) or 5 (paper), got {wide_kernel}")
        self.branch1 = inception_conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            inception_conv(in_channels, ch3x3_reduce, 1),
            inception_conv(ch3x3_reduce, ch3x3, 3),
        )
        self.branch3 = nn.Sequential(
            inception_conv(in_channels, ch5x5_reduce, 1),
            inception_conv(ch5x5_reduce, ch5x5, wide_kernel),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            inception_conv(in_channels, pool_proj, 1),
        )
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return concat_branches(x, [self.branch1, self.branch2, self.branch3, self.branch4])


class InceptionAuxV1(nn.Module):
    """GoogLeNet's auxiliary classifier, attached to inception (4a) and (4d) in training.

    The paper (section 5): average pooling to 4x4, a 1x1 conv with 128 filters, a fully
    connected layer of 1024 units with ReLU, 70% dropout and a linear classifier; its loss
    is added with weight 0.3. Meant to push gradient into the middle of the network, it
    turned out to act mostly as a regularizer (Szegedy et al. 2016, section 4).

    The pooling is adaptive to 4x4 (torchvision's choice), so the head works at any input
    size; on the 14x14 map of a 224x224 input it averages 4x4 windows at stride 3 or 4
    (the paper: 5x5 at stride 3). Children: ``conv``, ``fc1``, ``fc2`` as in torchvision.
    Parameters: ``128 * C_in + 2 * 128`` (conv, BN) ``+ 2048 * 1024 + 1024 + 1024 * K + K``
    for K classes (3,191,016 for K = 1000 on the 528 channels of (4d)).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = inception_conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


# ---------------------------------------------------------------------------------------
# Inception v3
# ---------------------------------------------------------------------------------------


def pool_3x3_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pool at stride 1 that keeps the size (the pool branch of A, C and E)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


def max_pool_3x3_reduce(x: torch.Tensor) -> torch.Tensor:
    """3x3 max-pool at stride 2, "valid": the pool half of a grid reduction (B and D)."""
    return F.max_pool2d(x, kernel_size=3, stride=2)


class InceptionA(nn.Module):
    """35x35 module (figure 5): the 5x5 of v1 kept in one branch and replaced by two
    stacked 3x3 in another. Output: ``64 + 64 + 96 + pool_features`` channels."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = inception_conv(in_channels, 64, 1)
        self.branch5x5_1 = inception_conv(in_channels, 48, 1)
        self.branch5x5_2 = inception_conv(48, 64, 5)
        self.branch3x3dbl_1 = inception_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = inception_conv(64, 96, 3)
        self.branch3x3dbl_3 = inception_conv(96, 96, 3)
        self.branch_pool = inception_conv(in_channels, pool_features, 1)
        self.in_channels = in_channels
        self.out_channels = 64 + 64 + 96 + pool_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(pool_3x3_same(x)),
        ], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (figure 10): stride-2 convs beside a stride-2 max-pool.
    Output: ``384 + 96 + in_channels`` channels (the pool passes its input channels on)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = inception_conv(in_channels, 384, 3, stride=2, padding=0)
        self.branch3x3dbl_1 = inception_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = inception_conv(64, 96, 3)
        self.branch3x3dbl_3 = inception_conv(96, 96, 3, stride=2, padding=0)
        self.in_channels = in_channels
        self.out_channels = 384 + 96 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            max_pool_3x3_reduce(x),
        ], dim=1)


class InceptionC(nn.Module):
    """17x17 module (figure 6) with 7x7 filters factorized into 1x7 and 7x1.

    One branch is a 1x7 then 7x1 pair (one 7x7 window), the other two pairs in a row (7x1
    first). Each pair has ``7 + 7 = 14`` weights per channel pair where a 7x7 has 49 (the
    factorization of :class:`~cnnzoo.layers.conv.FactorizedConv`, with the convs kept flat
    under torchvision's names). ``channels_7x7`` is the width inside the factorized
    branches. Output: ``4 * 192 = 768`` channels.
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = inception_conv(in_channels, 192, 1)
        self.branch7x7_1 = inception_conv(in_channels, c7, 1)
        self.branch7x7_2 = inception_conv(c7, c7, (1, 7))
        self.branch7x7_3 = inception_conv(c7, 192, (7, 1))
        self.branch7x7dbl_1 = inception_conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = inception_conv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = inception_conv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = inception_conv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = inception_conv(c7, 192, (1, 7))
        self.branch_pool = inception_conv(in_channels, 192, 1)
        self.in_channels = in_channels
        self.out_channels = 4 * 192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = conv(branch7x7dbl)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(pool_3x3_same(x))], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8: a 3x3/2 conv and a factorized 7x7 followed by a 3x3/2
    conv, beside a stride-2 max-pool. Output: ``320 + 192 + in_channels`` channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = inception_conv(in_channels, 192, 1)
        self.branch3x3_2 = inception_conv(192, 320, 3, stride=2, padding=0)
        self.branch7x7x3_1 = inception_conv(in_channels, 192, 1)
        self.branch7x7x3_2 = inception_conv(192, 192, (1, 7))
        self.branch7x7x3_3 = inception_conv(192, 192, (7, 1))
        self.branch7x7x3_4 = inception_conv(192, 192, 3, stride=2, padding=0)
        self.in_channels = in_channels
        self.out_channels = 320 + 192 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7x3 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = conv(branch7x7x3)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), branch7x7x3, max_pool_3x3_reduce(x)], dim=1)


class InceptionE(nn.Module):
    """8x8 module with an expanded filter bank (figure 7): the 1x3 and 3x1 halves of a
    factorized 3x3 run side by side and are concatenated instead of stacked, which widens
    the representation on the coarsest grid. Output: ``320 + 2 * 384 + 2 * 384 + 192 = 2048``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = inception_conv(in_channels, 320, 1)
        self.branch3x3_1 = inception_conv(in_channels, 384, 1)
        self.branch3x3_2a = inception_conv(384, 384, (1, 3))
        self.branch3x3_2b = inception_conv(384, 384, (3, 1))
        self.branch3x3dbl_1 = inception_conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = inception_conv(448, 384, 3)
        self.branch3x3dbl_3a = inception_conv(384, 384, (1, 3))
        self.branch3x3dbl_3b = inception_conv(384, 384, (3, 1))
        self.branch_pool = inception_conv(in_channels, 192, 1)
        self.in_channels = in_channels
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            concat_branches(branch3x3, [self.branch3x3_2a, self.branch3x3_2b]),
            concat_branches(branch3x3dbl, [self.branch3x3dbl_3a, self.branch3x3dbl_3b]),
            self.branch_pool(pool_3x3_same(x)),
        ], dim=1)


class InceptionAuxV3(nn.Module):
    """Inception v3's auxiliary classifier on the 17x17 grid (figure 8): 5x5 average pool
    at stride 3 (17x17 -> 5x5), a 1x1 conv with 128 filters, a 5x5 conv with 768 filters
    (BN, which the paper credits for the head's regularizing effect) and a linear layer.

    On a grid smaller than 17x17 (inputs below ~299 pixels) the 5x5/3 pool would leave less
    than the 5x5 map the 5x5 conv needs; there the pool is adaptive to 5x5 instead, so the
    head trains at every size the network accepts. From 17x17 up it is exactly the
    paper's (and torchvision's) head. Children: ``conv0``, ``conv1``, ``fc``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = inception_conv(in_channels, 128, 1)
        self.conv1 = inception_conv(128, 768, 5, padding=0)
        self.fc = nn.Linear(768, num_classes)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= 17:
            return F.avg_pool2d(x, kernel_size=5, stride=3)
        return F.adaptive_avg_pool2d(x, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------------------------------
# Input normalization and initialization shared by both networks
# ---------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_to_inception_input(x: torch.Tensor) -> torch.Tensor:
    """Turn an RGB batch normalized with the ImageNet mean and std into the ``(v - 0.5) / 0.5``
    normalization Google's original Inception weights expect (torchvision's
    ``transform_input``): ``x * std / 0.5 + (mean - 0.5) / 0.5`` per channel."""
    # the constants are computed in Python floats (double), as torchvision does, so both
    # give bit-identical inputs
    scale = x.new_tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift


def init_inception_weights(model: nn.Module, std: float) -> None:
    """Normal weights with standard deviation ``std`` for every conv and linear layer
    (torchvision's scheme for both networks); batch norm starts as the identity.

    torchvision truncates its normal at +-2 in absolute value, which for std 0.1 or less is
    20 standard deviations or more: in effect an untruncated normal, drawn here directly
    (the inverse-CDF sampling of ``nn.init.trunc_normal_`` is slow on CPU).
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
