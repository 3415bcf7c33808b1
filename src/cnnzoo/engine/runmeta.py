"""What a checkpoint says about its run: one typed record, :class:`RunMeta`.

A trained model cannot be used from its weights alone: rebuilding it needs the registered
name, its options, its classes and channels; feeding it needs the image size and the
normalization it was trained with; judging it needs the metrics. The trainer fills one
:class:`RunMeta` per checkpoint, the sidecar ``NAME.json`` stores it (as the same keys it
always had, so older run directories still load), and evaluation, prediction, export and
the comparison read its fields, never string keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.engine.config import TrainConfig, config_keys, config_to_dict
from cnnzoo.utils.jsonsafe import json_safe
from cnnzoo.utils.sizes import pair

__all__ = ["REQUIRED_KEYS", "RunMeta"]

# The fields a checkpoint cannot do without (the others have defaults).
REQUIRED_KEYS = (
    "model", "model_kwargs", "task", "num_classes", "in_chans", "class_names", "mean", "std",
    "image_size", "ignore_index", "data", "epoch", "metrics",
)


@dataclass
class RunMeta:
    """A trained model's identity, preprocessing and results.

    ``model`` / ``model_kwargs`` / ``num_classes`` / ``in_chans`` rebuild it; ``image_size``
    (H, W), ``mean`` and ``std`` (per channel) feed it; ``class_names`` name its outputs;
    ``data`` (a built-in name or an absolute folder) and ``config`` (the resolved training
    options, ``None`` for a checkpoint written outside the trainer) rebuild its data;
    ``metrics`` are the validation results of ``epoch``; ``history`` has one row per epoch
    and ``best`` the best epoch's row.
    """

    model: str
    task: str
    num_classes: int
    in_chans: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: tuple[int, int]
    ignore_index: int | None
    data: str
    epoch: int
    metrics: dict[str, Any]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_source: str = ""
    step: int = 0
    config: TrainConfig | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    resize_size: int | None = None
    interpolation: str = "bilinear"
    weights: str = ""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunMeta:
        """The record from a sidecar's keys (others, like the file format's, are left out);
        ``ValueError`` naming the keys a checkpoint cannot do without when they are missing."""
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if missing:
            raise ValueError(f"checkpoint metadata lacks {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {key: value for key, value in values.items() if key in names}
        fields["mean"] = tuple(float(v) for v in fields["mean"])
        fields["std"] = tuple(float(v) for v in fields["std"])
        fields["image_size"] = pair(fields["image_size"])
        fields["class_names"] = list(fields["class_names"])
        fields["metrics"] = _restore_nan(dict(fields["metrics"]))
        fields["config"] = _config_from(fields.get("config"))
        fields["data_source"] = fields.get("data_source") or ""
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The record as strict JSON types (NaN metrics as ``null``; :meth:`from_dict` gives them back)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.config is not None:
            values["config"] = config_to_dict(self.config)
        return json_safe(values)


def _config_from(values: Mapping[str, Any] | TrainConfig | None) -> TrainConfig | None:
    """The resolved training options as a :class:`TrainConfig`; keys a later version added
    or dropped are ignored, so every version's run directories stay readable."""
    if values is None or isinstance(values, TrainConfig):
        return values
    known = set(config_keys())
    config = TrainConfig(**{key: value for key, value in values.items() if key in known})
    if config.image_size is not None:
        config.image_size = pair(config.image_size)
    return config


def _restore_nan(metrics: Any) -> Any:
    """Per-class lists had NaN (undefined) stored as null; give them back as NaN."""
    if isinstance(metrics, dict):
        return {k: _restore_nan(v) for k, v in metrics.items()}
    if isinstance(metrics, list):
        return [math.nan if v is None else _restore_nan(v) for v in metrics]
    return metrics
