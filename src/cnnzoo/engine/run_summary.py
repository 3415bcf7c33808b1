"""What a run is about to do, said before its first epoch: the model and its cost, the data
and how its classes are shared, the schedule, the hardware and precision, the weights.

A run that trains the wrong thing for an hour (three classes where the user has four, a
class with 2 % of the samples, bf16 on a CPU that emulates it) is cheaper to catch in
these lines than in its curves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnzoo.analysis import count_macs
from cnnzoo.data.spec import DataSpec
from cnnzoo.engine.config import TrainConfig
from cnnzoo.utils.text import format_count

__all__ = ["SHARE_SAMPLES", "class_shares", "describe_run"]

SHARE_SAMPLES = 64  # masks read for a segmentation set's pixel shares (all labels of a classification set)


def describe_run(model: nn.Module, spec: DataSpec, config: TrainConfig, device: torch.device,
                 steps_per_epoch: int, pretrained: dict[str, Any] | None) -> list[str]:
    """The lines a run prints before epoch 1 (see the module docstring)."""
    size = (spec.in_chans, *spec.image_size)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = f" ({format_count(trainable)} trainable)" if trainable != params else ""
    precision = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[config.amp]
    memory = ", channels-last" if config.channels_last else ""
    return [
        f"model:    {config.model}: {format_count(params)} parameters{frozen}, "
        f"{format_count(count_macs(model, size))} MACs per {'x'.join(map(str, size))} image",
        f"data:     {spec.name} ({spec.task}): {len(spec.train)} training and {len(spec.val)} validation samples, "
        + _targets_line(spec),
        f"schedule: {config.epochs} epoch{'s' * (config.epochs != 1)} of {steps_per_epoch} steps "
        f"(batch {config.batch_size}), "
        f"{config.optimizer} lr {config.lr:g}",
        f"hardware: {device}, {torch.get_num_threads()} threads, {precision}{memory}",
        f"weights:  {pretrained['weights'] if pretrained else f'random initialization (seed {config.seed})'}",
    ]


def _targets_line(spec: DataSpec) -> str:
    if spec.task == "reconstruction":
        return f"each image its own target ({spec.in_chans} channel{'s' * (spec.in_chans != 1)}, no classes)"
    shares = ", ".join(f"{name} {share:.0%}" for name, share in class_shares(spec).items())
    unit = "pixels" if spec.task == "segmentation" else "images"
    return f"{spec.num_classes} classes; training {unit} by class: {shares}"


def class_shares(spec: DataSpec) -> dict[str, float]:
    """The share of each class among the training samples (classification) or among the
    labelled pixels of up to :data:`SHARE_SAMPLES` training masks spread over the split
    (segmentation; the ignore label left out)."""
    counts = _label_counts(spec.train, spec.task, spec.ignore_index)
    total = sum(counts.values()) or 1
    return {name: counts.get(index, 0) / total for index, name in enumerate(spec.class_names)}


def _label_counts(dataset: Dataset, task: str, ignore_index: int | None) -> Counter:
    targets = getattr(dataset, "targets", None)
    if task == "classification" and isinstance(targets, torch.Tensor):
        return Counter(targets.long().tolist())
    items = getattr(dataset, "items", None)
    if task == "classification" and items is not None:
        return Counter(int(item.target) for item in items)
    step = max(1, len(dataset) // SHARE_SAMPLES) if task == "segmentation" else 1
    counts: Counter = Counter()
    for index in range(0, len(dataset), step):
        target = dataset[index]["target"]
        labels, numbers = torch.unique(target, return_counts=True)
        counts.update({int(label): int(number) for label, number in zip(labels, numbers) if int(label) != ignore_index})
    return counts
