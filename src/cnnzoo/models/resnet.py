"""ResNet and its plain twins, for ImageNet and for CIFAR-10.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

ImageNet (Table 1): a 7x7/2 conv and a 3x3/2 max-pool, four stages of residual blocks at
strides 4, 8, 16, 32 with 64, 128, 256, 512 planes (x4 output channels for bottlenecks),
global average pooling and a 1000-way fc. The layout (and so the state_dict, through
``torchvision_renames``) is torchvision's, including its "v1.5" bottleneck with the stride
on the 3x3 conv; projection shortcuts (option B) where the shape changes.

CIFAR-10 (section 4.2): a 3x3 conv with 16 filters, then three stages of n basic blocks
on 32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters, global average pooling and a
10-way fc: 6n + 2 weighted layers. Shortcuts are identities with zero-padding (option A),
so each residual net has exactly the parameters of its plain twin.

Plain nets (``plain*``) are the same stacks without the shortcut addition. They show the
degradation problem: plain-56 has *higher training error* than plain-20 on CIFAR-10
(Fig. 1, Fig. 6), plain-34 than plain-18 on ImageNet (Table 2: 28.54 vs 27.94 % top-1
error), whereas ResNet-34 beats ResNet-18 (25.03 vs 27.88 %).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct
from cnnzoo.layers.heads import ClassifierHead
from cnnzoo.layers.residual import BasicBlock, Bottleneck, ResidualBlock, ShortcutType, residual_stage
from cnnzoo.layers.stochastic_depth import linear_drop_rates
from cnnzoo.models._base import Classifier, FeatureInfo, he_normal_init
from cnnzoo.models._register import register_model, torchvision_source
from cnnzoo.models.convolutionalize import pooled_linear_convolutions

__all__ = ["ResNet"]

HE_2016 = "He, Zhang, Ren, Sun, Deep Residual Learning for Image Recognition"

# Table 1: blocks per stage (conv2_x .. conv5_x) and the planes of each stage.
IMAGENET_DEPTHS: dict[int, tuple[type[ResidualBlock], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# Section 4.2: n blocks per stage, 16 / 32 / 64 filters, depth 6n + 2.
CIFAR_WIDTHS = (16, 32, 64)
CIFAR_STEM_WIDTH = 16

# A 7x7/2 conv (padding 3), a 3x3/2 max-pool (padding 1) and stride-2 3x3 (padding 1) or
# 1x1 convs all map a 1x1 input to a 1x1 output, so every size works (torchvision lists a
# minimum of 1x1 for its ResNets); the CIFAR nets likewise.
MIN_INPUT_SIZE = 1

Stem = Literal["imagenet", "cifar"]


class ResNet(Classifier):
    """A residual (or, with ``shortcut=False``, plain) network.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        depths: blocks per stage.
        num_classes, in_chans: classes of the fc and channels of the input.
        widths: planes per stage (a bottleneck outputs 4x as many channels).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool; stages at strides 4 .. 32)
            or ``"cifar"`` (3x3 conv at full resolution; stages at strides 1, 2, 4).
        stem_width: channels of the stem conv.
        shortcut: ``False`` builds the plain twin (no shortcut, no addition).
        shortcut_type: ``"A"`` zero-pad, ``"B"`` project where the shape changes,
            ``"C"`` project everywhere (He et al. 2016, Table 3).
        cardinality, base_width: ResNeXt's groups and per-group width of the 3x3 conv.
        zero_init_residual: zero the last BN scale of every block, so each block starts as
            an identity (torchvision's option of the same name).
        drop_rate: dropout before the fc (none in the papers).
        drop_path_rate: stochastic depth (Huang et al. 2016): block i of the N blocks drops
            its residual branch with probability ``drop_path_rate * i / N`` in training
            (:func:`~cnnzoo.layers.stochastic_depth.linear_drop_rates`); refused for plain nets.

    ``feature_info``: for the ImageNet stem, ``stem`` (stride 2, before the max-pool) and
    ``layer1`` .. ``layer4`` (strides 4 .. 32); for the CIFAR stem, ``layer1`` .. ``layer3``
    (strides 1, 2, 4; the stem conv belongs to the first 32x32 stage).
    """

    head_names = ("head",)
    classifier_name, global_pool_name = "head.fc", "head.pool"

    # torchvision names each conv and BN on its own (conv1 / bn1 / ..., downsample.0 / .1);
    # here each conv-BN(-ReLU) is one ConvNormAct (conv1.conv / conv1.bn / ...).
    torchvision_renames = (
        (r"^conv1\.", "stem.conv."),
        (r"^bn1\.", "stem.bn."),
        (r"\.conv(\d)\.weight$", r".conv\1.conv.weight"),
        (r"\.bn(\d)\.", r".conv\1.bn."),
        (r"\.downsample\.0\.", ".downsample.conv."),
        (r"\.downsample\.1\.", ".downsample.bn."),
        (r"^fc\.", "head.fc."),
    )

    def __init__(
        self,
        block: type[ResidualBlock],
        depths: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        widths: tuple[int, ...] = IMAGENET_WIDTHS,
        stem: Stem = "imagenet",
        stem_width: int = 64,
        shortcut: bool = True,
        shortcut_type: ShortcutType = "B",
        cardinality: int = 1,
        base_width: int = 64,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if len(depths) != len(widths):
            raise ValueError(f"{len(depths)} stage depths but {len(widths)} stage widths")
        if zero_init_residual and not shortcut:
            raise ValueError("zero_init_residual needs shortcuts: a plain net would start with all-zero blocks")
        if drop_path_rate and not shortcut:
            raise ValueError("drop_path_rate needs shortcuts: a plain net has no residual branch to drop")
        drop_paths = linear_drop_rates(drop_path_rate, sum(depths))
        self.min_input_size = MIN_INPUT_SIZE

        if stem == "imagenet":
            self.stem = ConvNormAct(in_chans, stem_width, 7, stride=2, padding=3)
            self.maxpool: nn.Module | None = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.feature_info = [FeatureInfo(stem_width, 2, "stem")]
            stride = 4
        elif stem == "cifar":
            self.stem = ConvNormAct(in_chans, stem_width, 3)
            self.maxpool = None
            self.feature_info = []
            stride = 1
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")

        self.stage_names: list[str] = []
        channels = stem_width
        for index, (depth, planes) in enumerate(zip(depths, widths)):
            first_stride = 1 if index == 0 else 2  # the first stage keeps the stem's resolution
            stride *= first_stride
            stage = residual_stage(
                block, channels, planes, depth, first_stride, drop_paths[:depth],
                shortcut=shortcut, shortcut_type=shortcut_type, cardinality=cardinality, base_width=base_width,
            )
            drop_paths = drop_paths[depth:]
            channels = stage[-1].out_channels
            name = f"layer{index + 1}"
            self.add_module(name, stage)
            self.stage_names.append(name)
            self.feature_info.append(FeatureInfo(channels, stride, name))

        self.head = ClassifierHead(channels, num_classes, dropout=drop_rate)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        he_normal_init(self)  # as the paper (sec. 3.4) and torchvision
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, ResidualBlock):
                    module.zero_init_last_norm()

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        if self.maxpool is not None:
            features.append(x)
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            features.append(x)
        return features

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def head_convolutions(self) -> list[nn.Module]:
        """The pooled linear head as a 1x1 convolution (and its dropout)."""
        return pooled_linear_convolutions(self.head.dropout, self.head.fc)


def imagenet_resnet(
    depth: int, num_classes: int, in_chans: int, shortcut_type: ShortcutType = "B",
    zero_init_residual: bool = False, drop_path_rate: float = 0.0, **options: Any,
) -> ResNet:
    """The ImageNet ResNet of Table 1 with ``depth`` layers (18, 34, 50, 101 or 152)."""
    block, depths = IMAGENET_DEPTHS[depth]
    return ResNet(
        block, depths, num_classes, in_chans, shortcut_type=shortcut_type,
        zero_init_residual=zero_init_residual, drop_path_rate=drop_path_rate, **options,
    )


def cifar_resnet(
    depth: int, num_classes: int, in_chans: int, shortcut_type: ShortcutType = "A",
    zero_init_residual: bool = False, drop_path_rate: float = 0.0, **options: Any,
) -> ResNet:
    """The 6n+2-layer CIFAR-10 ResNet (He et al. 2016, sec. 4.2)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock, (n, n, n), num_classes, in_chans, widths=CIFAR_WIDTHS, stem="cifar",
        stem_width=CIFAR_STEM_WIDTH, shortcut_type=shortcut_type, zero_init_residual=zero_init_residual,
        drop_path_rate=drop_path_rate, **options,
    )


