"""A classifier as the backbone of a dense predictor: what FCN, the dilated front-end and the
U-Net over a classifier share.

* :func:`build_backbone`: the classifier to take apart, built by name or copied;
* :func:`fc_convolutions`: VGG's fc6 and fc7 as the equivalent convolutions, padded and
  dilated as the dense predictor needs (FCN and the dilated front-end keep them);
* :data:`CONTEXT_SCORE_STD`: how a score layer starts when Yu and Koltun's context module
  reads it (both FCN and the front-end can put one on their score map).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from cnnzoo.layers.heads import optional_dropout
from cnnzoo.models._base import Classifier
from cnnzoo.models._register import find_model
from cnnzoo.models.convolutionalize import conv_from_linear
from cnnzoo.models.vgg import VGG
from cnnzoo.utils.sizes import pair

__all__ = ["CONTEXT_SCORE_STD", "build_backbone", "fc_convolutions"]

# The standard deviation of a score layer that feeds a context module: Yu and Koltun's
# front-end starts its class-score layer at N(0, 0.001^2). (Not zero, FCN's choice: the
# module's ReLUs would see zeros, where their gradient is zero.)
CONTEXT_SCORE_STD = 1e-3


def build_backbone(backbone: str | Classifier, in_chans: int, what: str = "backbone") -> Classifier:
    """A classifier the caller may take apart: a fresh one for a registered name (built with
    one class: its head is discarded or replaced), a deep copy of a module (its weights kept).
    ``what`` names its role in error messages ("backbone", "encoder")."""
    if isinstance(backbone, str):
        model = find_model(backbone, task="classification", what=what).builder(num_classes=1, in_chans=in_chans)
    elif isinstance(backbone, Classifier):
        model = copy.deepcopy(backbone)
    else:
        raise ValueError(f"the {what} must be a classifier name or a cnnzoo Classifier, got {type(backbone).__name__}")
    if not isinstance(model, Classifier):
        raise ValueError(f"{what} {backbone!r} has no forward_features / feature_info to build on")
    return model


def fc_convolutions(vgg: VGG, padding: int, dropout: float, dilation: int = 1) -> nn.Sequential:
    """VGG's fc6 and fc7 as convolutions (``fc6`` k x k over the pooled map, ``fc7`` 1x1),
    each followed by ReLU and dropout (``relu6``, ``drop6``, ``relu7``, ``drop7``), sharing
    the classifier's weights (callers own the classifier). fc8 is left out."""
    fc6, fc7 = [layer for layer in vgg.classifier if isinstance(layer, nn.Linear)][:2]
    kernel = pair(vgg.avgpool.output_size)[0]
    channels = vgg.feature_info[-1].channels
    return nn.Sequential(OrderedDict(
        fc6=conv_from_linear(fc6, channels, kernel, copy_weights=False, padding=padding, dilation=dilation),
        relu6=nn.ReLU(inplace=True),
        drop6=optional_dropout(dropout),
        fc7=conv_from_linear(fc7, fc6.out_features, 1, copy_weights=False),
        relu7=nn.ReLU(inplace=True),
        drop7=optional_dropout(dropout),
    ))
