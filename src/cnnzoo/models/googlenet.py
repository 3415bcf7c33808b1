"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

A short stem of plain convolutions, then nine Inception modules (Table 1 below) in three
stages separated by stride-2 max-pools, global average pooling and one linear layer. Every
module runs 1x1, 3x3 and 5x5 filters and a 3x3 pool side by side, with 1x1 convolutions
reducing the channels in front of the expensive filters; the network has 22 layers with
parameters and costs about 1.5 G multiply-adds at 224x224 (the paper's budget).

Two auxiliary classifiers read inception (4a) and (4d) during training (``aux_logits``);
in training mode the model then returns ``(logits, aux2, aux1)``, in eval mode the logits.

The layout is torchvision's ``GoogLeNet`` (same parameter names and shapes, so its
checkpoints load as they are), which differs from the paper in three ways: batch norm after
every conv in place of the two local response normalizations, a 3x3 conv in the "5x5"
branch (``paper_5x5=True`` gives the paper's 5x5, 7,005,832 parameters instead of
6,624,904, and no torchvision checkpoint fits it) and a 2x2 last max-pool (3x3 in the
paper; both give 7x7 from 14x14).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cnnzoo.layers.inception import (
    InceptionAuxV1,
    InceptionV1,
    imagenet_to_inception_input,
    inception_conv,
    init_inception_weights,
)
from cnnzoo.models._base import Classifier, FeatureInfo, new_final_layer, replace_submodule
from cnnzoo.models._register import register_model
from cnnzoo.models.convolutionalize import pooled_linear_convolutions

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "InceptionNet", "googlenet"]

# Table 1 of the paper: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
# Each module's input is the previous one's output, 1x1 + 3x3 + 5x5 + pool proj channels.
INCEPTION_V1_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),       # 28x28, 192 -> 256
    "inception3b": (128, 128, 192, 32, 96, 64),     # 28x28, 256 -> 480
    "inception4a": (192, 96, 208, 16, 48, 64),      # 14x14, 480 -> 512
    "inception4b": (160, 112, 224, 24, 64, 64),     # 14x14, 512 -> 512
    "inception4c": (128, 128, 256, 24, 64, 64),     # 14x14, 512 -> 512
    "inception4d": (112, 144, 288, 32, 64, 64),     # 14x14, 512 -> 528
    "inception4e": (256, 160, 320, 32, 128, 128),   # 14x14, 528 -> 832
    "inception5a": (256, 160, 320, 32, 128, 128),   # 7x7, 832 -> 832
    "inception5b": (384, 192, 384, 48, 128, 128),   # 7x7, 832 -> 1024
}

# Stages: (name, the modules it runs in order, stride of its output).
STAGES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("conv1", ("conv1",), 2),
    ("conv3", ("maxpool1", "conv2", "conv3"), 4),
    ("inception3", ("maxpool2", "inception3a", "inception3b"), 8),
    ("inception4", ("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"), 16),
    ("inception5", ("maxpool4", "inception5a", "inception5b"), 32),
)

# Auxiliary classifiers: module whose output they read -> head.
AUX_TAPS = {"inception4a": "aux1", "inception4d": "aux2"}


