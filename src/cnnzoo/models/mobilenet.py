"""MobileNet v1 (Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto and Adam,
"MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017).

A 3x3 / stride-2 convolution, then 13 depthwise-separable layers (3x3 depthwise conv, then
1x1 pointwise conv, each followed by batch normalization and the activation) with no
pooling in between: where a depthwise conv has stride 2 its pointwise conv doubles the
channels. Global average pooling and one fully connected layer end the network. A 224x224x3
input gives a 7x7x1024 map from the last convolution.

Cost of a depthwise-separable layer with kernel D_K, M input and N output channels on a
D_F x D_F map (paper, eq. 4 and 5)::

    D_K^2 * M * D_F^2  +  M * N * D_F^2      against      D_K^2 * M * N * D_F^2

a reduction factor of ``1/N + 1/D_K^2``: about 8 to 9 times fewer multiply-adds with 3x3
kernels (569M against 4866M for the same network with standard convolutions, Table 4).

Two hyperparameters shrink it (section 3.3 and 3.4):

* the width (depth) multiplier ``alpha`` (``width_mult``) scales every layer's channels;
  cost and parameters fall roughly as ``alpha^2`` (the 1x1 convs, which dominate, exactly so):
  ``alpha = 0.5`` cuts the multiply-adds about 4 times;
* the resolution multiplier ``rho`` is simply the input size: every map scales with it and
  the cost falls as ``rho^2``. Any input works; 224, 192, 160 and 128 are the paper's.

On small images (Fashion-MNIST's 28x28, CIFAR's 32x32) ``stem_stride=1`` keeps the stem at
full resolution, the usual adaptation of an ImageNet net to such inputs: the last map is
2x2 for a 28x28 input instead of 1x1, and the multiply-adds grow four times.

The activation is ReLU6 (``min(max(x, 0), 6)``, the lecture's choice and that of the released
TensorFlow models); the paper's text says ReLU, which ``act_layer=nn.ReLU`` gives.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers import ClassifierHead, ConvNormAct, DepthwiseSeparableConv
from cnnzoo.layers.conv import ModuleFactory
from cnnzoo.models._base import Classifier, FeatureInfo, he_normal_init
from cnnzoo.models._register import register_model
from cnnzoo.models.convolutionalize import pooled_linear_convolutions

__all__ = ["MobileNetV1", "SEPARABLE_LAYERS", "STEM_CHANNELS", "mobilenet_v1", "scale_channels"]

PAPER = "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"

STEM_CHANNELS = 32  # Table 1, "Conv / s2, 3x3x3x32"
# Table 1: (pointwise output channels, depthwise stride) of the 13 separable layers,
# one row per stage (a stage starts where the stride is 2).
SEPARABLE_LAYERS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1)),
    # Table 1 prints "s2" for the last depthwise conv too, but its output stays 7x7: s1.
    ((1024, 2), (1024, 1)),
)


def scale_channels(channels: int, width_mult: float) -> int:
    """The width multiplier: ``alpha * channels``, rounded, at least 1."""
    return max(1, round(channels * width_mult))


class MobileNetV1(Classifier):
    """MobileNet v1 from :data:`SEPARABLE_LAYERS`.

    Children: ``stem`` (:class:`ConvNormAct`), ``stages`` (five ``nn.Sequential`` of
    :class:`DepthwiseSeparableConv`, at strides 2, 4, 8, 16, 32) and ``head``
    (:class:`ClassifierHead`: global average pooling, dropout, fc).

    Args:
        num_classes, in_chans: output classes and input channels.
        width_mult: the width multiplier alpha (1.0, 0.75, 0.5, 0.25 in the paper).
        act_layer: activation after every BN (``nn.ReLU6``; ``nn.ReLU`` for the paper's text).
        dropout: dropout before the fc layer (the paper uses little regularization: 0).
        separable: ``False`` builds Table 4's "Conv MobileNet", each separable layer
            replaced by a standard 3x3 conv of the same shape, to measure the saving.
        stem_stride: the first convolution's stride (Table 1: 2; 1 for small inputs).
    """

    head_names = ("head",)
    classifier_name, global_pool_name = "head.fc", "head.pool"

    min_input_size = 1  # every stride-2 conv pads, so even a 1x1 input keeps one pixel

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        act_layer: ModuleFactory = nn.ReLU6,
        dropout: float = 0.0,
        separable: bool = True,
        stem_stride: int = 2,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        channels = scale_channels(STEM_CHANNELS, width_mult)
        self.stem = ConvNormAct(in_chans, channels, 3, stride=stem_stride, act_layer=act_layer)
        block = DepthwiseSeparableConv if separable else ConvNormAct
        stages, self.feature_info, stride = [], [], stem_stride
        for index, layers in enumerate(SEPARABLE_LAYERS, start=1):
            blocks = []
            for out_channels, layer_stride in layers:
                out_channels = scale_channels(out_channels, width_mult)
                blocks.append(block(channels, out_channels, 3, stride=layer_stride, act_layer=act_layer))
                channels, stride = out_channels, stride * layer_stride
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(channels, stride, f"stage{index}"))
        self.stages = nn.ModuleList(stages)
        self.head = ClassifierHead(channels, num_classes, dropout)
        he_normal_init(self)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def head_convolutions(self) -> list[nn.Module]:
        """The pooled linear head as a 1x1 convolution (and its dropout)."""
        return pooled_linear_convolutions(self.head.dropout, self.head.fc)


@register_model(
    "mobilenet_v1", family="mobilenet", paper=PAPER, year=2017,
    default_input=(3, 224, 224), min_input_size=MobileNetV1.min_input_size,
    params=4_200_000, macs=569_000_000, top1=70.6, dataset="ImageNet-1k",
    source="Howard et al. 2017, Tables 4, 6 and 8: 1.0 MobileNet-224, 569 million mult-adds, "
           "4.2 million parameters (as rounded there), 70.6% top-1",
)
def mobilenet_v1(
    num_classes: int = 1000,
    in_chans: int = 3,
    width_mult: float = 1.0,
    act_layer: ModuleFactory = nn.ReLU6,
    dropout: float = 0.0,
    separable: bool = True,
    stem_stride: int = 2,
) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``width_mult`` (input size sets the resolution)."""
    return MobileNetV1(num_classes, in_chans, width_mult, act_layer, dropout, separable, stem_stride)
