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

Each family writes its own head as convolutions (``Classifier.head_convolutions``, built
from the helpers here) and names the children that form it (``Classifier.head_children``),
so this module knows no family.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnzoo.models._base import Classifier, check_image_batch
from cnnzoo.utils.meta import meta_copy
from cnnzoo.utils.sizes import pair

__all__ = [
    "ConvolutionalizedClassifier",
    "classifier_body",
    "conv_from_linear",
    "convolutionalize",
    "fc_stack_convolutions",
    "pooled_linear_convolutions",
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


def fc_stack_convolutions(pool: nn.AdaptiveAvgPool2d, layers: nn.Sequential, channels: int) -> list[nn.Module]:
    """AlexNet's and VGG's head (adaptive pooling to ``s x s``, flatten, then linear layers
    with ReLU and dropout between) as convolutions: the first linear layer spans the pooled
    ``channels x s x s`` map (an ``s x s`` convolution), the later ones read one vector each
    (1x1); the other layers are copied and the pooling is dropped."""
    kernel = pair(pool.output_size)[0]
    converted: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.Linear):
            converted.append(conv_from_linear(layer, channels, kernel))
            channels, kernel = layer.out_features, 1
        else:
            converted.append(copy.deepcopy(layer))
    return converted


def pooled_linear_convolutions(dropout: nn.Module, fc: nn.Linear) -> list[nn.Module]:
    """A global-pooling head (pool, dropout, linear) as convolutions: the dropout, then the
    linear layer as a 1x1 convolution; the pooling is left out (averaging and a linear map
    commute, so the score map's mean is the logits)."""
    return [copy.deepcopy(dropout), conv_from_linear(fc, fc.in_features, 1)]


def classifier_body(classifier: Classifier, copy_modules: bool = True) -> Classifier:
    """The classifier without its head (``classifier.head_children()``): what
    ``forward_features`` needs, and nothing else (its ``forward`` no longer works).

    ``copy_modules=True`` returns a deep copy (the head's weights are never copied);
    ``False`` removes the head from ``classifier`` itself.
    """
    names = classifier.head_children()
    if copy_modules:
        # Mapping the head modules to None in deepcopy's memo skips them.
        classifier = copy.deepcopy(classifier, {id(getattr(classifier, name)): None for name in names})
    for name in names:
        delattr(classifier, name)
    return classifier


def _smallest_input(body: nn.Module, in_chans: int, start: int, needed: int) -> int:
    """Smallest square input (at least ``start``) whose last feature map is at least
    ``needed`` pixels on each side; the map grows with the input, so a doubling then a
    bisection find it. Runs on a meta copy: no computation."""
    twin = meta_copy(body).eval()  # (batch norm in training mode refuses 1x1 maps of one image)

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
    the logits; for global average pooling heads (the default ``global_pool``) the mean of
    the score map equals the logits at any size. A larger image gives a larger map: VGG-16 at 384x384 gives 6x6 scores, position
    ``(i, j)`` being fc6-fc8 applied to the 7x7 window at ``(i, j)`` of the last feature map,
    i.e. (up to zero-padding at the borders of a crop) the classifier on the 224x224 crop at
    ``(32 i, 32 j)`` - computed once for all windows instead of once per crop.

    The classifier is not modified: its layers are copied (the head's weights reshaped).
    Train / eval mode carries over. Raises ``ValueError`` for a model that is not a cnnzoo
    classifier or does not write its head as convolutions (``Classifier.head_convolutions``).
    """
    if not isinstance(classifier, Classifier):
        raise ValueError(f"cannot convolutionalize a {type(classifier).__name__}: it is not a cnnzoo Classifier")
    if classifier.num_classes == 0:
        raise ValueError(f"cannot convolutionalize a {type(classifier).__name__} without its final layer "
                         "(reset_classifier(0)): it gives no class scores")
    head = nn.Sequential(*classifier.head_convolutions())
    body = classifier_body(classifier)
    first = next(layer for layer in head if isinstance(layer, nn.Conv2d))
    kernel = first.kernel_size[0]
    minimum = classifier.min_input_size
    if kernel > 1:
        minimum = _smallest_input(body, classifier.in_chans, minimum, kernel)
    model = ConvolutionalizedClassifier(body, head, minimum, type(classifier).__name__)
    return model.train(classifier.training)