class InceptionNet(Classifier):
    """What GoogLeNet and Inception v3 share: named modules run stage by stage, auxiliary
    heads fed from intermediate maps in training mode, and torchvision's ``transform_input``.

    Subclasses set ``stages`` ((name, module names, stride) per stage), ``aux_taps``
    (module name -> aux head name), ``aux_logits``, ``transform_input``, the modules
    themselves, and ``avgpool`` / ``dropout`` / ``fc``; they pack the training outputs in
    ``pack_outputs``.
    """

    head_names = ("avgpool", "dropout", "fc")  # and the aux heads built (head_children)
    classifier_name, global_pool_name = "fc", "avgpool"

    stages: tuple[tuple[str, tuple[str, ...], int], ...]
    aux_taps: dict[str, str]
    aux_logits: bool
    transform_input: bool
    aux_loss_weight: float  # each auxiliary loss's weight in training (cnnzoo.engine.objective)

    def build_feature_info(self) -> list[FeatureInfo]:
        """One entry per stage: channels of its last module that has any, its stride."""
        info = []
        for name, modules, stride in self.stages:
            channels = [getattr(self, m).out_channels for m in modules if hasattr(getattr(self, m), "out_channels")]
            info.append(FeatureInfo(channels[-1], stride, name))
        return info

    def run_stages(self, x: torch.Tensor, with_aux: bool) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Stage outputs, and the aux heads' logits by head name when ``with_aux``."""
        if self.transform_input:
            x = imagenet_to_inception_input(x)
        features: list[torch.Tensor] = []
        aux: dict[str, torch.Tensor] = {}
        for _, modules, _ in self.stages:
            for name in modules:
                x = getattr(self, name)(x)
                if with_aux and name in self.aux_taps:
                    head = self.aux_taps[name]
                    aux[head] = getattr(self, head)(x)
            features.append(x)
        return features, aux

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.run_stages(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    def head_children(self) -> list[str]:
        """The pooled linear head and, when built, the auxiliary heads: ``forward_features``
        runs neither (the aux heads read intermediate maps only in training-mode ``forward``)."""
        return [*super().head_children(), *(head for head in self.aux_taps.values() if head in self._modules)]

    def head_convolutions(self) -> list[nn.Module]:
        """The pooled linear head as a 1x1 convolution (the aux heads are training aids, left out)."""
        return pooled_linear_convolutions(self.dropout, self.fc)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new ``fc`` (:meth:`Classifier.reset_classifier`) and new last layers of the aux
        heads, which score the same classes; ``num_classes=0`` removes the aux heads (and
        ``aux_logits``): without classes there is nothing for them to score."""
        super().reset_classifier(num_classes, global_pool)
        for head in [name for name in self.aux_taps.values() if name in self._modules]:
            if num_classes == 0:
                delattr(self, head)
                continue
            aux = getattr(self, head)
            name, fc = [(name, m) for name, m in aux.named_modules() if isinstance(m, nn.Linear)][-1]
            replace_submodule(aux, name, new_final_layer(nn.Linear, fc.in_features, num_classes, like=fc.weight))
        self.aux_logits = self.aux_logits and num_classes > 0

    def pack_outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits; in training mode with ``aux_logits``, a tuple of logits and aux logits."""
        self.check_input(x)
        with_aux = self.training and self.aux_logits
        features, aux = self.run_stages(x, with_aux)
        logits = self.forward_head(features[-1])
        return self.pack_outputs(logits, aux) if with_aux else logits


def check_transform_input(transform_input: bool, in_chans: int) -> None:
    if transform_input and in_chans != 3:
        raise ValueError(f"transform_input re-normalizes RGB images and needs in_chans=3, got {in_chans}")


def downsampling_pool(kernel_size: int) -> nn.MaxPool2d:
    """Stride-2 max-pool rounding up (``ceil_mode``, Caffe's convention), so a border pixel
    of an odd-sized map is pooled rather than dropped."""
    return nn.MaxPool2d(kernel_size, stride=2, ceil_mode=True)


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs with ``aux_logits``, in torchvision's order."""

    logits: torch.Tensor
    aux2: torch.Tensor
    aux1: torch.Tensor


class GoogLeNet(InceptionNet):
    """GoogLeNet (Inception v1) with torchvision's parameter names.

    Args:
        num_classes: K, the outputs of the classifier (and of the aux heads).
        in_chans: input channels.
        aux_logits: build the two auxiliary classifiers and return their logits in
            training mode (``(logits, aux2, aux1)``); their loss weight in the paper is 0.3.
        transform_input: re-normalize ImageNet-normalized RGB input to ``(v - 0.5) / 0.5``,
            for weights trained that way (torchvision's pretrained GoogLeNet).
        paper_5x5: a 5x5 conv in each module's third branch, as in the paper, instead of
            torchvision's 3x3.
        dropout: before the final linear layer (0.2 in torchvision; 0.4 in the paper).
        dropout_aux: inside the auxiliary heads (0.7).
    """

    # Section 6: "the losses of the auxiliary classifiers were weighted by 0.3".
    aux_loss_weight = 0.3

    torchvision_renames = ()  # the names are torchvision's already

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        paper_5x5: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_transform_input(transform_input, in_chans)
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.min_input_size = 15  # the third max-pool needs a 2x2 map (torchvision: min_size 15x15)
        self.stages, self.aux_taps = STAGES, AUX_TAPS

        # The stem: 7x7/2 conv, 1x1 and 3x3 convs (224 -> 112 -> 56); then the pools between
        # the module groups (56 -> 28 -> 14 -> 7).
        self.conv1 = inception_conv(in_chans, 64, 7, stride=2)
        self.maxpool1 = downsampling_pool(3)
        self.conv2 = inception_conv(64, 64, 1)
        self.conv3 = inception_conv(64, 192, 3)
        self.maxpool2 = downsampling_pool(3)
        self.maxpool3 = downsampling_pool(3)
        self.maxpool4 = downsampling_pool(2)
        channels = 192
        for name, row in INCEPTION_V1_TABLE.items():
            module = InceptionV1(channels, *row, wide_kernel=5 if paper_5x5 else 3)
            self.add_module(name, module)
            channels = module.out_channels
        if aux_logits:
            for tap, head in AUX_TAPS.items():
                self.add_module(head, InceptionAuxV1(getattr(self, tap).out_channels, num_classes, dropout_aux))

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self.feature_info = self.build_feature_info()
        init_inception_weights(self, std=0.01)

    def pack_outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> GoogLeNetOutputs:
        return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"])


@register_model(
    "googlenet",
    family="inception",
    paper="Szegedy et al., Going Deeper with Convolutions",
    year=2015,
    default_input=(3, 224, 224),
    min_input_size=15,
    params=6_624_904,
    macs=1_498_000_000,
    top1=69.778,
    dataset="ImageNet-1k",
    source="torchvision 0.28 GoogLeNet_Weights.IMAGENET1K_V1 (num_params without the aux heads, "
    "_ops 1.498 G multiply-adds, acc@1); the paper budgets 1.5 G multiply-adds",
)
def googlenet(
    num_classes: int = 1000,
    in_chans: int = 3,
    aux_logits: bool = False,
    transform_input: bool = False,
    paper_5x5: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet (Inception v1), 6.6 M parameters (13.0 M with the aux heads), 1.5 G MACs at 224."""
    return GoogLeNet(num_classes, in_chans, aux_logits, transform_input, paper_5x5, dropout, dropout_aux)
