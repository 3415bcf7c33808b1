"""VGG (Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015).

Only 3x3 convolutions (stride 1, padding 1) in five stages, each closed by a 2x2 / stride-2
max-pool, then AlexNet's fully connected head 4096 - 4096 - 1000. Stacking small kernels
is the paper's point (section 2.3): two 3x3 convs see a 5x5 window with 9 + 9 = 18 weights
per channel pair instead of 25, three see 7x7 with 27 instead of 49, five see 11x11 with
45 instead of AlexNet's 121, and every conv adds a ReLU.

Cost of each conv: ``H * W * C_out * 9 * C_in`` multiply-adds; VGG-16 has 138,357,544
parameters (102,764,544 of them in fc6 alone: 512 * 7 * 7 * 4096 + 4096).

The ``_bn`` variants put batch normalization after every convolution (not in the paper;
torchvision's variants, which keep the conv biases).

``small_input=True`` adapts the net to 28x28 and 32x32 images (Fashion-MNIST, CIFAR), the
usual CIFAR form of VGG, chosen here (the paper trains on 224x224 only): the pools round
up (28 -> 14 -> 7 -> 4 -> 2 -> 1), fc6 reads the 1x1 pool5 map itself instead of a 7x7
copy of it (which would give fc6 102.8 M weights for 512 numbers), and fc6 and fc7 are as
wide as that map (512, not 4096). The convolutions are the paper's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cnnzoo.layers import ConvNormAct
from cnnzoo.layers.heads import FC_WIDTH, fc_classifier
from cnnzoo.models._base import Classifier, FeatureInfo, forward_with_taps, he_normal_init
from cnnzoo.models._register import register_model, torchvision_source
from cnnzoo.models.convolutionalize import fc_stack_convolutions

__all__ = [
    "STAGE_WIDTHS", "VGG", "VGG_CONFIGS",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
]

PAPER = "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition"

# Table 1 of the paper: convolutions per stage for configurations A, B, D and E.
# (C, with 1x1 convs in the last three stages, and A-LRN are not built.)
VGG_CONFIGS: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),  # A
    13: (2, 2, 2, 2, 2),  # B
    16: (2, 2, 3, 3, 3),  # D
    19: (2, 2, 4, 4, 4),  # E
}
STAGE_WIDTHS = (64, 128, 256, 512, 512)  # "conv3-64" ... "conv3-512"
POOL5_SIZE = 7  # 224 / 32: fc6 reads 512 * 7 * 7 = 25088 inputs
SMALL_INPUT_POOL5_SIZE = 1  # small_input: 28 or 32 pixels pooled five times round up to 1

# torchvision's published numbers (fixtures/torchvision/metadata.json, torchvision 0.28
# VGG*_Weights.IMAGENET1K_V1): parameters, multiply-adds (its "GFLOPS") and top-1 %.
PUBLISHED = {
    "vgg11": (132_863_336, 7_609_000_000, 69.02),
    "vgg11_bn": (132_868_840, 7_609_000_000, 70.37),
    "vgg13": (133_047_848, 11_308_000_000, 69.928),
    "vgg13_bn": (133_053_736, 11_308_000_000, 71.586),
    "vgg16": (138_357_544, 15_470_000_000, 71.592),
    "vgg16_bn": (138_365_992, 15_470_000_000, 73.36),
    "vgg19": (143_667_240, 19_632_000_000, 72.376),
    "vgg19_bn": (143_678_248, 19_632_000_000, 74.218),
}
MIN_INPUT = 32  # five 2x2 pools without padding need 2**5 pixels
SMALL_INPUT_MIN = 1  # pools that round up keep one pixel of a 1x1 map


class VGG(Classifier):
    """VGG from a depth-per-stage table.

    Layout as torchvision: ``features`` (flat: conv, [bn], ReLU, ..., max-pool per stage),
    ``avgpool`` (adaptive 7x7, the identity at 224x224) and ``classifier`` (fc6, fc7, fc8
    at positions 0, 3, 6). Stages are the five pooled maps, pool1 ... pool5, at strides
    2 ... 32 (the maps an FCN reads, e.g. pool3 / pool4 / pool5).

    Args:
        depths: convolutions per stage (a row of :data:`VGG_CONFIGS`).
        num_classes, in_chans: output classes and input channels.
        batch_norm: batch normalization after every convolution.
        dropout: dropout after fc6 and fc7 (0.5 in the paper).
        small_input: the adaptation to 28x28 / 32x32 images of the module docstring
            (pools that round up, fc6 and fc7 of 512 on the 1x1 pool5 map).
    """

    head_names = ("avgpool", "classifier")
    classifier_name = "classifier.6"  # fc8 (fc_classifier)

    def __init__(
        self,
        depths: Sequence[int] = VGG_CONFIGS[16],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if len(depths) != len(STAGE_WIDTHS):
            raise ValueError(f"VGG has {len(STAGE_WIDTHS)} stages, got {len(depths)} stage depths: {tuple(depths)}")
        self.min_input_size = SMALL_INPUT_MIN if small_input else MIN_INPUT
        modules: list[nn.Module] = []
        self.feature_info, self._taps = [], []
        channels = in_chans
        norm_layer = nn.BatchNorm2d if batch_norm else None
        for stage, (depth, width) in enumerate(zip(depths, STAGE_WIDTHS), start=1):
            for _ in range(depth):
                # The conv keeps its bias even before BN, as torchvision's checkpoints do.
                # The triple's modules are laid out flat to match torchvision's features.N.
                modules += ConvNormAct(
                    channels, width, 3, padding=1, bias=True, norm_layer=norm_layer, act_layer=nn.ReLU
                )
                channels = width
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=small_input))
            self._taps.append(len(modules) - 1)
            self.feature_info.append(FeatureInfo(channels, 2**stage, f"pool{stage}"))
        self.features = nn.Sequential(*modules)
        pool5_size = SMALL_INPUT_POOL5_SIZE if small_input else POOL5_SIZE
        self.avgpool = nn.AdaptiveAvgPool2d(pool5_size)
        fc6_inputs = channels * pool5_size**2
        hidden = fc6_inputs if small_input else FC_WIDTH
        self.classifier = fc_classifier(fc6_inputs, num_classes, hidden=hidden, dropout=dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al. 2015 initialization for the convs (the paper pre-trained the shallow
        # net A to initialize the deeper ones; He init trains them from scratch).
        he_normal_init(self)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)  # the paper's N(0, 10^-2)
                nn.init.zeros_(module.bias)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_with_taps(self.features, x, self._taps)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def head_convolutions(self) -> list[nn.Module]:
        """fc6 as a 7x7 convolution over pool5, fc7 and fc8 as 1x1 ones (Long et al. 2015, section 3.1)."""
        return fc_stack_convolutions(self.avgpool, self.classifier, self.feature_info[-1].channels)


def _published(name: str) -> dict:
    params, macs, top1 = PUBLISHED[name]
    return dict(
        family="vgg", paper=PAPER, year=2015, default_input=(3, 224, 224), min_input_size=MIN_INPUT,
        params=params, macs=macs, top1=top1, dataset="ImageNet-1k",
        source=torchvision_source(f"{name.upper()}_Weights.IMAGENET1K_V1"),
    )


@register_model("vgg11", **_published("vgg11"))
def vgg11(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-11, configuration A."""
    return VGG(VGG_CONFIGS[11], num_classes, in_chans, batch_norm=False, dropout=dropout, small_input=small_input)


