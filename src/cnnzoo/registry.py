"""The model registry: ``create_model``, ``create_meta_model``, ``list_models`` and
``model_info``."""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any

from torch import nn

import cnnzoo.models  # noqa: F401  (importing the model files registers them)
from cnnzoo.models._register import MODELS, ModelInfo, UnknownModelError, find_model
from cnnzoo.utils.meta import building_on_meta
from cnnzoo.utils.text import first_line

__all__ = ["UnknownModelError", "create_meta_model", "create_model", "list_models", "model_info"]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder
    (``num_classes``, ``in_chans`` and the model's own options)."""
    entry = find_model(name)
    try:
        inspect.signature(entry.builder).bind(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad option for model {name!r}: {err}") from None
    return entry.builder(**kwargs)


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


def model_info(name: str) -> ModelInfo:
    """Paper, year, default input size, published parameter / MAC counts and their source."""
    return find_model(name).info
