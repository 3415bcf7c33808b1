"""Pretrained weights: torchvision's published ImageNet-1k files, local files and cnnzoo runs,
loaded into any cnnzoo model of the same architecture, with a new head or other input
channels where the model asks for them.

``cnnzoo.create_model(name, weights=...)`` is the entry point; it leaves the weights'
metadata on the model as ``model.pretrained_cfg`` (preprocessing, class names, the published
accuracy and its source, what was loaded), which the engine records in a run.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from cnnzoo.pretrained.apply import (
    BACKBONE,
    LoadReport,
    adapt_input_conv,
    adapt_normalization,
    freeze,
    head_prefixes,
    is_under,
    keep_frozen_norms_in_eval,
    load_into,
)
from cnnzoo.pretrained.catalog import (
    BUILD_OPTIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PublishedWeights,
    imagenet_classes,
    is_weights_name,
    published_models,
    published_weights,
)
from cnnzoo.pretrained.sources import Weights, hub_checkpoints_dir, read_weights

__all__ = [
    "BACKBONE", "IMAGENET_MEAN", "IMAGENET_STD", "LoadReport", "PublishedWeights", "Weights", "adapt_input_conv", "adapt_normalization",
    "freeze", "head_prefixes", "hub_checkpoints_dir", "imagenet_classes", "is_under", "keep_frozen_norms_in_eval", "load_into", "load_pretrained",
    "published_models", "published_weights", "read_weights", "weights_build_options",
]


def weights_build_options(model_name: str, spec: str | os.PathLike | None, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with what the published weights ``spec`` of ``model_name`` need of the
    builder (:data:`BUILD_OPTIONS`: GoogLeNet's and Inception v3's ``transform_input``) where
    the caller did not decide, and the model takes RGB."""
    if spec is None or not is_weights_name(str(spec)) or options.get("in_chans", 3) != 3:
        return options
    return {**BUILD_OPTIONS.get(model_name, {}), **options}


def load_pretrained(model: nn.Module, model_name: str, spec: str | os.PathLike) -> dict[str, Any]:
    """Load the weights ``spec`` names (see :func:`read_weights`) into ``model``, built as
    registered model ``model_name``, and return its ``pretrained_cfg``: the weights'
    description, preprocessing, class names (``None`` for a new head), source and a line
    saying what was loaded."""
    weights = read_weights(spec, model_name)
    report = load_into(model, weights.state_dict)
    return {
        "weights": weights.description, "mean": weights.mean, "std": weights.std,
        "resize_size": weights.resize_size, "crop_size": weights.crop_size, "interpolation": weights.interpolation,
        "class_names": None if report.new else weights.class_names, "source": weights.source,
        "loaded": report.line(), "new_head": bool(report.new),
    }
