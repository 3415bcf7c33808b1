"""Convolutionalization: a classifier's fully connected layers as the equivalent convolutions.

"A dense layer is a convolution whose kernel spans its whole input" (the lecture notes,
"Classifier to Semantic Segmentation: convolutionalize the classification architectures").
Long, Shelhamer and Darrell ("Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015, section 3.1) put it as: fully connected layers "can also be viewed as
convolutions with kernels that cover their entire input regions. Doing so casts them into
fully convolutional networks that take input of any size and output classification maps."

For AlexNet and VGG (adaptive pooling to 6x6 / 7x7, flatten, fc6, fc7, fc8):

* fc6 reads ``C * s * s`` numbers flattened channel-major from the ``C x s x s`` pooled map,
  so it *is* an ``s x s`` convolution with ``C`` input channels: its weight matrix
  ``4096 x (C*s*s)`` reshaped to ``4096 x C x s x s``;
* fc7 and fc8 read one vector each: 1x1 convolutions;
* the adaptive pooling is dropped, so a larger image gives a larger class-score map, one
  score vector per ``s x s`` window of the last feature map, i.e. per window of the
  image at the network's stride (32 for VGG): VGG-16 at 384x384 gives a 6x6 map.

For global-average-pool + linear heads (ResNet, DenseNet, MobileNet, EfficientNet,
GoogLeNet, Inception v3) the linear layer becomes a 1x1 convolution on the last feature map;
since averaging and a linear map commute, the mean of the score map is the logits.
SqueezeNet is fully convolutional already (conv10 is a 1x1 conv); its score map is conv10's
output before the global pooling.

Costs: the conversion changes no parameter count (fc6: ``C*s*s*4096 + 4096`` either way);
multiply-adds grow with the number of windows, ``h' * w'`` times the classifier's head, but
windows share the feature layers, which is why one pass over a large image is far cheaper
than classifying each crop.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from cnnzoo.models._base import Classifier, check_image_batch
from cnnzoo.models.alexnet import AlexNet
from cnnzoo.models.densenet import DenseNet
from cnnzoo.models.efficientnet import EfficientNet
from cnnzoo.models.googlenet import InceptionNet
from cnnzoo.models.mobilenet import MobileNetV1
from cnnzoo.models.resnet import ResNet
from cnnzoo.models.squeezenet import SqueezeNet
from cnnzoo.models.vgg import VGG

__all__ = [
    "ConvolutionalizedClassifier",
    "classifier_body",
    "conv_from_linear",
    "convolutionalize",
    "meta_twin",
]


# =============================================================================== helpers

def conv_from_linear(
    linear: nn.Linear, in_channels: int, kernel_size: int, copy_weights: bool = True, padding: int = 0,
    dilation: int = 1,
) -> nn.Conv2d:
    """The ``kernel_size x kernel_size`` convolution computing ``linear`` on an
    ``in_channels x k x k`` window flattened channel-major (``torch.flatten`` of an
    ``N x C x k x k`` map): weight ``out x (C*k*k)`` reshaped to ``out x C x k x k``.

    ``copy_weights=False`` lets the convolution share the linear layer's storage (used when
    the classifier is a temporary whose layers are being taken over); ``padding`` and
    ``dilation`` are the convolution's (0 and 1: exactly the linear layer on each window
    that fits; a dilation ``r`` reads the same weights on a map ``r`` times finer, as when
    the pooling before the layer is removed).
    """
    if linear.in_features != in_channels * kernel_size**2:
        raise ValueError(
            f"a linear layer with {linear.in_features} inputs is not a {kernel_size}x{kernel_size} "
            f"convolution over {in_channels} channels ({in_channels * kernel_size**2} inputs)"
        )
    # Built on the meta device: its own random initialization would be thrown away at once
    # (fc6 of VGG has 103 million weights).
    with torch.device("meta"):
        conv = nn.Conv2d(
            in_channels, linear.out_features, kernel_size, padding=padding, dilation=dilation,
            bias=linear.bias is not None,
        )
    weight = linear.weight.detach().reshape(linear.out_features, in_channels, kernel_size, kernel_size)
    conv.weight = nn.Parameter(weight.clone() if copy_weights else weight, linear.weight.requires_grad)
    if linear.bias is not None:
        bias = linear.bias.detach()
        conv.bias = nn.Parameter(bias.clone() if copy_weights else bias, linear.bias.requires_grad)
    return conv


def meta_twin(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers are data-less meta tensors, to learn
    output shapes without computing (or copying) anything."""
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        twin = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(twin, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else twin
    return copy.deepcopy(module, memo)


@dataclass(frozen=True)
class _Head:
    """How a classifier family ends: the child modules that form its head (not needed by
    ``forward_features``) and a function building the equivalent convolutions."""

    modules: Callable[[Classifier], list[str]]
    convolutions: Callable[[Classifier], list[nn.Module]]


def _fc_stack(model: AlexNet | VGG) -> list[nn.Module]:
    # avgpool -> flatten -> (Linear | ReLU | Dropout)*: fc6 spans the pooled map, the rest are 1x1.
    size = model.avgpool.output_size
    kernel = size if isinstance(size, int) else size[0]
    channels = model.feature_info[-1].channels
    layers: list[nn.Module] = []
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):
            layers.append(conv_from_linear(layer, channels, kernel))
            channels, kernel = layer.out_features, 1
        else:
            layers.append(copy.deepcopy(layer))
    return layers


def _pooled_linear(head: nn.Module) -> list[nn.Module]:
    # pool -> dropout -> fc: dropout then a 1x1 conv, with the pooling left out.
    return [copy.deepcopy(head.dropout), conv_from_linear(head.fc, head.fc.in_features, 1)]


