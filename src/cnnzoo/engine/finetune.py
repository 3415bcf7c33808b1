"""What a run that starts from pretrained weights takes from them: their normalization, and
how prediction resizes an image.

A pretrained network has learned on inputs normalized with its training set's statistics
(ImageNet's for torchvision's weights), so fine-tuning feeds it the same way rather than
with the new data's own statistics. For a model whose input channels differ from the
weights' (the first convolution adapted by :func:`cnnzoo.pretrained.adapt_input_conv`), the
weights' per-channel means and stds are averaged (:func:`cnnzoo.pretrained.adapt_normalization`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torch import nn

from cnnzoo.data.spec import DataSpec
from cnnzoo.pretrained import adapt_normalization, freeze
from cnnzoo.utils.text import first_few

__all__ = ["prediction_resize", "start_from_weights", "with_pretrained_preprocessing"]


def start_from_weights(model: nn.Module, spec: DataSpec, freeze_upto: str | None,
                       write: Callable[[str], None]) -> tuple[DataSpec, dict[str, Any] | None]:
    """``(spec, pretrained_cfg)`` of a run about to train ``model``: the data normalized as
    the model's pretrained weights were (when it has them), and the model frozen up to
    ``freeze_upto``; each said in one line through ``write``."""
    pretrained = getattr(model, "pretrained_cfg", None)
    if pretrained is not None:
        write(f"weights: {pretrained['weights']}: {pretrained['loaded']}")
        names = pretrained.get("class_names")
        if names and list(names) != list(spec.class_names):  # a head of the same size, for other classes
            write(f"note: the weights' head was trained on classes {first_few(list(names), 3)}, this data's are "
                  f"{first_few(list(spec.class_names), 3)}: it is kept, and training re-learns which is which")
        spec = with_pretrained_preprocessing(spec, pretrained)
    if freeze_upto:
        frozen = freeze(model, freeze_upto)
        write(f"frozen: {len(frozen)} of {sum(1 for _ in model.parameters())} parameter tensors (up to {freeze_upto})")
    return spec, pretrained


def with_pretrained_preprocessing(spec: DataSpec, pretrained: dict[str, Any]) -> DataSpec:
    """``spec`` normalized with the weights' mean and std where they carry them (see the
    module docstring for another number of channels)."""
    mean, std = pretrained.get("mean"), pretrained.get("std")
    if not mean or not std:
        return spec
    mean, std = adapt_normalization(mean, std, spec.in_chans)
    return replace(spec, mean=mean, std=std)


def prediction_resize(pretrained: dict[str, Any] | None, image_size: tuple[int, int]) -> dict[str, Any]:
    """The :class:`~cnnzoo.engine.runmeta.RunMeta` fields of a run started from
    ``pretrained``: ``weights``, ``interpolation`` and, for weights evaluated with a resize
    then a centre crop (torchvision's 256 -> 224), ``resize_size`` at the same ratio to the
    run's own image size. Empty for a run from random initialization."""
    if pretrained is None:
        return {}
    fields: dict[str, Any] = {"weights": pretrained["weights"], "interpolation": pretrained["interpolation"]}
    if pretrained.get("resize_size") and pretrained.get("crop_size"):
        fields["resize_size"] = round(min(image_size) * pretrained["resize_size"] / pretrained["crop_size"])
    return fields
