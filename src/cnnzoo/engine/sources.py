"""The model a command works on: a run directory, a checkpoint, a registered name or a module.

``cnnzoo export``, ``cnnzoo benchmark`` and :func:`cnnzoo.engine.compile.compile_model` take
any of the four; :func:`load_model_source` builds the model (eval mode) and says where it came
from, which decides its default input size. :func:`data_of_run` rebuilds a run's own data
set, as evaluation and int8 calibration need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from cnnzoo.data import build_data
from cnnzoo.data.reconstruction import data_for_task
from cnnzoo.data.spec import DataSpec
from cnnzoo.engine.checkpoint import load_trained
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.pretrained import IMAGENET_MEAN, IMAGENET_STD, adapt_normalization
from cnnzoo.registry import create_model, model_info

__all__ = [
    "ModelSource", "data_of_run", "default_input_size", "load_model_source", "meta_of_weights", "resolve_input_size",
]


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: a trained run (``run``, its metadata), a registered model
    (``name`` and its ``model_kwargs``; ``pretrained``, the metadata of the weights it was
    built with, as a run's would be), or a module built by the caller (none of them)."""

    name: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    run: RunMeta | None = None
    pretrained: RunMeta | None = None

    @property
    def meta(self) -> RunMeta | None:
        """How to feed and read the model: the run's metadata, or its weights'."""
        return self.run or self.pretrained

    def task(self, model: nn.Module) -> str:
        """``"classification"`` or ``"segmentation"``: the run's, the registry's, or the
        module's own kind."""
        if self.run is not None:
            return self.run.task
        if self.name is not None:
            return model_info(self.name).task
        return "segmentation" if isinstance(model, Segmenter) else "classification"


def load_model_source(
    source: str | Path | nn.Module, model_kwargs: dict[str, Any] | None = None, which: str = "best",
    weights: str | Path | None = None,
) -> tuple[nn.Module, ModelSource]:
    """``(model in eval mode, where it came from)`` for a run directory, a ``.safetensors``
    checkpoint, a registered model name or an ``nn.Module``.

    ``model_kwargs`` and ``weights`` (:func:`cnnzoo.create_model`'s) go to the builder of a
    registered name and are an error with anything else; ``which`` is the checkpoint of a
    run directory (``"best"`` or ``"last"``).
    """
    extras = "model options" if model_kwargs else "--weights" if weights is not None else None
    if isinstance(source, nn.Module):
        if extras:
            raise ValueError(f"{extras} apply only to a registered model name, not to a built model")
        return source.eval(), ModelSource()
    path = Path(source)
    if path.exists():
        if extras:
            raise ValueError(f"{extras} apply only to a registered model name, not to the run {path}")
        trained = load_trained(path, which)
        return trained.model.eval(), ModelSource(trained.meta.model, trained.meta.model_kwargs, trained.meta)
    text = str(source)
    if text.endswith(".safetensors") or "/" in text or "\\" in text:
        raise FileNotFoundError(f"no run directory or checkpoint at {text}")
    model = create_model(text, weights=weights, **(model_kwargs or {}))
    cfg = getattr(model, "pretrained_cfg", None)
    pretrained = meta_of_weights(text, model, cfg, dict(model_kwargs or {})) if cfg is not None else None
    return model.eval(), ModelSource(text, dict(model_kwargs or {}), pretrained=pretrained)


def meta_of_weights(name: str, model: nn.Module, cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> RunMeta:
    """A run's metadata for registered model ``name`` built with pretrained weights
    (``cfg``, its ``pretrained_cfg``): what prediction and export need to feed it and name
    its classes. Unknown normalization is ImageNet's; a new head's classes are numbered."""
    info = model_info(name)
    in_chans = int(getattr(model, "in_chans", info.default_input[0]))
    num_classes = int(getattr(model, "num_classes", 0) or len(cfg.get("class_names") or ()))
    crop = cfg.get("crop_size")
    mean, std = adapt_normalization(cfg.get("mean") or IMAGENET_MEAN, cfg.get("std") or IMAGENET_STD, in_chans)
    return RunMeta(
        model=name, model_kwargs=model_kwargs, task=info.task, num_classes=num_classes, in_chans=in_chans,
        class_names=list(cfg.get("class_names") or [f"class{i}" for i in range(num_classes)]),
        mean=mean, std=std, image_size=(crop, crop) if crop else tuple(info.default_input[1:]),
        ignore_index=None, data="", epoch=0, metrics={}, resize_size=cfg.get("resize_size"),
        interpolation=cfg.get("interpolation") or "bilinear", weights=cfg["weights"],
    )


def default_input_size(model: nn.Module, source: ModelSource) -> tuple[int, int, int]:
    """The input size a model is exported at when none is given: a trained run's
    ``in_chans x image_size``, a registered model's default input (with its ``in_chans``)."""
    if source.meta is not None:
        return (source.meta.in_chans, *source.meta.image_size)
    if source.name is not None:
        _, height, width = model_info(source.name).default_input
        return (_model_channels(model, source), height, width)
    raise ValueError("the input size is not known for this model: give one (C, H, W)")


def _model_channels(model: nn.Module, source: ModelSource) -> int:
    """Input channels: the run's, else the model's own ``in_chans`` (every zoo model has one),
    else the registered model's default input's."""
    if source.meta is not None:
        return source.meta.in_chans
    channels = getattr(model, "in_chans", None)
    if channels is None and source.name is not None:
        channels = model_info(source.name).default_input[0]
    if channels is None:
        raise ValueError("the model's input channels are not known: give the input size as (C, H, W)")
    return int(channels)


def resolve_input_size(
    model: nn.Module, source: ModelSource, input_size: tuple[int, ...] | None
) -> tuple[int, int, int]:
    if input_size is None:
        size = default_input_size(model, source)
    elif len(input_size) == 2:
        size = (_model_channels(model, source), *input_size)
    else:
        size = tuple(input_size)
    return _check_input_size(size)


def _check_input_size(size: tuple[int, ...]) -> tuple[int, int, int]:
    if len(size) != 3 or not all(isinstance(n, int) and n > 0 for n in size):
        raise ValueError(f"input size must be three positive integers (C, H, W), got {size}")
    return size  # type: ignore[return-value]


def data_of_run(meta: RunMeta, data: str | None = None, data_dir: str | None = None) -> DataSpec:
    """The data set to score on, at the checkpoint's image size and with its normalization:
    its own (rebuilt with the run's sizes and seed) unless another is named."""
    config = meta.config
    own_data = data is None or data == meta.data
    spec = data_for_task(build_data(
        meta.data if data is None else data,
        data_dir=data_dir or (config.data_dir if config else None),
        image_size=meta.image_size,
        train_size=config.train_size if own_data and config else None,
        val_size=config.val_size if own_data and config else None,
        seed=config.seed if own_data and config else 0,
    ), meta.task)
    for key in ("task", "num_classes", "in_chans"):
        if getattr(spec, key) != getattr(meta, key):
            raise ValueError(
                f"data {spec.name!r} does not fit the checkpoint: {key} {getattr(spec, key)} vs {getattr(meta, key)}"
            )
    # The model sees images normalized as in training, whatever the new data's statistics.
    return replace(spec, mean=meta.mean, std=meta.std, ignore_index=meta.ignore_index)
