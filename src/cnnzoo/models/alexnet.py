"""AlexNet (Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012).

Five convolutions (ReLU after each), overlapping 3x3 / stride-2 max-pooling after conv1,
conv2 and conv5, then three fully connected layers 4096 - 4096 - 1000 with dropout.

Two variants:

* ``alexnet_original``: the 2012 network as the paper describes it. It was split over two
  GPUs that exchanged data only at conv3 and the fully connected layers; each GPU held half
  the kernels of every layer, so conv2, conv4 and conv5 see only the half of the previous
  layer on their own GPU. One device computes the same thing with *grouped* convolutions
  (``groups=2``) at those three layers: "96 kernels (2x48)", "256 kernels (2x128)" as the
  lecture puts it. Local response normalization follows the ReLUs of conv1 and conv2. The
  input is 227x227: the paper's "224x224" does not give its 55x55 conv1 map with an 11x11
  stride-4 kernel ((227 - 11) / 4 + 1 = 55), a well-known typo. 60,965,224 parameters.
* ``alexnet``: the single-tower network torchvision ships (64-192-384-256-256 kernels, no
  LRN, padded conv1, from Krizhevsky's "One weird trick for parallelizing convolutional
  neural networks", 2014); its checkpoints load as is. 61,100,840 parameters.

``small_input=True`` adapts either one to 28x28 images (Fashion-MNIST, MNIST), chosen here
(the paper trains at 224 only): an 11x11 stride-4 conv1 would leave a 5x5 map of a 28x28
image, so conv1 becomes 5x5 at stride 1 (padding 2), the rest of the table is kept
(28 -> pool1 13 -> pool2 6 -> pool5 2), fc6 reads the 2x2 pool5 map itself instead of a
6x6 copy of it, and fc6 and fc7 are as wide as that map (256 * 2 * 2 = 1024, not 4096).

Cost of a convolution: ``H_out * W_out * C_out * k^2 * C_in / g`` multiply-adds and
``k^2 * C_in / g * C_out + C_out`` parameters. The 11x11 conv1 needs 121 weights per input
channel and per kernel, which is why later networks (VGG) stack 3x3 convolutions instead.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from cnnzoo.layers import ConvNormAct
from cnnzoo.layers.heads import FC_WIDTH, fc_classifier
from cnnzoo.models._base import Classifier, FeatureInfo, forward_with_taps
from cnnzoo.models._register import register_model, torchvision_source
from cnnzoo.models.convolutionalize import fc_stack_convolutions

__all__ = ["AlexNet", "ConvLayer", "alexnet", "alexnet_original", "min_input_size", "paper_lrn", "small_input_layers"]

PAPER = "Krizhevsky, Sutskever and Hinton, ImageNet Classification with Deep Convolutional Neural Networks"


class ConvLayer(NamedTuple):
    """One row of the layer table."""

    out_channels: int
    kernel: int
    stride: int
    padding: int
    groups: int = 1  # 2 where the paper's two GPUs did not communicate
    lrn: bool = False  # local response normalization after the ReLU
    pool: bool = False  # 3x3 / stride 2 max-pooling at the end of the layer


# Krizhevsky et al. 2012, section 3.5 and Figure 2.
ORIGINAL_LAYERS = (
    #         out  k  s  pad groups  LRN   pool
    ConvLayer(96, 11, 4, 0, 1, lrn=True, pool=True),
    ConvLayer(256, 5, 1, 2, 2, lrn=True, pool=True),
    ConvLayer(384, 3, 1, 1, 1),  # conv3 reads both GPUs' conv2 maps
    ConvLayer(384, 3, 1, 1, 2),
    ConvLayer(256, 3, 1, 1, 2, pool=True),
)

# torchvision's single tower (Krizhevsky 2014).
ONE_TOWER_LAYERS = (
    ConvLayer(64, 11, 4, 2, pool=True),
    ConvLayer(192, 5, 1, 2, pool=True),
    ConvLayer(384, 3, 1, 1),
    ConvLayer(256, 3, 1, 1),
    ConvLayer(256, 3, 1, 1, pool=True),
)

POOL5_SIZE = 6  # conv5 is pooled to 6x6, so fc6 reads 256 * 6 * 6 = 9216 inputs
SMALL_INPUT_POOL5_SIZE = 2  # small_input at 28x28: 28 -> 13 -> 6 -> 2
POOL_KERNEL, POOL_STRIDE = 3, 2  # overlapping pooling (section 3.4): windows of 3 every 2 pixels


def min_input_size(layers: Sequence[ConvLayer]) -> int:
    """The smallest square input whose last pooled map is still 1x1.

    Walks the table backwards from a 1-pixel output: a conv or pool with kernel k, stride s
    and padding p gives ``n`` pixels from at least ``s * (n - 1) + k - 2p`` (63 for the
    single tower, 67 for the paper's unpadded conv1).
    """
    size = 1
    for layer in reversed(layers):
        if layer.pool:
            size = POOL_STRIDE * (size - 1) + POOL_KERNEL
        size = layer.stride * (size - 1) + layer.kernel - 2 * layer.padding
    return size


def small_input_layers(layers: Sequence[ConvLayer]) -> tuple[ConvLayer, ...]:
    """The table with conv1 at 5x5, stride 1, padding 2 (a 28x28 image keeps its size)."""
    return (layers[0]._replace(kernel=5, stride=1, padding=2), *layers[1:])


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """Local response normalization with the paper's constants (section 3.3)::

        b_i = a_i / (k + alpha * sum_{j = i - n/2}^{i + n/2} a_j^2) ** beta

    PyTorch's ``nn.LocalResponseNorm`` divides ``alpha`` by ``n`` inside the sum, so the
    paper's alpha is passed multiplied by ``n``.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


class AlexNet(Classifier):
    """AlexNet from a layer table (:data:`ORIGINAL_LAYERS` or :data:`ONE_TOWER_LAYERS`).

    Layout as torchvision: ``features`` (a flat sequence of conv, ReLU, [LRN], [pool]),
    ``avgpool`` (adaptive, 6x6: the identity at the design input, it lets other sizes
    reach the fixed-size fc6) and ``classifier``. Stages are the three pooled maps.

    Args:
        layers: the convolution table.
        num_classes, in_chans: output classes and input channels.
        dropout: dropout probability of the two hidden fully connected layers.
        dropout_first: where dropout sits in each hidden layer (see :func:`fc_classifier`).
        small_input: the adaptation to 28x28 images of the module docstring (conv1 5x5 at
            stride 1, fc6 and fc7 of 1024 on the 2x2 pool5 map).

    ``min_input_size`` follows from the table (:func:`min_input_size`).
    """

    head_names = ("avgpool", "classifier")
    classifier_name = "classifier.6"  # fc8 (fc_classifier)

    def __init__(
        self,
        layers: Sequence[ConvLayer] = ONE_TOWER_LAYERS,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        dropout_first: bool = True,
        small_input: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if small_input:
            layers = small_input_layers(layers)
        self.min_input_size = min_input_size(layers)
        modules: list[nn.Module] = []
        self.feature_info, self._taps = [], []
        channels, stride = in_chans, 1
        for index, layer in enumerate(layers, start=1):
            # ConvNormAct without a norm is (conv, ReLU); its two modules are laid out flat
            # so the indices match torchvision's features.N.
            modules += ConvNormAct(channels, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                                   groups=layer.groups, norm_layer=None, act_layer=nn.ReLU)
            channels, stride = layer.out_channels, stride * layer.stride
            if layer.lrn:
                modules.append(paper_lrn())
            if layer.pool:
                modules.append(nn.MaxPool2d(kernel_size=POOL_KERNEL, stride=POOL_STRIDE))
                stride *= POOL_STRIDE
                self._taps.append(len(modules) - 1)
                self.feature_info.append(FeatureInfo(channels, stride, f"pool{index}"))
        self.features = nn.Sequential(*modules)
        pool5_size = SMALL_INPUT_POOL5_SIZE if small_input else POOL5_SIZE
        self.avgpool = nn.AdaptiveAvgPool2d(pool5_size)
        fc6_inputs = channels * pool5_size**2
        self.classifier = fc_classifier(
            fc6_inputs, num_classes, hidden=fc6_inputs if small_input else FC_WIDTH,
            dropout=dropout, dropout_first=dropout_first,
        )

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_with_taps(self.features, x, self._taps)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    def head_convolutions(self) -> list[nn.Module]:
        """fc6 as a 6x6 convolution over pool5, fc7 and fc8 as 1x1 ones (Long et al. 2015, section 3.1)."""
        return fc_stack_convolutions(self.avgpool, self.classifier, self.feature_info[-1].channels)


@register_model(
    "alexnet", family="alexnet",
    paper="Krizhevsky, One weird trick for parallelizing convolutional neural networks", year=2014,
    default_input=(3, 224, 224), min_input_size=min_input_size(ONE_TOWER_LAYERS),
    params=61_100_840, macs=714_000_000, top1=56.522, dataset="ImageNet-1k",
    source=torchvision_source("AlexNet_Weights.IMAGENET1K_V1"),
)
def alexnet(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False) -> AlexNet:
    """Single-tower AlexNet, torchvision's layout and weights."""
    return AlexNet(ONE_TOWER_LAYERS, num_classes, in_chans, dropout, dropout_first=True, small_input=small_input)


@register_model(
    "alexnet_original", family="alexnet", paper=PAPER, year=2012,
    default_input=(3, 227, 227), min_input_size=min_input_size(ORIGINAL_LAYERS),
    params=60_965_224, top1=62.5, dataset="ImageNet ILSVRC-2010 test",
    source="Krizhevsky et al. 2012: parameters summed from the layer table of section 3.5 "
           "(the paper rounds to 60 million); top-1 error 37.5% (abstract, Table 1)",
)
def alexnet_original(
    num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False
) -> AlexNet:
    """The 2012 two-tower AlexNet as grouped convolutions, with LRN, at 227x227."""
    return AlexNet(ORIGINAL_LAYERS, num_classes, in_chans, dropout, dropout_first=False, small_input=small_input)