@register_model("vgg11_bn", **_published("vgg11_bn"))
def vgg11_bn(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-11 (A) with batch normalization."""
    return VGG(VGG_CONFIGS[11], num_classes, in_chans, batch_norm=True, dropout=dropout, small_input=small_input)


@register_model("vgg13", **_published("vgg13"))
def vgg13(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-13, configuration B."""
    return VGG(VGG_CONFIGS[13], num_classes, in_chans, batch_norm=False, dropout=dropout, small_input=small_input)


@register_model("vgg13_bn", **_published("vgg13_bn"))
def vgg13_bn(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-13 (B) with batch normalization."""
    return VGG(VGG_CONFIGS[13], num_classes, in_chans, batch_norm=True, dropout=dropout, small_input=small_input)


@register_model("vgg16", **_published("vgg16"))
def vgg16(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-16, configuration D."""
    return VGG(VGG_CONFIGS[16], num_classes, in_chans, batch_norm=False, dropout=dropout, small_input=small_input)


@register_model("vgg16_bn", **_published("vgg16_bn"))
def vgg16_bn(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-16 (D) with batch normalization."""
    return VGG(VGG_CONFIGS[16], num_classes, in_chans, batch_norm=True, dropout=dropout, small_input=small_input)


@register_model("vgg19", **_published("vgg19"))
def vgg19(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-19, configuration E."""
    return VGG(VGG_CONFIGS[19], num_classes, in_chans, batch_norm=False, dropout=dropout, small_input=small_input)


@register_model("vgg19_bn", **_published("vgg19_bn"))
def vgg19_bn(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> VGG:
    """VGG-19 (E) with batch normalization."""
    return VGG(VGG_CONFIGS[19], num_classes, in_chans, batch_norm=True, dropout=dropout, small_input=small_input)
