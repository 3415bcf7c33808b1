"""SqueezeNet (Iandola, Han, Moskewicz, Ashraf, Dally and Keutzer, "SqueezeNet: AlexNet-level
accuracy with 50x fewer parameters and <0.5MB model size", 2016).

The paper's three strategies: replace most 3x3 filters by 1x1 ones, feed the remaining 3x3
filters few channels (the squeeze layer of the :class:`~cnnzoo.layers.fire.Fire` module),
and downsample late so the convolutions work on large maps. There is no fully connected
layer: conv10 is a 1x1 convolution with one filter per class, and global average pooling
turns its score maps into logits (the fully convolutional head of the CS-568 notes), so
the network takes any input size above its minimum.

* ``squeezenet1_0``: Table 1 of the paper, 7x7 conv1 with 96 filters; 1,248,424 parameters.
* ``squeezenet1_1``: the authors' v1.1 (SqueezeNet repository), 3x3 conv1 with 64 filters
  and earlier pooling: "2.4x less computation" for the same accuracy by the authors' count
  (2.35x in multiply-adds); 1,235,496 parameters.

Both keep torchvision's layout (``features.N``, ``classifier.1`` = conv10), so its
checkpoints load as is.
"""

from __future__ import annotations

import copy
from typing import NamedTuple, Sequence

import torch
from torch import nn

from cnnzoo.layers.fire import Fire
from cnnzoo.models._base import Classifier, FeatureInfo, forward_with_taps
from cnnzoo.models._register import register_model, torchvision_source

__all__ = ["SqueezeNet", "SqueezeNetConfig", "squeezenet1_0", "squeezenet1_1"]

PAPER = (
    "Iandola, Han, Moskewicz, Ashraf, Dally and Keutzer, "
    "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"
)

POOL = "pool"  # 3x3 / stride-2 max-pool
FireSpec = tuple[int, int, int]  # (squeeze s, expand e1, expand e3)


class SqueezeNetConfig(NamedTuple):
    stem_channels: int
    stem_kernel: int
    body: Sequence[FireSpec | str]
    min_input_size: int


# Iandola et al. 2016, Table 1: conv1, maxpool1, fire2-4, maxpool4, fire5-8, maxpool8, fire9.
SQUEEZENET_1_0 = SqueezeNetConfig(
    stem_channels=96, stem_kernel=7, min_input_size=21,
    body=(POOL, (16, 64, 64), (16, 64, 64), (32, 128, 128),
          POOL, (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256),
          POOL, (64, 256, 256)),
)
# SqueezeNet v1.1 (the authors' repository): the pools move to after conv1, fire3, fire5.
SQUEEZENET_1_1 = SqueezeNetConfig(
    stem_channels=64, stem_kernel=3, min_input_size=17,
    body=(POOL, (16, 64, 64), (16, 64, 64),
          POOL, (32, 128, 128), (32, 128, 128),
          POOL, (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)),
)


class SqueezeNet(Classifier):
    """SqueezeNet from a config: stem conv (stride 2), then Fire modules and max-pools.

    ``features`` is flat as in torchvision; ``classifier`` is dropout, conv10 (1x1, one
    filter per class), ReLU and global average pooling. Stages are the deepest map at each
    resolution: conv1 (stride 2) and the module before each later pool, ending with fire9
    (stride 16; SqueezeNet never pools a fourth time).

    Args:
        config: :data:`SQUEEZENET_1_0` or :data:`SQUEEZENET_1_1`.
        num_classes, in_chans: output classes and input channels.
        dropout: dropout before conv10 (50% in the paper, after fire9).
    """

    head_names = ("classifier",)
    classifier_name = "classifier.1"  # conv10, one 1x1 filter per class

    def __init__(
        self,
        config: SqueezeNetConfig = SQUEEZENET_1_0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_chans)
        self.min_input_size = config.min_input_size
        channels, stride = config.stem_channels, 2
        modules: list[nn.Module] = [
            nn.Conv2d(in_chans, channels, config.stem_kernel, stride=2),  # "valid", as in the paper
            nn.ReLU(inplace=True),
        ]
        self.feature_info, self._taps = [], []
        stage_name = "conv1"
        fire_index = 2  # the paper numbers the Fire modules fire2 ... fire9
        for item in config.body:
            if item == POOL:
                self._taps.append(len(modules) - 1)
                self.feature_info.append(FeatureInfo(channels, stride, stage_name))
                # ceil_mode keeps the border pixels a floor division would drop (Caffe's pooling).
                modules.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
                stride *= 2
            else:
                fire = Fire(channels, *item)
                modules.append(fire)
                channels, stage_name = fire.out_channels, f"fire{fire_index}"
                fire_index += 1
        self._taps.append(len(modules) - 1)
        self.feature_info.append(FeatureInfo(channels, stride, stage_name))
        self.features = nn.Sequential(*modules)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(channels, num_classes, kernel_size=1),  # conv10: K score maps
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),  # global average pooling over each score map
        )
        self._init_weights()

    def _init_weights(self) -> None:
        conv10 = self.classifier[1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if module is conv10:
                    # Small scores at the start, as the authors' Caffe definition does.
                    nn.init.normal_(module.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_with_taps(self.features, x, self._taps)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(x), 1)

    def head_convolutions(self) -> list[nn.Module]:
        """Fully convolutional already: dropout, conv10 and its ReLU, without the global pooling."""
        return [copy.deepcopy(layer) for layer in list(self.classifier)[:-1]]


@register_model(
    "squeezenet1_0", family="squeezenet", paper=PAPER, year=2016,
    default_input=(3, 224, 224), min_input_size=SQUEEZENET_1_0.min_input_size,
    params=1_248_424, macs=819_000_000, top1=58.092, dataset="ImageNet-1k",
    source=torchvision_source("SqueezeNet1_0_Weights.IMAGENET1K_V1"),
)
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.0 (Table 1 of the paper)."""
    return SqueezeNet(SQUEEZENET_1_0, num_classes, in_chans, dropout)


@register_model(
    "squeezenet1_1", family="squeezenet", paper=PAPER, year=2016,
    default_input=(3, 224, 224), min_input_size=SQUEEZENET_1_1.min_input_size,
    params=1_235_496, macs=349_000_000, top1=58.178, dataset="ImageNet-1k",
    source=torchvision_source("SqueezeNet1_1_Weights.IMAGENET1K_V1"),
)
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.1: the accuracy of 1.0 with 2.35x fewer multiply-adds."""
    return SqueezeNet(SQUEEZENET_1_1, num_classes, in_chans, dropout)
