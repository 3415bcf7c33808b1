"""DenseNet: Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional
Networks", CVPR 2017.

Dense blocks (every layer sees the concatenation of all earlier maps of its block, see
:mod:`cnnzoo.layers.dense`) alternate with transition layers that halve the spatial size.

ImageNet models (DenseNet-BC, paper Table 1): a 7x7/2 conv with ``2k`` channels and a 3x3/2
max pool, four dense blocks with bottleneck layers, compression 0.5 in the transitions, a
final BN-ReLU, global average pooling and a linear classifier.

=============  ================  ============  ==============
model          layers per block  growth rate   stem channels
=============  ================  ============  ==============
densenet121    6, 12, 24, 16     32            64
densenet169    6, 12, 32, 32     32            64
densenet201    6, 12, 48, 32     32            64
densenet161    6, 12, 36, 24     48            96
=============  ================  ============  ==============

CIFAR models (section 4.2): a 3x3 conv (16 channels, or 2k for DenseNet-BC) without pooling,
three dense blocks on 32x32, 16x16 and 8x8 maps, then BN-ReLU, global pooling and a linear
classifier. Depth L counts the convs and the classifier: ``L = 3n + 4`` with ``n`` layers per
block, or ``L = 6n + 4`` with bottlenecks (two convs per layer).

=====================  ================  ======  ==========  ===========  ===========
model                  layers per block  k       bottleneck  compression  stem chans
=====================  ================  ======  ==========  ===========  ===========
densenet40_k12         12, 12, 12        12      no          1.0          16
densenet_bc_100_k12    16, 16, 16        12      yes         0.5          24
=====================  ================  ======  ==========  ===========  ===========

Cost: parameters and MACs are sums over the layers of :mod:`cnnzoo.layers.dense` (a
bottleneck layer with ``c`` input channels at H x W costs ``H * W * (4k * c + 9 * 4k * k)``
MACs), plus the stem conv and the classifier.

The module names follow torchvision (``features.conv0``, ``features.denseblock1.denselayer1
.norm1``, ``features.transition1.conv``, ``features.norm5``); only the classifier differs
(``head.fc`` here, ``classifier`` there), and :attr:`DenseNet.torchvision_renames` maps it,
as well as the ``norm.1``-style keys of checkpoints saved by old torchvision versions.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import nn

from cnnzoo.layers.dense import DEFAULT_BN_SIZE, DenseBlock, Transition, compressed_channels
from cnnzoo.layers.heads import ClassifierHead
from cnnzoo.models._base import Classifier, FeatureInfo, he_normal_init
from cnnzoo.models._register import register_model, torchvision_source
from cnnzoo.models.convolutionalize import pooled_linear_convolutions

__all__ = ["CONFIGS", "DenseNet"]

PAPER = "Huang, Liu, van der Maaten, Weinberger, Densely Connected Convolutional Networks"

# variant -> (layers per block, growth rate k, stem channels, bottleneck, compression theta, stem)
CONFIGS: dict[str, dict[str, Any]] = {
    "densenet121": dict(block_config=(6, 12, 24, 16), growth_rate=32, num_init_features=64),
    "densenet161": dict(block_config=(6, 12, 36, 24), growth_rate=48, num_init_features=96),
    "densenet169": dict(block_config=(6, 12, 32, 32), growth_rate=32, num_init_features=64),
    "densenet201": dict(block_config=(6, 12, 48, 32), growth_rate=32, num_init_features=64),
    "densenet40_k12": dict(
        block_config=(12, 12, 12), growth_rate=12, num_init_features=16,
        bottleneck=False, compression=1.0, stem="cifar",
    ),
    "densenet_bc_100_k12": dict(
        block_config=(16, 16, 16), growth_rate=12, num_init_features=24,
        bottleneck=True, compression=0.5, stem="cifar",
    ),
}

STEMS = ("imagenet", "cifar")


def min_input_size(stem: str, num_transitions: int) -> int:
    """The smallest square input whose last feature map is still at least 1x1.

    Every transition's 2x2 pooling floors, so the first block needs at least
    ``2 ** num_transitions`` pixels. The CIFAR stem keeps the size; the ImageNet stem
    (7x7/2 conv, 3x3/2 max pool, both padded) maps ``s`` to ``ceil(s / 4)``.
    """
    first_block = 2**num_transitions
    return first_block if stem == "cifar" else 4 * (first_block - 1) + 1


class DenseNet(Classifier):
    """A DenseNet (-B with ``bottleneck``, -C with ``compression < 1``).

    Args:
        block_config: number of dense layers in each block.
        growth_rate: k, the maps each dense layer adds.
        num_init_features: channels of the stem conv (``2k`` in DenseNet-BC).
        bottleneck: BN-ReLU-Conv1x1(``bn_size * k``) before each 3x3 conv (DenseNet-B).
        compression: theta; a transition maps ``m`` channels to ``floor(theta * m)``.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or ``"cifar"``
            (one 3x3 conv, stride 1).
        bn_size: width of the bottleneck in multiples of k (4 in the paper).
        drop_rate: dropout after every conv of the dense layers and transitions.
        memory_efficient: gradient checkpointing in the dense layers (same outputs and
            gradients, much less activation memory, about one extra forward of compute).
        num_classes / in_chans: classifier outputs and image channels.

    Stages of :meth:`forward_features`: the stem (ImageNet stem only, stride 2, after
    ReLU), then each dense block's output (the concatenation, before the next transition);
    the last block's output is taken after the final BN-ReLU, which is what the head pools.
    """

    head_names = ("head",)
    classifier_name, global_pool_name = "head.fc", "head.pool"

    torchvision_renames = (
        (r"^classifier\.", "head.fc."),
        # Checkpoints from torchvision < 0.3 name "norm.1" what is now "norm1".
        (r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2."),
    )

    def __init__(
        self,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        growth_rate: int = 32,
        num_init_features: int = 64,
        bottleneck: bool = True,
        compression: float = 0.5,
        stem: str = "imagenet",
        bn_size: int = DEFAULT_BN_SIZE,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.min_input_size = min_input_size(stem, len(block_config) - 1)

        layers = self._stem(stem, in_chans, num_init_features)
        # Stage taps: (child of `features` that ends the stage, what the stage returns).
        taps: list[tuple[str, FeatureInfo]] = []
        if stem == "imagenet":
            taps.append(("relu0", FeatureInfo(num_init_features, 2, "stem")))
        channels = self._add_blocks(
            layers, taps, block_config, num_init_features, stride=4 if stem == "imagenet" else 1,
            transition=lambda m: Transition(m, compressed_channels(m, compression), drop_rate),
            block=lambda n, c: DenseBlock(
                n, c, growth_rate, bottleneck=bottleneck, bn_size=bn_size,
                drop_rate=drop_rate, memory_efficient=memory_efficient,
            ),
        )
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(channels, num_classes)
        self._stage_ends = {name for name, _ in taps}
        self.feature_info = [info for _, info in taps]
        self._init_weights()

    @staticmethod
    def _add_blocks(
        layers: OrderedDict[str, nn.Module],
        taps: list[tuple[str, FeatureInfo]],
        block_config: tuple[int, ...],
        channels: int,
        stride: int,
        block: Callable[[int, int], DenseBlock],
        transition: Callable[[int], Transition],
    ) -> int:
        """Append dense blocks and the transitions between them, then the final BN-ReLU;
        record a stage tap after each block. Returns the channels of the last map."""
        for index, num_layers in enumerate(block_config, start=1):
            layers[f"denseblock{index}"] = block(num_layers, channels)
            channels = layers[f"denseblock{index}"].out_channels
            if index < len(block_config):
                taps.append((f"denseblock{index}", FeatureInfo(channels, stride, f"denseblock{index}")))
                layers[f"transition{index}"] = transition(channels)
                channels = layers[f"transition{index}"].out_channels
                stride *= 2
        # Pre-activation layers leave the last block's output un-normalized: one more BN-ReLU
        # (torchvision's "norm5"; the number follows the stem's "norm0").
        last = len(block_config) + 1
        layers[f"norm{last}"] = nn.BatchNorm2d(channels)
        layers[f"relu{last}"] = nn.ReLU(inplace=True)
        taps.append((f"relu{last}", FeatureInfo(channels, stride, f"denseblock{len(block_config)}")))
        return channels

    @staticmethod
    def _stem(stem: str, in_chans: int, channels: int) -> OrderedDict[str, nn.Module]:
        if stem == "cifar":
            # Paper, section 4.2: "a convolution with 16 (or twice the growth rate for
            # DenseNet-BC) output channels"; the first dense layer's BN-ReLU follows it.
            return OrderedDict(conv0=nn.Conv2d(in_chans, channels, 3, padding=1, bias=False))
        return OrderedDict(
            conv0=nn.Conv2d(in_chans, channels, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(channels),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),
        )

    def _init_weights(self) -> None:
        # He initialization (the paper follows He et al., 2015), fan-in as torchvision's.
        he_normal_init(self, mode="fan_in")
        nn.init.zeros_(self.head.fc.bias)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        stages = []
        for name, module in self.features.named_children():
            x = module(x)
            if name in self._stage_ends:
                stages.append(x)
        return stages

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def head_convolutions(self) -> list[nn.Module]:
        """The pooled linear head as a 1x1 convolution (and its dropout)."""
        return pooled_linear_convolutions(self.head.dropout, self.head.fc)


def _build(variant: str, **kwargs: Any) -> DenseNet:
    return DenseNet(**CONFIGS[variant], **kwargs)


# The authors' own ImageNet figures: top-1 error of their Torch models, 224x224 single crop,
# from the table "Results on ImageNet and Pretrained Models" of their README
# (github.com/liuzhuang13/DenseNet); torchvision's weights score 0.6 to 0.8 points lower.
AUTHORS_TOP1_ERROR = {"densenet121": 25.0, "densenet169": 23.6, "densenet201": 22.5, "densenet161": 22.2}
AUTHORS_SOURCE = "Huang et al., github.com/liuzhuang13/DenseNet README: Torch model, top-1 error {}%, 224x224 1-crop"


def _authors(variant: str) -> dict[str, Any]:
    """The authors' top-1 (100 minus their error) and its source, as ModelInfo's paper fields."""
    error = AUTHORS_TOP1_ERROR[variant]
    return {"paper_top1": round(100 - error, 2), "paper_source": AUTHORS_SOURCE.format(error)}


@register_model(
    "densenet121", family="densenet", paper=PAPER, year=2017, default_input=(3, 224, 224),
    min_input_size=29, params=7_978_856, macs=2_834_000_000, top1=74.434,
    source=torchvision_source("DenseNet121_Weights.IMAGENET1K_V1"), **_authors("densenet121"),
)
def densenet121(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet-121 (DenseNet-BC, k = 32, blocks 6-12-24-16)."""
    return _build("densenet121", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)


