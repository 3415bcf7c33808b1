"""Where model files register their variants (read through :mod:`cnnzoo.registry`)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

__all__ = ["ModelEntry", "ModelInfo", "MODELS", "register_model", "torchvision_source"]


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model.

    ``params`` and ``macs`` are the *published* counts (MACs = multiply-adds at
    ``default_input``; FLOPs = 2 x MACs), ``top1`` the published ImageNet (or CIFAR) top-1
    accuracy in percent, all with their ``source``; ``None`` where nothing is published.
    ``defaults`` are the builder's options and their default values (read from its
    signature, so they are always the ones ``create_model`` uses).
    """

    name: str
    family: str
    paper: str
    year: int
    task: str = "classification"
    default_input: tuple[int, int, int] = (3, 224, 224)
    min_input_size: int = 32
    params: int | None = None
    macs: int | None = None
    top1: float | None = None
    dataset: str = "ImageNet-1k"
    source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry:
    builder: Callable[..., nn.Module]
    info: ModelInfo


MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    year: int,
    **info: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``.

    The remaining keyword arguments fill :class:`ModelInfo` (``default_input``,
    ``min_input_size``, ``params``, ``macs``, ``top1``, ``dataset``, ``source``, ``task``).
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise RuntimeError(f"model {name!r} is registered twice")
        defaults = {
            option: parameter.default
            for option, parameter in inspect.signature(builder).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        MODELS[name] = ModelEntry(
            builder, ModelInfo(name=name, family=family, paper=paper, year=year, defaults=defaults, **info)
        )
        return builder

    return decorate


def torchvision_source(weights: str) -> str:
    """The ``source`` of numbers read from torchvision's weights metadata (recorded in
    tests/fixtures/torchvision/metadata.json); its "GFLOPS" count multiply-adds."""
    return f"torchvision 0.28 {weights} metadata (num_params, GFLOPS = multiply-adds, acc@1)"
