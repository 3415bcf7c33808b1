"""Evaluation: the task's metrics of a model on a data set's split, the one path that both
training (after every epoch) and ``cnnzoo evaluate`` (on a saved checkpoint) take.

* :func:`evaluate`: a model and a loader of batches -> metrics (and the mean loss); under
  torchrun every process passes its share and gets the metrics of the whole set;
* :func:`evaluate_checkpoint`: a run directory or checkpoint -> its metrics on its own data
  set (rebuilt with the run's settings, so the validation split is the one the run was
  scored on) or on another with the same task, classes and channels.

Images are normalized with the checkpoint's mean and std, whatever the new data's
statistics; the loss is the run's own (:func:`cnnzoo.engine.losses.choose_loss`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnnzoo.data.spec import SPLITS, DataSpec
from cnnzoo.engine.batches import ModelFeed, align_to_logits, to_device
from cnnzoo.engine.checkpoint import load_trained
from cnnzoo.engine.distributed import DistributedContext, ShardSampler, all_reduce_sum, resolve_device
from cnnzoo.engine.losses import build_loss, choose_loss
from cnnzoo.engine.metrics import build_metrics
from cnnzoo.engine.sources import data_of_run

__all__ = ["evaluate", "evaluate_checkpoint", "has_weight_maps", "make_eval_loader", "scalar_metrics"]


def make_eval_loader(
    dataset: Dataset, batch_size: int, workers: int = 0, ctx: DistributedContext | None = None
) -> DataLoader:
    """Batches of ``dataset`` in order, this process's share of them (every sample once
    over all processes)."""
    ctx = ctx or DistributedContext()
    return DataLoader(
        dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), ctx.rank, ctx.world_size),
        num_workers=workers, pin_memory=ctx.device.type == "cuda",
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    spec: DataSpec,
    device: str | torch.device = "cpu",
    *,
    loss: nn.Module | None = None,
    amp: str = "none",
    channels_last: bool = False,
    ctx: DistributedContext | None = None,
) -> dict[str, Any]:
    """The task's metrics (:func:`cnnzoo.engine.metrics.build_metrics`) of ``model`` on
    ``loader``'s batches, normalized with ``spec.mean`` / ``spec.std``; with ``loss``, also
    ``"loss"``, the mean over samples. Under torchrun every process passes its share and
    gets the metrics of the whole set."""
    device = torch.device(device)
    ctx = ctx or DistributedContext(device=device)
    model.eval()
    metrics = build_metrics(spec.task, spec.num_classes, spec.ignore_index).to(device)
    feed = ModelFeed.create(spec.mean, spec.std, device, model, amp, channels_last)
    loss_sum, count = 0.0, 0
    for batch in loader:
        batch = to_device(batch, device)
        logits = feed.logits(model, batch["image"])
        target, weight = align_to_logits(logits, batch["target"], batch.get("weight"))
        metrics.update(logits, target)
        if loss is not None:
            loss_sum += float(loss(logits, target, weight)) * len(target)
            count += len(target)
    results = metrics.compute()
    if loss is not None:
        loss_sum, count = all_reduce_sum([loss_sum, count], ctx)
        results["loss"] = loss_sum / count if count else math.nan
    return results


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The single-number metrics (not the confusion matrix nor per-class lists)."""
    return {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}


def has_weight_maps(dataset: Dataset) -> bool:
    """Whether a split's samples carry per-pixel loss weights (``"weight"``)."""
    return len(dataset) > 0 and "weight" in dataset[0]


def evaluate_checkpoint(
    checkpoint: str,
    which: str = "best",
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "val",
    batch_size: int = 64,
    workers: int = 0,
    device: str = "auto",
    amp: str = "none",
) -> dict[str, Any]:
    """The metrics of a checkpoint on a split (the checkpoint's own data set by default),
    with the run's loss, and what was evaluated: ``checkpoint``, ``epoch``, ``model``,
    ``data``, ``split``, ``samples`` and ``class_names``."""
    if batch_size < 1 or workers < 0:
        raise ValueError("--batch-size must be at least 1 and --workers 0 or more")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    target_device = resolve_device(device)
    trained = load_trained(checkpoint, which, map_location=target_device)
    spec = data_of_run(trained.meta, data, data_dir)
    dataset = spec.val if split == "val" else spec.train
    if len(dataset) == 0:
        raise ValueError(f"the {split} split of {spec.name!r} is empty")
    trained_with = trained.meta.config.loss if trained.meta.config is not None else None
    loss_name = choose_loss(trained_with, spec.task, has_weight_maps(dataset), for_evaluation=True)
    loss = build_loss(loss_name, task=spec.task, num_classes=spec.num_classes, ignore_index=spec.ignore_index)
    results = evaluate(trained.model, make_eval_loader(dataset, batch_size, workers), spec, target_device,
                       loss=loss, amp=amp)
    results.update(checkpoint=str(checkpoint), epoch=trained.meta.epoch, model=trained.meta.model,
                   data=spec.name, split=split, samples=len(dataset), class_names=list(spec.class_names))
    return results