@register_model(
    "densenet161", family="densenet", paper=PAPER, year=2017, default_input=(3, 224, 224),
    min_input_size=29, params=28_681_000, macs=7_728_000_000, top1=77.138,
    source=torchvision_source("DenseNet161_Weights.IMAGENET1K_V1"), **_authors("densenet161"),
)
def densenet161(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet-161 (DenseNet-BC, k = 48, blocks 6-12-36-24, 96 stem channels)."""
    return _build("densenet161", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)


@register_model(
    "densenet169", family="densenet", paper=PAPER, year=2017, default_input=(3, 224, 224),
    min_input_size=29, params=14_149_480, macs=3_360_000_000, top1=75.6,
    source=torchvision_source("DenseNet169_Weights.IMAGENET1K_V1"), **_authors("densenet169"),
)
def densenet169(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet-169 (DenseNet-BC, k = 32, blocks 6-12-32-32)."""
    return _build("densenet169", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)


@register_model(
    "densenet201", family="densenet", paper=PAPER, year=2017, default_input=(3, 224, 224),
    min_input_size=29, params=20_013_928, macs=4_291_000_000, top1=76.896,
    source=torchvision_source("DenseNet201_Weights.IMAGENET1K_V1"), **_authors("densenet201"),
)
def densenet201(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet-201 (DenseNet-BC, k = 32, blocks 6-12-48-32)."""
    return _build("densenet201", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)


# CIFAR-10 numbers: Huang et al. 2017, Table 2 (params rounded to 0.1M there; top-1 is
# 100 minus the C10+ error, i.e. with the standard translation/mirroring augmentation).
@register_model(
    "densenet40_k12", family="densenet", paper=PAPER, year=2017, default_input=(3, 32, 32),
    min_input_size=4, params=1_000_000, top1=round(100 - 5.24, 2), dataset="CIFAR-10",
    source="Huang et al. 2017, Table 2: DenseNet (k=12), depth 40, 1.0M params, 5.24% C10+ error",
)
def densenet40_k12(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet (L = 40, k = 12) for CIFAR: no bottleneck, no compression."""
    return _build("densenet40_k12", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)


@register_model(
    "densenet_bc_100_k12", family="densenet", paper=PAPER, year=2017, default_input=(3, 32, 32),
    min_input_size=4, params=800_000, top1=round(100 - 4.51, 2), dataset="CIFAR-10",
    source="Huang et al. 2017, Table 2: DenseNet-BC (k=12), depth 100, 0.8M params, 4.51% C10+ error",
)
def densenet_bc_100_k12(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet:
    """DenseNet-BC (L = 100, k = 12) for CIFAR: bottleneck layers and compression 0.5."""
    return _build("densenet_bc_100_k12", num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient)
