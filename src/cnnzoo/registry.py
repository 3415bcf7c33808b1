"""The model registry: ``create_model``, ``create_meta_model``, ``list_models``,
``model_info`` and ``from_pretrained``."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any

from torch import nn

import cnnzoo.models  # noqa: F401  (importing the model files registers them)
from cnnzoo.models._base import Classifier, PretrainedMixin, check_flag
from cnnzoo.models._features import FeatureExtractor
from cnnzoo.models._register import MODELS, ModelInfo, UnknownModelError, find_model
from cnnzoo.pretrained import load_pretrained, weights_build_options
from cnnzoo.utils.meta import building_on_meta
from cnnzoo.utils.text import first_line

__all__ = [
    "UnknownModelError", "create_meta_model", "create_model", "data_options", "from_pretrained", "list_models",
    "model_info",
]


def create_model(
    name: str,
    weights: str | os.PathLike | None = None,
    *,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    global_pool: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder
    (``num_classes``, ``in_chans`` and the model's own options).

    ``weights``: torchvision's published weights by name (``"IMAGENET1K_V2"``, ``"DEFAULT"``),
    a ``.safetensors`` / ``.pth`` file or a cnnzoo run directory (:mod:`cnnzoo.pretrained`);
    a head of another ``num_classes`` starts fresh, another ``in_chans`` adapts the first
    convolution. The weights' metadata is left on the model as ``model.pretrained_cfg``.

    timm's options, for classifiers: ``global_pool`` ("avg", "max", "avgmax") pools the last
    map before the final layer (:meth:`~cnnzoo.models.Classifier.set_global_pool`);
    ``features_only=True`` returns a :class:`~cnnzoo.models._features.FeatureExtractor`, the
    classifier without its head, giving the maps ``out_indices`` (all by default) of
    ``forward_features``. The name and the builder's options are left on the model as
    ``model.build_config`` (what ``save_pretrained`` records).
    """
    entry = find_model(name)
    check_flag("features_only", features_only)
    if out_indices is not None and not features_only:
        raise ValueError("out_indices chooses the maps of features_only=True; pass features_only=True with it")
    kwargs = weights_build_options(entry.info.name, weights, kwargs)
    model = entry.build(**kwargs)
    if global_pool is not None:
        _classifier(model, name, "global_pool").set_global_pool(global_pool)
    if weights is not None:
        model.pretrained_cfg = load_pretrained(model, entry.info.name, weights)
    return FeatureExtractor(_classifier(model, name, "features_only"), out_indices) if features_only else model


def _classifier(model: nn.Module, name: str, option: str) -> Classifier:
    """``model``, or a ``ValueError`` saying that ``option`` is a classifier's."""
    if not isinstance(model, Classifier):
        raise ValueError(f"{option} applies to classifiers; {name} is a {find_model(name).info.task} model")
    return model


def from_pretrained(path_or_repo_id: str | os.PathLike, **options: Any) -> nn.Module:
    """The model of a folder written by ``model.save_pretrained(folder)`` (a local folder, or
    a Hugging Face Hub repository id, downloaded into huggingface_hub's cache): the registered
    model its ``config.json`` names, built with the saved options (``options`` override
    those that leave the weights' shapes alone), its head as saved, its weights loaded."""
    return PretrainedMixin.from_pretrained(path_or_repo_id, **options)


def create_meta_model(name: str, **kwargs: Any) -> nn.Module:
    """The model built on the meta device, its random initialization skipped: shapes,
    parameter counts and costs without memory or compute.

    An option of the wrong type or value (``num_classes="abc"``) that the builder does not
    check itself fails deep inside PyTorch; it is reported as a ``ValueError`` naming the
    options. Without options such a failure is no user's doing, and is raised as it is.
    """
    try:
        with building_on_meta():
            return create_model(name, **kwargs)
    except (TypeError, RuntimeError) as err:
        if not kwargs:
            raise
        options = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        raise ValueError(f"cannot build {name} with {options}: {first_line(err)}") from err


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"resnet*"``), sorted."""
    return sorted(
        name for name, entry in MODELS.items()
        if fnmatch.fnmatchcase(name, pattern) and (task is None or entry.info.task == task)
    )


def data_options(name: str, num_classes: int, in_chans: int) -> dict[str, int]:
    """The options that fit model ``name`` to a data set: ``num_classes`` and ``in_chans``,
    or ``in_chans`` alone for a reconstruction model (an auto-encoder gives back as many
    channels as it is fed, and has no classes)."""
    if find_model(name).info.task == "reconstruction":
        return {"in_chans": in_chans}
    return {"num_classes": num_classes, "in_chans": in_chans}


def model_info(name: str) -> ModelInfo:
    """Paper, year, default input size, published parameter / MAC counts and their source."""
    return find_model(name).info
