"""Where model files register their variants (read through :mod:`cnnzoo.registry`), and the
one lookup of a registered name, with hints at the closest names.

Model files that build on other models (an FCN or a U-Net over a classifier) look names up
here too: models never import :mod:`cnnzoo.registry`, which sits above them.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

__all__ = [
    "BuildConfig", "MODELS", "ModelEntry", "ModelInfo", "UnknownModelError", "find_model", "register_model",
    "torchvision_source",
]

# What a model of each task is called in an error message.
_TASK_NOUNS = {"classification": "classifier", "segmentation": "segmenter"}


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model.

    ``params`` and ``macs`` are the *published* counts (MACs = multiply-adds at
    ``default_input``; FLOPs = 2 x MACs), ``top1`` the published ImageNet (or CIFAR) top-1
    accuracy in percent, all with their ``source``; ``None`` where nothing is published.
    Where those counts are torchvision's, ``paper_params``, ``paper_macs`` and ``paper_top1``
    are the authors' own figures (as rounded in their paper or README), with their
    ``paper_source``; ``None`` where the authors give none.
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
    paper_params: int | None = None
    paper_macs: int | None = None
    paper_top1: float | None = None
    paper_source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildConfig:
    """What a model was built from: its registered name and the options its builder was
    given. :meth:`ModelEntry.build` leaves it on the model as ``model.build_config``, which
    ``save_pretrained`` writes to ``config.json`` so ``from_pretrained`` can build it again."""

    name: str
    options: dict[str, Any]


@dataclass(frozen=True)
class ModelEntry:
    builder: Callable[..., nn.Module]
    info: ModelInfo

    def build(self, **options: Any) -> nn.Module:
        """The model built with ``options`` (``ValueError`` for an option the builder does
        not take), its :class:`BuildConfig` left on it as ``model.build_config``."""
        try:
            inspect.signature(self.builder).bind(**options)
        except TypeError as err:
            raise ValueError(f"bad option for model {self.info.name!r}: {err}") from None
        model = self.builder(**options)
        model.build_config = BuildConfig(self.info.name, dict(options))
        return model


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
    ``min_input_size``, ``params``, ``macs``, ``top1``, ``dataset``, ``source``, ``task`` and the
    authors' own ``paper_params``, ``paper_macs``, ``paper_top1``, ``paper_source``).
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


class UnknownModelError(ValueError):
    """A model name that is not registered; the message names the closest ones."""


def find_model(name: object, task: str | None = None, what: str = "model") -> ModelEntry:
    """The registered entry of ``name``, or an error a user can act on.

    ``what`` is the name's role in the message ("model", "backbone", "encoder"). An unknown
    name raises :class:`UnknownModelError` naming the closest registered ones (of ``task``,
    when given); with ``task``, a model of another task raises ``ValueError``. Every model
    file has registered itself by the time a model is built, so ``MODELS`` is complete.
    """
    entry = MODELS.get(name) if isinstance(name, str) else None
    if entry is not None and (task is None or entry.info.task == task):
        return entry
    rule = f"the {what} must be a registered {_TASK_NOUNS.get(task, f'{task} model')}"
    if entry is not None:  # a known name of the wrong task: a close name would only be a guess
        raise ValueError(f"{rule}; {name!r} is a {entry.info.task} model (`cnnzoo list` shows each model's task)")
    candidates = [n for n, e in MODELS.items() if task is None or e.info.task == task]
    close = difflib.get_close_matches(str(name), candidates, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "`cnnzoo list` shows them all"
    if task is None:  # "unknown model 'resnt18'; did you mean resnet18, ...?"
        raise UnknownModelError(f"unknown {what} {name!r}; {hint}")
    raise UnknownModelError(f"unknown {what} {name!r}: {rule}; {name!r} is not a registered model ({hint})")
