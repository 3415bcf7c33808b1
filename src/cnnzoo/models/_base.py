"""The contract every classifier in the zoo keeps.

A classifier takes ``num_classes`` and ``in_chans``; ``forward_features(x)`` returns one
feature map per stage, described by ``feature_info`` (channels and nominal stride, the
stride being the input-to-map downsampling factor); ``forward_head`` turns the last map
into logits. An input smaller than ``min_input_size`` raises a ``ValueError`` naming the
minimum, before any layer fails with a shape error of its own.

Each family also declares its head, so that the head can be dropped or rewritten without
running the model: ``head_children()`` names the top-level children ``forward_features``
never runs (a segmentation encoder replaces them), and ``head_convolutions()`` writes the
head as the equivalent convolutions (:func:`cnnzoo.models.convolutionalize.convolutionalize`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

__all__ = [
    "Classifier",
    "FeatureInfo",
    "check_choice",
    "check_flag",
    "check_image_batch",
    "check_positive_int",
    "forward_with_taps",
    "he_normal_init",
]


@dataclass(frozen=True)
class FeatureInfo:
    """One stage of a backbone: its output channels, its stride and a name for it."""

    channels: int
    stride: int
    name: str


def check_image_batch(x: torch.Tensor, in_chans: int, min_size: int, model_name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is an ``N x in_chans x H x W`` batch with H, W >= min_size."""
    if x.dim() != 4:
        raise ValueError(
            f"{model_name} expects a 4-D batch N x C x H x W, got a tensor of shape {tuple(x.shape)}"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{model_name} expects {in_chans} input channel(s), got {x.shape[1]} "
            f"(create the model with in_chans={x.shape[1]})"
        )
    height, width = x.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(
            f"{model_name} needs an input of at least {min_size}x{min_size} pixels, "
            f"got {height}x{width}"
        )


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer of at least 1 (``num_classes=0`` or
    ``in_chans=-1`` would otherwise fail deep inside a layer, or not at all)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_flag(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is ``True`` or ``False`` (a string such as
    ``"same"`` would otherwise pass as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_choice(name: str, value: object, choices: Collection[str]) -> None:
    """Raise ``ValueError`` naming the choices unless ``value`` is one of them; models call
    it before building any layer, so a typo costs nothing."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


class Classifier(nn.Module):
    """Base class of the zoo's classifiers.

    ``__init__(num_classes, in_chans)`` checks and stores both. Subclasses then set
    ``self.feature_info`` and ``self.min_input_size``, implement ``_forward_stages`` (the
    list of stage outputs) and ``forward_head``, and declare their head: ``head_names``
    and ``head_convolutions``.
    """

    in_chans: int
    num_classes: int
    min_input_size: int
    feature_info: list[FeatureInfo]
    # The top-level children that form the head, in the order forward_head runs them.
    head_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_chans", in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the last stage's feature map."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, self.min_input_size, type(self).__name__)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per stage, shallow to deep, as described by ``feature_info``."""
        self.check_input(x)
        return self._forward_stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])

    def head_children(self) -> list[str]:
        """Names of the top-level children that form the head: those ``forward_features``
        never runs (``head_names``, less any this instance was built without)."""
        if not self.head_names:
            raise NotImplementedError(f"{type(self).__name__} does not declare its head_names")
        return [name for name in self.head_names if name in self._modules]

    def head_convolutions(self) -> list[nn.Module]:
        """The head as layers mapping the last feature map to an ``N x K x h' x w'`` map of
        class scores: each linear layer as the convolution computing it on every window
        (:func:`~cnnzoo.models.convolutionalize.conv_from_linear`), the global pooling left
        out. The layers are copies: the classifier is not modified."""
        raise ValueError(
            f"cannot convolutionalize a {type(self).__name__}: it does not write its head as "
            "convolutions (Classifier.head_convolutions)"
        )


def he_normal_init(model: nn.Module, mode: str = "fan_out") -> None:
    """He et al. 2015 ("Delving Deep into Rectifiers") normal initialization of every conv,
    ``std = sqrt(2 / fan)``, with zero conv biases; batch norm starts as the identity.

    ``mode="fan_out"`` (fan = k^2 * C_out / groups) keeps the gradients' variance through
    the backward pass, as torchvision's ResNet, VGG, MobileNet and EfficientNet do;
    ``"fan_in"`` keeps the activations' variance in the forward pass (DenseNet).
    Linear layers are left to each model.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode=mode, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def forward_with_taps(layers: nn.Sequential, x: torch.Tensor, taps: Sequence[int]) -> list[torch.Tensor]:
    """Run ``layers`` on ``x`` and return the outputs of the layers at positions ``taps``.

    Lets a network keep torchvision's flat ``features.N`` layout and still expose its
    stage outputs (AlexNet, VGG, SqueezeNet).
    """
    wanted, outputs = set(taps), []
    for index, layer in enumerate(layers):
        x = layer(x)
        if index in wanted:
            outputs.append(x)
    return outputs
