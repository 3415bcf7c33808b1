"""Residual blocks (He et al. 2016), their plain twins, and the ResNeXt bottleneck (Xie et al. 2017).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016: instead of
asking a few stacked layers to fit a mapping H(x) directly, let them fit the residual
F(x) = H(x) - x and add the input back through a shortcut: ``y = relu(F(x) + shortcut(x))``.
A *plain* network stacks the very same layers without the addition (``shortcut=False``);
the paper's point is that deeper plain nets train *worse* (the degradation problem: a
56-layer plain net has higher training error than a 20-layer one on CIFAR-10, plain-34 is
worse than plain-18 on ImageNet), while deeper residual nets train better.

Shortcuts where the shape changes (paper section 3.3 and Table 3):

* option A: identity on a stride-s subsampled input with zero channels appended; no
  parameters, no multiply-adds (the CIFAR nets and the plain-vs-residual comparison);
* option B: a 1x1 convolution + BN *projection* ``W_s x`` only where the shape changes,
  identity elsewhere (torchvision's ImageNet ResNets; the module is named ``downsample``);
* option C: a projection on every block.

Costs, for a block with input C_in x H x W, output stride s, H' = H / s (BN adds 2 learned
parameters per channel, ignored in the MAC counts):

=====================  ==========================================  =============================================
block                  weights                                     multiply-adds
=====================  ==========================================  =============================================
BasicBlock (3x3, 3x3)  9 C_in C + 9 C^2                            H'W' (9 C_in C + 9 C^2)
Bottleneck (v1.5)      C_in w + 9 w^2 / g + 4 C w,                 H W C_in w + H'W' (9 w^2 / g + 4 C w)
                       w = floor(C * base_width / 64) * g
projection (B, C)      C_in C_out                                  H'W' C_in C_out
zero-pad (A)           0                                           0
=====================  ==========================================  =============================================

The plain twin has exactly the block's weights minus the shortcut's.

Stochastic depth (Huang et al. 2016, :mod:`cnnzoo.layers.stochastic_depth`): with
``drop_path=p`` a block drops F(x) for each training sample with probability p, leaving
``act(shortcut(x))``, and scales the kept F(x) by ``1 / (1 - p)``; a plain block has no
shortcut to fall back on and refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, ModuleFactory
from cnnzoo.layers.stochastic_depth import StochasticDepth

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResidualBlock",
    "ShortcutType",
    "ZeroPadShortcut",
    "bottleneck_width",
    "check_shortcut_type",
    "make_shortcut",
    "residual_stage",
]

ShortcutType = Literal["A", "B", "C"]
SHORTCUT_TYPES = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and append zero channels; no parameters.

    Equivalent to a fixed 1x1 convolution of stride s whose weight is the identity matrix
    padded with zero rows (He et al. 2016, sec. 3.3, "the shortcut still performs identity
    mapping, with extra zero entries padded for increasing dimensions"). The zeros go after
    the input channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"a zero-padding shortcut cannot reduce channels ({in_channels} -> {out_channels}); "
                "use a projection shortcut (shortcut_type='B')"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dimensions first: (W_left, W_right, H_top, H_bottom, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def check_shortcut_type(shortcut_type: str) -> None:
    """Raise ``ValueError`` unless ``shortcut_type`` is "A", "B" or "C" (He et al. 2016, sec. 3.3)."""
    if shortcut_type not in SHORTCUT_TYPES:
        raise ValueError(f"shortcut_type must be one of {SHORTCUT_TYPES}, got {shortcut_type!r}")


def make_shortcut(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    shortcut_type: ShortcutType = "B",
    norm_layer: ModuleFactory = nn.BatchNorm2d,
) -> nn.Module:
    """The shortcut branch of a block: identity, a zero-pad (A) or a 1x1 projection (B, C)."""
    check_shortcut_type(shortcut_type)
    shape_changes = stride != 1 or in_channels != out_channels
    if shortcut_type == "C" or (shortcut_type == "B" and shape_changes):
        return ConvNormAct(in_channels, out_channels, 1, stride=stride, padding=0, norm_layer=norm_layer, act_layer=None)
    if shape_changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()


def bottleneck_width(planes: int, cardinality: int = 1, base_width: int = 64) -> int:
    """Channels of a bottleneck's 3x3 conv: ``floor(planes * base_width / 64) * cardinality``.

    ResNet (cardinality 1, base width 64) gives ``planes``; ResNeXt-50 32x4d gives
    ``floor(64 * 4 / 64) * 32 = 128`` in its first stage (Xie et al. 2017, Table 1).
    """
    width = planes * base_width // 64 * cardinality
    if width < 1:
        raise ValueError(
            f"planes={planes}, base_width={base_width}, cardinality={cardinality} leave the 3x3 conv "
            "no channels: planes * base_width must be at least 64"
        )
    return width


class ResidualBlock(nn.Module):
    """``act(drop(F(x)) + shortcut(x))``, or ``act(F(x))`` for the plain twin (``shortcut=False``).

    Subclasses set ``in_channels`` / ``out_channels``, build the residual branch F
    (``residual``), name its last normalization (``last_norm``) and then call
    :meth:`add_shortcut_and_act`. The shortcut module is ``downsample`` (torchvision's name):
    a projection, a :class:`ZeroPadShortcut` or an identity; the plain twin has none.
    ``stochastic_depth`` drops F(x) per sample in training (the identity when ``drop_path=0``
    and in evaluation; no parameters, so the state dict is torchvision's either way).
    """

    expansion = 1
    downsample: nn.Module | None

    def add_shortcut_and_act(
        self, stride: int, shortcut: bool, shortcut_type: ShortcutType, norm_layer: ModuleFactory,
        drop_path: float = 0.0,
    ) -> None:
        """Called by subclasses after building the residual branch (so modules print in order)."""
        check_shortcut_type(shortcut_type)  # also for the plain twin, which would ignore it
        if drop_path and not shortcut:
            raise ValueError("drop_path needs a shortcut: a plain block has no residual branch to drop")
        self.shortcut = shortcut
        self.stochastic_depth = StochasticDepth(drop_path)
        self.downsample = (
            make_shortcut(self.in_channels, self.out_channels, stride, shortcut_type, norm_layer) if shortcut else None
        )
        self.act = nn.ReLU(inplace=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked layers F(x)."""
        raise NotImplementedError

    @property
    def last_norm(self) -> nn.Module:
        raise NotImplementedError

    def zero_init_last_norm(self) -> None:
        """Start the block as an identity: F(x) = 0 until the last BN's scale learns to grow
        (Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 5.1)."""
        nn.init.zeros_(self.last_norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stochastic_depth(self.residual(x))
        if self.downsample is not None:
            out += self.downsample(x)  # the only difference between a residual and a plain block
        return self.act(out)  # ReLU after the addition


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers (ReLU between them, ReLU after the addition); ResNet-18/34 and
    the CIFAR ResNets (He et al. 2016, Fig. 2 and Fig. 5 left).

    ``forward`` is the textbook block::

        identity = x
        out = relu(bn1(conv1(x)))
        out = bn2(conv2(out))
        out += identity          # left out by the plain twin
        out = relu(out)

    Children: ``conv1`` (conv/bn/act), ``conv2`` (conv/bn), ``stochastic_depth``, ``downsample``, ``act``.
    Weights: ``9 C_in C + 9 C^2`` plus the shortcut's.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: bool = True,
        shortcut_type: ShortcutType = "B",
        cardinality: int = 1,
        base_width: int = 64,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        drop_path: float = 0.0,
    ) -> None:
        if cardinality != 1 or base_width != 64:
            raise ValueError("BasicBlock has no cardinality or base width (use Bottleneck for ResNeXt)")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, planes
        self.conv1 = ConvNormAct(in_channels, planes, 3, stride=stride, norm_layer=norm_layer)
        self.conv2 = ConvNormAct(planes, planes, 3, norm_layer=norm_layer, act_layer=None)
        self.add_shortcut_and_act(stride, shortcut, shortcut_type, norm_layer, drop_path)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))

    @property
    def last_norm(self) -> nn.Module:
        return self.conv2.bn


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4) conv-BN layers; ResNet-50/101/152 (He et al. 2016,
    Fig. 5 right) and, with ``cardinality`` > 1, the ResNeXt block (Xie et al., "Aggregated
    Residual Transformations for Deep Neural Networks", CVPR 2017, Fig. 3c).

    The stride sits on the 3x3 conv ("ResNet v1.5", as torchvision; the paper strides the
    first 1x1, which costs fewer MACs but discards 3/4 of the input before looking at it).
    ResNeXt splits the 3x3 conv into ``cardinality`` groups of ``base_width * planes / 64``
    channels each: C parallel paths of the same shape, summed by the last 1x1 conv. As a
    grouped conv the 3x3 has ``9 w^2 / C`` weights, 1/C of a dense one.

    Children: ``conv1``, ``conv2`` (the grouped 3x3), ``conv3`` (conv/bn, no activation),
    ``stochastic_depth``, ``downsample``, ``act``. Output channels: ``4 * planes``.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: bool = True,
        shortcut_type: ShortcutType = "B",
        cardinality: int = 1,
        base_width: int = 64,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, planes * self.expansion
        self.cardinality = cardinality
        self.width = width = bottleneck_width(planes, cardinality, base_width)
        self.conv1 = ConvNormAct(in_channels, width, 1, norm_layer=norm_layer)
        self.conv2 = ConvNormAct(width, width, 3, stride=stride, groups=cardinality, norm_layer=norm_layer)
        self.conv3 = ConvNormAct(width, self.out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.add_shortcut_and_act(stride, shortcut, shortcut_type, norm_layer, drop_path)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))

    @property
    def last_norm(self) -> nn.Module:
        return self.conv3.bn


def residual_stage(
    block: type[ResidualBlock],
    in_channels: int,
    planes: int,
    depth: int,
    stride: int = 1,
    drop_paths: Sequence[float] | None = None,
    **block_options: Any,
) -> nn.Sequential:
    """``depth`` blocks; the first one changes the stride and the width (its shortcut adapts
    the input), the others keep them. Children are named ``0``, ``1``, ... as torchvision's.
    ``drop_paths``: each block's stochastic-depth probability (none dropped by default)."""
    if depth < 1:
        raise ValueError(f"a residual stage needs at least one block, got depth={depth}")
    drop_paths = [0.0] * depth if drop_paths is None else list(drop_paths)
    if len(drop_paths) != depth:
        raise ValueError(f"{len(drop_paths)} drop probabilities for a stage of {depth} blocks")
    blocks = [block(in_channels, planes, stride, drop_path=drop_paths[0], **block_options)]
    for drop_path in drop_paths[1:]:
        blocks.append(block(blocks[-1].out_channels, planes, 1, drop_path=drop_path, **block_options))
    return nn.Sequential(*blocks)
