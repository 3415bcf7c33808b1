"""What an exported model says about itself: its input, its preprocessing and its classes.

:func:`export_metadata` gathers it from the run (``RunMeta``: task, classes, mean, std,
resize and crop, interpolation, weights) and from the model itself (the sizes it takes,
:func:`size_rule`). :mod:`cnnzoo.engine.export` writes it three ways: as the ONNX model's
``metadata_props`` (strings: :func:`metadata_strings`), in an OpenVINO graph's ``rt_info``,
and as the JSON sidecar ``NAME.json`` beside every export (:func:`sidecar_path`).
docs/predict_export.md lists the fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cnnzoo.data.spec import DENSE_TASKS
from cnnzoo.engine.sources import ModelSource
from cnnzoo.engine.tiling import accepts_size, output_size, size_step
from cnnzoo.utils.sizes import pair
from cnnzoo.utils.version import __version__

__all__ = [
    "SizeRule", "check_free_size", "export_metadata", "metadata_strings", "resize_method", "sidecar_path", "size_rule",
]

_MAX_PROBE = 1024  # how far above its minimum a model's smallest valid side is looked for
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class SizeRule:
    """The input sides a model takes: ``min_size + k * multiple`` for ``k = 0, 1, ...``
    (``multiple`` 1: any side from ``min_size`` on)."""

    min_size: int
    multiple: int

    def second_size(self, height: int, width: int) -> tuple[int, int]:
        """Another valid size than ``height x width`` (itself valid), taller and wider by
        different amounts, to check that a graph with a free size computes it right."""
        return height + self.multiple, width + 2 * self.multiple


def size_rule(model: nn.Module, side: int) -> SizeRule:
    """The model's :class:`SizeRule`, from its ``min_input_size`` and ``check_size`` (the
    Segmenter contract): ``multiple`` is the gap from the valid side ``side`` to the next
    (:func:`cnnzoo.engine.tiling.size_step`: ``2**depth`` for a U-Net, 1 for a model that
    takes every size), ``min_size`` the smallest side it takes (188 for the paper's U-Net)."""
    least = getattr(model, "min_input_size", 1)
    smallest = next((s for s in range(least, least + _MAX_PROBE) if accepts_size(model, s, s)), least)
    return SizeRule(smallest, size_step(model, side))


def check_free_size(model: nn.Module, name: str) -> None:
    """``ValueError`` for a classifier whose head pools to a fixed grid (AlexNet's and VGG's
    adaptive 6x6 / 7x7 pooling before their fully connected layers): only a classifier
    ending in global pooling is fully convolutional, taking any size from its minimum."""
    for head in getattr(model, "head_names", ()):  # the head that runs (not GoogLeNet's aux heads)
        for module in getattr(model, head, nn.Identity()).modules():
            if isinstance(module, _ADAPTIVE_POOLS) and _pool_size(module) != (1, 1):
                grid = "x".join(map(str, _pool_size(module)))
                raise ValueError(f"{name} cannot take a free height and width: its head pools to a fixed {grid} "
                                 "grid, not global pooling; export it at one size (--fixed-size)")


def _pool_size(pool: nn.Module) -> tuple[Any, Any]:
    size = pool.output_size
    return pair(size) if isinstance(size, int) else tuple(size)


def resize_method(task: str, source: ModelSource) -> str:
    """How an image becomes the model's input: ``"none"`` (a segmenter or an auto-encoder
    takes it at its own size), ``"shorter_side_then_center_crop"`` (shorter side to ``resize_size``, then the
    central input size) or ``"resize_to_input"`` (resized to the input size)."""
    if task in DENSE_TASKS:
        return "none"
    if source.meta is not None and source.meta.resize_size is not None:
        return "shorter_side_then_center_crop"
    return "resize_to_input"


def export_metadata(
    model: nn.Module, source: ModelSource, *, format: str, exporter: str, opset: int | None,
    input_size: tuple[int, int, int], dynamic_batch: bool, dynamic_size: bool, preprocess_in_graph: bool,
) -> dict[str, Any]:
    """The fields every export carries, as native JSON types (docs/predict_export.md): the
    preprocessing and classes are those of the run, or of the pretrained weights the model
    was built with (``source.meta``); ``None`` where neither is known."""
    run = source.meta
    task = source.task(model)
    channels, height, width = input_size
    rule = size_rule(model, height)
    return {
        "cnnzoo_version": __version__,
        "format": format, "exporter": exporter, "opset": opset,
        "model": source.name, "model_kwargs": dict(source.model_kwargs), "architecture": type(model).__name__,
        "weights": run.weights or None if run is not None else None,
        "task": task,
        "num_classes": run.num_classes if run is not None else getattr(model, "num_classes", None),
        "class_names": list(run.class_names) if run is not None else None,
        "input_size": [channels, height, width],
        "output_size": list(output_size(model, height, width)) if task in DENSE_TASKS else None,
        "dynamic_batch": dynamic_batch, "dynamic_size": dynamic_size,
        "min_size": rule.min_size, "size_multiple": rule.multiple,
        "channel_order": {1: "gray", 3: "RGB"}.get(channels),
        "input_dtype": "uint8" if preprocess_in_graph else "float32",
        "pixel_scale": 255 if preprocess_in_graph else 1,
        "normalized_in_graph": preprocess_in_graph,
        "mean": list(run.mean) if run is not None else None,
        "std": list(run.std) if run is not None else None,
        "resize_method": resize_method(task, source),
        "resize_size": run.resize_size if run is not None else None,
        "interpolation": run.interpolation if run is not None else "bilinear",
    }


def metadata_strings(metadata: dict[str, Any]) -> dict[str, str]:
    """The fields as strings (ONNX ``metadata_props``, OpenVINO ``rt_info``): strings as
    they are, everything else (numbers, lists, objects, ``true``) as JSON text; a field
    without a value (``None``: no run, no mean) is left out, so that a key holds one type."""
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in metadata.items() if value is not None}


def sidecar_path(out: Path) -> Path:
    """``NAME.json`` beside the export ``NAME.onnx`` / ``NAME.xml`` / ``NAME.pt``; ``ValueError``
    when that would be the export itself or a checkpoint's own sidecar."""
    if out.suffix == ".json":
        raise ValueError(f"an export's metadata goes to NAME.json beside it; give the export another suffix "
                         f"than .json (.onnx, .xml, .pt), got {out.name}")
    path = out.with_suffix(".json")
    if path.with_suffix(".safetensors").exists():
        raise ValueError(f"{path} is the metadata of the checkpoint {path.with_suffix('.safetensors')}; "
                         f"export under another name than {out.name}")
    return path
