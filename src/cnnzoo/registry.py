"""The model registry: ``create_model``, ``list_models`` and ``model_info``."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any

from torch import nn

import cnnzoo.models  # noqa: F401  (importing the model files registers them)
from cnnzoo.models._register import MODELS, ModelEntry, ModelInfo

__all__ = ["UnknownModelError", "create_model", "list_models", "model_info"]


class UnknownModelError(ValueError):
    """A model name that is not registered; the message names the closest ones."""


def _entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, MODELS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnzoo list` shows them all"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; keyword arguments go to its builder
    (``num_classes``, ``in_chans`` and the model's own options)."""
    entry = _entry(name)
    try:
        inspect.signature(entry.builder).bind(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad option for model {name!r}: {err}") from None
    return entry.builder(**kwargs)


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"resnet*"``), sorted."""
    return sorted(
        name for name, entry in MODELS.items()
        if fnmatch.fnmatchcase(name, pattern) and (task is None or entry.info.task == task)
    )


def model_info(name: str) -> ModelInfo:
    """Paper, year, default input size, published parameter / MAC counts and their source."""
    return _entry(name).info