# ---------------------------------------------------------------------------------------
# ImageNet ResNets. Parameters, MACs (torchvision's "GFLOPS" are multiply-adds) and
# single-crop top-1 of the torchvision weights whose layout these models share.
# ---------------------------------------------------------------------------------------


@register_model(
    "resnet18", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    params=11_689_512, macs=1_814_000_000, top1=69.758,
    source=torchvision_source("ResNet18_Weights.IMAGENET1K_V1"),
)
def resnet18(num_classes: int = 1000, in_chans: int = 3, shortcut_type: ShortcutType = "B",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """ResNet-18: basic blocks, 2-2-2-2 (He et al. 2016, Table 1)."""
    return imagenet_resnet(18, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model(
    "resnet34", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    params=21_797_672, macs=3_664_000_000, top1=73.314,
    source=torchvision_source("ResNet34_Weights.IMAGENET1K_V1"),
)
def resnet34(num_classes: int = 1000, in_chans: int = 3, shortcut_type: ShortcutType = "B",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """ResNet-34: basic blocks, 3-4-6-3 (He et al. 2016, Table 1)."""
    return imagenet_resnet(34, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model(
    "resnet50", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    params=25_557_032, macs=4_089_000_000, top1=76.13,
    source=torchvision_source("ResNet50_Weights.IMAGENET1K_V1"),
)
def resnet50(num_classes: int = 1000, in_chans: int = 3, shortcut_type: ShortcutType = "B",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """ResNet-50: bottlenecks, 3-4-6-3 (He et al. 2016, Table 1)."""
    return imagenet_resnet(50, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model(
    "resnet101", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    params=44_549_160, macs=7_801_000_000, top1=77.374,
    source=torchvision_source("ResNet101_Weights.IMAGENET1K_V1"),
)
def resnet101(num_classes: int = 1000, in_chans: int = 3, shortcut_type: ShortcutType = "B",
              zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """ResNet-101: bottlenecks, 3-4-23-3 (He et al. 2016, Table 1)."""
    return imagenet_resnet(101, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model(
    "resnet152", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    params=60_192_808, macs=11_514_000_000, top1=78.312,
    source=torchvision_source("ResNet152_Weights.IMAGENET1K_V1"),
)
def resnet152(num_classes: int = 1000, in_chans: int = 3, shortcut_type: ShortcutType = "B",
              zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """ResNet-152: bottlenecks, 3-8-36-3 (He et al. 2016, Table 1)."""
    return imagenet_resnet(152, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


# ---------------------------------------------------------------------------------------
# ImageNet plain nets: Table 1 "FLOPs" (multiply-adds) are those of the plain nets too;
# Table 2 gives 10-crop top-1 error. No parameter count is published for them.
# ---------------------------------------------------------------------------------------

PLAIN_IMAGENET_SOURCE = "He et al. 2016, Table 1 (FLOPs = multiply-adds) and Table 2 (10-crop top-1 error)"


@register_model(
    "plain18", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    macs=1_800_000_000, top1=100 - 27.94, source=PLAIN_IMAGENET_SOURCE,
)
def plain18(num_classes: int = 1000, in_chans: int = 3) -> ResNet:
    """Plain-18: ResNet-18's layers without shortcuts (He et al. 2016, Fig. 3 middle, Table 2)."""
    return imagenet_resnet(18, num_classes, in_chans, shortcut=False)


@register_model(
    "plain34", family="resnet", paper=HE_2016, year=2016, min_input_size=MIN_INPUT_SIZE,
    macs=3_600_000_000, top1=100 - 28.54, source=PLAIN_IMAGENET_SOURCE,
)
def plain34(num_classes: int = 1000, in_chans: int = 3) -> ResNet:
    """Plain-34: ResNet-34's layers without shortcuts (He et al. 2016, Fig. 3 middle, Table 2)."""
    return imagenet_resnet(34, num_classes, in_chans, shortcut=False)


# ---------------------------------------------------------------------------------------
# CIFAR-10 nets (section 4.2). Table 6: parameters (rounded as printed) and test error;
# the plain twins have "exactly the same depth, width, and number of parameters" (sec. 4.2)
# but only training curves (Fig. 6), no tabulated error.
# ---------------------------------------------------------------------------------------

CIFAR = dict(default_input=(3, 32, 32), min_input_size=MIN_INPUT_SIZE, dataset="CIFAR-10")
CIFAR_SOURCE = "He et al. 2016, Table 6 (CIFAR-10; params rounded as printed, top-1 = 100 - error)"
PLAIN_CIFAR_SOURCE = "He et al. 2016, sec. 4.2 (same parameters as the ResNet) and Table 6"


@register_model("resnet20", family="resnet", paper=HE_2016, year=2016, params=270_000, top1=100 - 8.75, source=CIFAR_SOURCE, **CIFAR)
def resnet20(num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "A",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """CIFAR ResNet-20 (n = 3)."""
    return cifar_resnet(20, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model("resnet32", family="resnet", paper=HE_2016, year=2016, params=460_000, top1=100 - 7.51, source=CIFAR_SOURCE, **CIFAR)
def resnet32(num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "A",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """CIFAR ResNet-32 (n = 5)."""
    return cifar_resnet(32, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model("resnet44", family="resnet", paper=HE_2016, year=2016, params=660_000, top1=100 - 7.17, source=CIFAR_SOURCE, **CIFAR)
def resnet44(num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "A",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """CIFAR ResNet-44 (n = 7)."""
    return cifar_resnet(44, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model("resnet56", family="resnet", paper=HE_2016, year=2016, params=850_000, top1=100 - 6.97, source=CIFAR_SOURCE, **CIFAR)
def resnet56(num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "A",
             zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """CIFAR ResNet-56 (n = 9)."""
    return cifar_resnet(56, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model("resnet110", family="resnet", paper=HE_2016, year=2016, params=1_700_000, top1=100 - 6.43, source=CIFAR_SOURCE, **CIFAR)
def resnet110(num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "A",
              zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> ResNet:
    """CIFAR ResNet-110 (n = 18); 6.43 % is the best of 5 runs (mean 6.61 +- 0.16)."""
    return cifar_resnet(110, num_classes, in_chans, shortcut_type, zero_init_residual, drop_path_rate)


@register_model("plain20", family="resnet", paper=HE_2016, year=2016, params=270_000, source=PLAIN_CIFAR_SOURCE, **CIFAR)
def plain20(num_classes: int = 10, in_chans: int = 3) -> ResNet:
    """CIFAR plain-20: ResNet-20 without shortcuts."""
    return cifar_resnet(20, num_classes, in_chans, shortcut=False)


@register_model("plain32", family="resnet", paper=HE_2016, year=2016, params=460_000, source=PLAIN_CIFAR_SOURCE, **CIFAR)
def plain32(num_classes: int = 10, in_chans: int = 3) -> ResNet:
    """CIFAR plain-32: ResNet-32 without shortcuts."""
    return cifar_resnet(32, num_classes, in_chans, shortcut=False)


@register_model("plain44", family="resnet", paper=HE_2016, year=2016, params=660_000, source=PLAIN_CIFAR_SOURCE, **CIFAR)
def plain44(num_classes: int = 10, in_chans: int = 3) -> ResNet:
    """CIFAR plain-44: ResNet-44 without shortcuts."""
    return cifar_resnet(44, num_classes, in_chans, shortcut=False)


@register_model("plain56", family="resnet", paper=HE_2016, year=2016, params=850_000, source=PLAIN_CIFAR_SOURCE, **CIFAR)
def plain56(num_classes: int = 10, in_chans: int = 3) -> ResNet:
    """CIFAR plain-56: ResNet-56 without shortcuts (the deeper curve of Fig. 1)."""
    return cifar_resnet(56, num_classes, in_chans, shortcut=False)


@register_model("plain110", family="resnet", paper=HE_2016, year=2016, params=1_700_000, source=PLAIN_CIFAR_SOURCE, **CIFAR)
def plain110(num_classes: int = 10, in_chans: int = 3) -> ResNet:
    """CIFAR plain-110: ResNet-110 without shortcuts (its error is above 60 %, Fig. 6 caption)."""
    return cifar_resnet(110, num_classes, in_chans, shortcut=False)