def _inception_heads(model: InceptionNet) -> list[str]:
    auxiliary = [name for name in model.aux_taps.values() if getattr(model, name, None) is not None]
    return ["avgpool", "dropout", "fc", *auxiliary]


# Checked in order (subclasses before their bases).
_HEADS: tuple[tuple[type, _Head], ...] = (
    (AlexNet, _Head(lambda m: ["avgpool", "classifier"], _fc_stack)),
    (VGG, _Head(lambda m: ["avgpool", "classifier"], _fc_stack)),
    (EfficientNet, _Head(lambda m: ["head_conv", "head"],
                         lambda m: [copy.deepcopy(m.head_conv), *_pooled_linear(m.head)])),
    (ResNet, _Head(lambda m: ["head"], lambda m: _pooled_linear(m.head))),
    (DenseNet, _Head(lambda m: ["head"], lambda m: _pooled_linear(m.head))),
    (MobileNetV1, _Head(lambda m: ["head"], lambda m: _pooled_linear(m.head))),
    (InceptionNet, _Head(_inception_heads, lambda m: _pooled_linear(m))),
    # dropout, conv10, ReLU, global pooling: everything but the pooling.
    (SqueezeNet, _Head(lambda m: ["classifier"], lambda m: [copy.deepcopy(c) for c in list(m.classifier)[:-1]])),
)


def _head_of(classifier: nn.Module) -> _Head:
    for family, head in _HEADS:
        if isinstance(classifier, family):
            return head
    known = ", ".join(family.__name__ for family, _ in _HEADS)
    raise ValueError(
        f"cannot convolutionalize a {type(classifier).__name__}: its head is not one cnnzoo knows "
        f"(it knows the heads of {known})"
    )


def classifier_body(classifier: Classifier, copy_modules: bool = True) -> Classifier:
    """The classifier without its head: what ``forward_features`` needs, and nothing else
    (its ``forward`` no longer works).

    ``copy_modules=True`` returns a deep copy (the head's weights are never copied);
    ``False`` removes the head from ``classifier`` itself.
    """
    names = _head_of(classifier).modules(classifier)
    if copy_modules:
        # Mapping the head modules to None in deepcopy's memo skips them.
        classifier = copy.deepcopy(classifier, {id(getattr(classifier, name)): None for name in names})
    for name in names:
        delattr(classifier, name)
    return classifier


def _smallest_input(body: nn.Module, in_chans: int, start: int, needed: int) -> int:
    """Smallest square input (at least ``start``) whose last feature map is at least
    ``needed`` pixels on each side; the map grows with the input, so a doubling then a
    bisection find it. Runs on a meta twin: no computation."""
    twin = meta_twin(body).eval()  # (batch norm in training mode refuses 1x1 maps of one image)

    def fits(size: int) -> bool:
        with torch.no_grad():
            fmap = twin.forward_features(torch.zeros(1, in_chans, size, size, device="meta"))[-1]
        return min(fmap.shape[-2:]) >= needed

    low, high = start - 1, start  # fits(low) is False (or below the minimum), fits(high) unknown
    while not fits(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


# =============================================================================== the model

class ConvolutionalizedClassifier(nn.Module):
    """A classifier whose head is convolutions: ``forward(x)`` is an
    ``N x num_classes x h' x w'`` map of class scores, one per window of the image.

    Children: ``body`` (the classifier without its head; ``body.forward_features`` gives the
    stage maps) and ``head`` (the convolutions). ``stride`` is the distance in input pixels
    between neighbouring score-map positions; ``min_input_size`` the smallest input giving a
    1x1 map (224 for VGG: its fc6 kernel spans a 7x7 map of stride 32).
    """

    def __init__(self, body: Classifier, head: nn.Sequential, min_input_size: int, name: str) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.num_classes = body.num_classes
        self.in_chans = body.in_chans
        self.stride = body.feature_info[-1].stride
        self.min_input_size = min_input_size
        self.name = name

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, self.min_input_size, f"convolutionalized {self.name}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.head(self.body.forward_features(x)[-1])


def convolutionalize(classifier: nn.Module) -> ConvolutionalizedClassifier:
    """The fully convolutional twin of ``classifier``: same weights, class-score maps out.

    At the classifier's design size (224 for VGG and AlexNet) the score map is 1x1 and equals
    the logits; for global-pooling heads the mean of the score map equals the logits at any
    size. A larger image gives a larger map: VGG-16 at 384x384 gives 6x6 scores, position
    ``(i, j)`` being fc6-fc8 applied to the 7x7 window at ``(i, j)`` of the last feature map,
    i.e. (up to zero-padding at the borders of a crop) the classifier on the 224x224 crop at
    ``(32 i, 32 j)`` - computed once for all windows instead of once per crop.

    The classifier is not modified: its layers are copied (the head's weights reshaped).
    Train / eval mode carries over. Raises ``ValueError`` for a model whose head is not
    one of the zoo's (see :data:`_HEADS`).
    """
    head_spec = _head_of(classifier)
    body = classifier_body(classifier)
    head = nn.Sequential(*head_spec.convolutions(classifier))
    first = next(layer for layer in head if isinstance(layer, nn.Conv2d))
    kernel = first.kernel_size[0]
    minimum = classifier.min_input_size
    if kernel > 1:
        minimum = _smallest_input(body, classifier.in_chans, minimum, kernel)
    model = ConvolutionalizedClassifier(body, head, minimum, type(classifier).__name__)
    return model.train(classifier.training)
