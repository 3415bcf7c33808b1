"""Inception v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016.

The Inception idea with factorized filters: 5x5 convolutions become two 3x3 (35x35 grid),
7x7 become 1x7 + 7x1 (17x17 grid: 14 weights per channel pair instead of 49), the coarsest
grid gets parallel 1x3 / 3x1 halves, and the grid shrinks through parallel stride-2 conv
and pool branches. Batch norm everywhere, including the auxiliary head, and label
smoothing in training (the loss, not the model). 299x299 input, 5.7 G multiply-adds.

One auxiliary classifier reads the 17x17 map (``Mixed_6e``) in training (``aux_logits``,
on by default as in torchvision); in training mode the model then returns
``(logits, aux)``, in eval mode the logits. The paper (section 4) found that the lower
auxiliary head of GoogLeNet did nothing and that this one acts as a regularizer.

The layout is torchvision's ``Inception3`` (module names follow the original TensorFlow
model; parameter names and shapes are the same, so its checkpoints load as they are).
The table below is the corrected Table 1 of the paper as the released model implements it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

from cnnzoo.layers.inception import (
    InceptionA,
    InceptionAuxV3,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    inception_conv,
    init_inception_weights,
)
from cnnzoo.models._register import register_model
from cnnzoo.models.googlenet import InceptionNet, check_transform_input

__all__ = ["InceptionV3", "InceptionV3Outputs", "inception_v3"]

# The stem: (name, output channels, kernel, stride, padding); padding 0 is a "valid" conv.
# 299 -> 149 -> 147 -> 147 -> (pool) 73 -> 73 -> 71 -> (pool) 35
STEM: tuple[tuple[str, int, int, int, int], ...] = (
    ("Conv2d_1a_3x3", 32, 3, 2, 0),
    ("Conv2d_2a_3x3", 32, 3, 1, 0),
    ("Conv2d_2b_3x3", 64, 3, 1, 1),
    ("Conv2d_3b_1x1", 80, 1, 1, 0),
    ("Conv2d_4a_3x3", 192, 3, 1, 0),
)

# The Inception modules: (name, module, its width argument).
# A: pool_features (channels of the pool branch); C: channels_7x7 (width of the 1x7 / 7x1 convs).
MIXED: tuple[tuple[str, Callable[..., nn.Module], int | None], ...] = (
    ("Mixed_5b", InceptionA, 32),     # 35x35, 192 -> 256
    ("Mixed_5c", InceptionA, 64),     # 35x35, 256 -> 288
    ("Mixed_5d", InceptionA, 64),     # 35x35, 288 -> 288
    ("Mixed_6a", InceptionB, None),   # 35 -> 17, 288 -> 768
    ("Mixed_6b", InceptionC, 128),    # 17x17, 768 -> 768
    ("Mixed_6c", InceptionC, 160),
    ("Mixed_6d", InceptionC, 160),
    ("Mixed_6e", InceptionC, 192),
    ("Mixed_7a", InceptionD, None),   # 17 -> 8, 768 -> 1280
    ("Mixed_7b", InceptionE, None),   # 8x8, 1280 -> 2048
    ("Mixed_7c", InceptionE, None),   # 8x8, 2048 -> 2048
)

# Stages: (name, the modules it runs in order, stride of its output). The stride-4 map is
# taken after the 1x1 conv, before the valid 3x3 (Conv2d_4a) trims two more pixels.
STAGES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("stem2", ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"), 2),
    ("stem4", ("maxpool1", "Conv2d_3b_1x1"), 4),
    ("mixed5", ("Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d"), 8),
    ("mixed6", ("Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"), 16),
    ("mixed7", ("Mixed_7a", "Mixed_7b", "Mixed_7c"), 32),
)

AUX_TAPS = {"Mixed_6e": "AuxLogits"}


class InceptionV3Outputs(NamedTuple):
    """Training-mode outputs with ``aux_logits``, in torchvision's order."""

    logits: torch.Tensor
    aux: torch.Tensor


class InceptionV3(InceptionNet):
    """Inception v3 with torchvision's parameter names.

    Args:
        num_classes: K, the outputs of the classifier (and of the aux head).
        in_chans: input channels.
        aux_logits: build the auxiliary classifier on the 17x17 grid and return its logits
            in training mode (``(logits, aux)``).
        transform_input: re-normalize ImageNet-normalized RGB input to ``(v - 0.5) / 0.5``,
            for weights trained that way (torchvision's pretrained Inception v3).
        dropout: before the final linear layer (0.5, torchvision's value).
    """

    # The paper gives no weight; its authors' training code (tensorflow/models,
    # inception/inception_model.py) adds the aux cross-entropy with weight=0.4.
    aux_loss_weight = 0.4

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_transform_input(transform_input, in_chans)
        self.aux_logits, self.transform_input = aux_logits, transform_input
        # Mixed_7a's valid 3x3/2 conv needs a 3x3 map: 75x75 is the smallest input giving it.
        self.min_input_size = 75
        self.stages, self.aux_taps = STAGES, AUX_TAPS

        channels = in_chans
        for name, out_channels, kernel, stride, padding in STEM:
            self.add_module(name, inception_conv(channels, out_channels, kernel, stride=stride, padding=padding))
            channels = out_channels
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        for name, block, width in MIXED:
            module = block(channels) if width is None else block(channels, width)
            self.add_module(name, module)
            channels = module.out_channels
        if aux_logits:
            self.AuxLogits = InceptionAuxV3(self.Mixed_6e.out_channels, num_classes)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self.feature_info = self.build_feature_info()
        self.init_weights()

    def init_weights(self) -> None:
        """torchvision's scheme: truncated normal with std 0.1, except the aux head's 5x5
        conv (0.01) and its classifier (0.001), whose inputs are wide."""
        init_inception_weights(self, std=0.1)
        if self.aux_logits:
            init_inception_weights(self.AuxLogits.conv1, std=0.01)
            init_inception_weights(self.AuxLogits.fc, std=0.001)

    def pack_outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> InceptionV3Outputs:
        return InceptionV3Outputs(logits, aux["AuxLogits"])


@register_model(
    "inception_v3",
    family="inception",
    paper="Szegedy et al., Rethinking the Inception Architecture for Computer Vision",
    year=2016,
    default_input=(3, 299, 299),
    min_input_size=75,
    params=27_161_264,
    macs=5_713_000_000,
    top1=77.294,
    dataset="ImageNet-1k",
    source="torchvision 0.28 Inception_V3_Weights.IMAGENET1K_V1 (num_params with the aux head, "
    "_ops 5.713 G multiply-adds, acc@1; weights ported from the paper's TensorFlow model)",
    paper_top1=round(100 - 21.2, 1),
    paper_source="Szegedy et al. 2016, Table 3: Inception-v3 (BN-auxiliary), single crop, single model, "
    "21.2% top-1 error (also the abstract)",
)
def inception_v3(
    num_classes: int = 1000,
    in_chans: int = 3,
    aux_logits: bool = True,
    transform_input: bool = False,
    dropout: float = 0.5,
) -> InceptionV3:
    """Inception v3, 27.2 M parameters with the aux head (23.8 M without), 5.7 G MACs at 299."""
    return InceptionV3(num_classes, in_chans, aux_logits, transform_input, dropout)
