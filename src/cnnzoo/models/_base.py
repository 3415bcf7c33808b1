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

On top of the contract, the timm-style head API (Wightman, "PyTorch Image Models", the
library most users of these networks know): ``get_classifier()`` / ``reset_classifier()``
(a new final layer, or none: ``num_classes=0`` gives the features it would read) and
``set_global_pool()`` ("avg", "max", "avgmax") where the head pools the last map and then
classifies. Each family names its final layer (``classifier_name``) and, where it has one,
its global pooling (``global_pool_name``). :class:`PretrainedMixin` gives every model built
by ``cnnzoo.create_model`` ``save_pretrained`` / ``from_pretrained`` (Hugging Face Hub folders).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Sequence, TypeVar

import torch
from torch import nn

from cnnzoo.layers.heads import make_global_pool, pool_type_of

__all__ = [
    "Classifier",
    "FeatureInfo",
    "PretrainedMixin",
    "check_choice",
    "check_flag",
    "check_image_batch",
    "check_positive_int",
    "forward_with_taps",
    "he_normal_init",
    "new_final_layer",
    "replace_submodule",
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


def _hub() -> ModuleType:
    """:mod:`cnnzoo.models._hub`, imported on first use: huggingface_hub adds about 0.2 s to
    the start of every ``cnnzoo`` command, and only saving and loading model folders needs it."""
    from cnnzoo.models import _hub  # start-up time of the command line (see the docstring)

    return _hub


Model = TypeVar("Model", bound="PretrainedMixin")


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for the zoo's models (classifiers and
    segmenters), through huggingface_hub's ``ModelHubMixin`` (:mod:`cnnzoo.models._hub`).

    A folder holds ``model.safetensors`` (the weights), ``config.json`` (the registered name,
    the options ``cnnzoo.create_model`` was given, a classifier's head as it is now, and the
    weights' ``pretrained_cfg`` when they have one) and the ``README.md`` model card.
    """

    def save_pretrained(self, save_directory: str | os.PathLike, **hub_options: Any) -> str | None:
        """Write the model's folder (``push_to_hub=True, repo_id=...`` also uploads it, as
        huggingface_hub's ``ModelHubMixin.save_pretrained``). The model must come from
        ``cnnzoo.create_model``, whose name and options the folder records."""
        return _hub().save_pretrained(self, save_directory, **hub_options)

    @classmethod
    def from_pretrained(cls: type[Model], path_or_repo_id: str | os.PathLike, **options: Any) -> Model:
        """The model of a folder written by :meth:`save_pretrained` (a local folder or a Hub
        repository id), rebuilt and loaded; ``options`` override saved build options that
        leave the weights' shapes alone (``drop_path_rate=0.1`` for fine-tuning). ``ValueError``
        unless it is a ``cls`` (``cnnzoo.from_pretrained`` takes any model)."""
        model = _hub().from_pretrained(path_or_repo_id, **options)
        if not isinstance(model, cls):
            raise ValueError(f"{path_or_repo_id} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def new_final_layer(kind: type[nn.Module], features: int, num_classes: int, like: torch.Tensor) -> nn.Module:
    """A freshly initialized final layer from ``features`` inputs to ``num_classes`` outputs:
    an ``nn.Linear``, or for ``kind=nn.Conv2d`` a 1x1 convolution (SqueezeNet's conv10), on
    ``like``'s device and dtype; an identity for ``num_classes=0``. PyTorch's default
    initialization, as timm's ``reset_classifier``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative integer (0: no final layer), got {num_classes!r}")
    if num_classes == 0:
        return nn.Identity()
    if kind is nn.Conv2d:
        return nn.Conv2d(features, num_classes, kernel_size=1, device=like.device, dtype=like.dtype)
    return nn.Linear(features, num_classes, device=like.device, dtype=like.dtype)


def replace_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted ``name`` of ``root`` (``head.fc``, ``classifier.6``)."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


class Classifier(PretrainedMixin, nn.Module):
    """Base class of the zoo's classifiers.

    ``__init__(num_classes, in_chans)`` checks and stores both. Subclasses then set
    ``self.feature_info`` and ``self.min_input_size``, implement ``_forward_stages`` (the
    list of stage outputs) and ``forward_head``, and declare their head: ``head_names``,
    ``classifier_name``, ``global_pool_name`` and ``head_convolutions``.
    """

    in_chans: int
    num_classes: int
    min_input_size: int
    feature_info: list[FeatureInfo]
    # The top-level children that form the head, in the order forward_head runs them.
    head_names: ClassVar[tuple[str, ...]] = ()
    # The dotted name of the final layer, which gives the class scores (inside the head).
    classifier_name: ClassVar[str] = ""
    # The dotted name of the head's global pooling, where the head pools the last map and
    # then classifies; None where it reads a fixed-size map or pools class scores.
    global_pool_name: ClassVar[str | None] = None

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

    def get_classifier(self) -> nn.Module:
        """The final layer, which gives the class scores (timm's name); an identity after
        ``reset_classifier(0)``."""
        if not self.classifier_name:
            raise NotImplementedError(f"{type(self).__name__} does not declare its classifier_name")
        return self.get_submodule(self.classifier_name)

    def _built_final_layer(self) -> tuple[type[nn.Module], int]:
        """The final layer's kind (``nn.Linear`` or ``nn.Conv2d``) and inputs as the family
        built it, remembered: after ``reset_classifier(0)`` it is an identity."""
        if "_final_layer_shape" not in self.__dict__:
            layer = self.get_classifier()
            features = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
            self._final_layer_shape = (type(layer), features)
        return self._final_layer_shape

    @property
    def num_features(self) -> int:
        """How many features the final layer reads (timm's name): the pooled channels of the
        last map for a head that pools and then classifies, fc7's 4096 for AlexNet and VGG."""
        return self._built_final_layer()[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A freshly initialized final layer for ``num_classes`` classes, everything else kept
        (timm's ``reset_classifier``, for fine-tuning on other classes). ``num_classes=0``
        removes it: ``forward`` then returns the ``num_features`` features it would read
        (the pooled features, for a head that pools and then classifies). ``global_pool``
        also changes the pooling (:meth:`set_global_pool`)."""
        kind, features = self._built_final_layer()
        layer = new_final_layer(kind, features, num_classes, like=next(self.parameters()))
        if global_pool is not None:
            self.set_global_pool(global_pool)
        replace_submodule(self, self.classifier_name, layer)
        self.num_classes = num_classes

    @property
    def global_pool_type(self) -> str | None:
        """The head's global pooling, "avg", "max" or "avgmax" (``None``: the head has none)."""
        return pool_type_of(self.get_submodule(self.global_pool_name)) if self.global_pool_name else None

    def set_global_pool(self, pool_type: str) -> None:
        """Pool the last feature map by ``pool_type`` before the final layer: "avg" (the
        papers' and the default), "max", or "avgmax" (the mean of the two, as timm). The
        pooling has no parameters, so the weights stay as they are."""
        if self.global_pool_name is None:
            raise ValueError(
                f"{type(self).__name__}'s head does not pool the last feature map and then classify, "
                "so it has no global_pool to choose (ResNet, ResNeXt, DenseNet, MobileNet, EfficientNet, "
                "GoogLeNet and Inception v3 have one)"
            )
        replace_submodule(self, self.global_pool_name, make_global_pool(pool_type))


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
