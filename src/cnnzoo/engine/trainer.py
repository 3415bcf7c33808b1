"""One training loop for classification and semantic segmentation.

:func:`train` runs a :class:`~cnnzoo.engine.config.TrainConfig` end to end: it builds the
data (:func:`cnnzoo.data.build_data`), the model (registry, with the data's classes and
channels), the loss, the metrics, the optimizer and the warm-up + cosine schedule; then
each epoch it trains, evaluates, writes ``metrics.csv``, the ``last`` checkpoint (and
``best``, by the task's main metric), and the plots, into the run directory.

What happens to a batch, in order: to the device; augmentation (training only, on the
device, masks moved with their images); normalization ``(image - mean) / std``; forward
under autocast when ``amp`` is set; for a valid-convolution U-Net, whose output is the
centre of its input, the target and weight map are cropped to the logits; the loss divided
by the number of batches accumulated, backward; every ``accum_steps`` batches: optional
gradient clipping, the optimizer step and the schedule step.

Reproducibility: the training order of epoch ``e`` is drawn from a generator seeded with
``seed + e``, and the random generators are reseeded from ``(seed, e, rank)`` at the start
of every epoch, so a run resumed from its ``last`` checkpoint continues exactly as if it had
not stopped (with ``workers=0``, or deterministic data loading).
"""

from __future__ import annotations

import copy
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnnzoo.engine.checkpoint import (
    capture_rng_state,
    load_training_state,
    load_weights,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from cnnzoo.engine.config import TrainConfig, config_to_dict
from cnnzoo.engine.distributed import (
    DistributedContext,
    ShardSampler,
    all_reduce_sum,
    any_process,
    broadcast_object,
    init_distributed,
    shutdown,
    sync_buffers,
    train_sampler,
    wrap_model,
)
from cnnzoo.engine.optim import build_optimizer, build_scheduler
from cnnzoo.engine.plots import plot_curves
from cnnzoo.engine.progress import Progress, format_duration
from cnnzoo.engine.rundir import RunDir, check_new_run_dir, default_run_dir
from cnnzoo.models._segmenter import center_crop

__all__ = ["NonFiniteLossError", "TrainResult", "evaluate", "make_eval_loader", "train"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The curves are redrawn after an epoch when this many seconds have passed since the last
# drawing (a drawing takes about a second), and always at the end of the run.
CURVES_INTERVAL = 60.0


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; the run stopped before the bad step."""


@dataclass
class TrainResult:
    """Where the run was written, one dict per epoch, and the best epoch's dict."""

    run_dir: Path
    history: list[dict[str, Any]]
    best: dict[str, Any] = field(default_factory=dict)


def train(config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train as ``config`` says (see the module docstring); under torchrun, in every process.

    Errors a user can cause (unknown data set, a model that cannot take the data, a run
    directory in use, a checkpoint of another architecture) raise ``ValueError`` /
    ``OSError`` before anything is written; a non-finite loss raises
    :class:`NonFiniteLossError` with the ``last`` checkpoint of the previous epoch intact.
    """
    ctx = init_distributed(config.device)
    try:
        return _Run(config, ctx, progress).run()
    finally:
        shutdown(ctx)


# --- batches ---------------------------------------------------------------------------

def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    non_blocking = device.type == "cuda"
    return {key: value.to(device, non_blocking=non_blocking) for key, value in batch.items()}


def _model_input(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype, channels_last: bool
) -> torch.Tensor:
    images = ((images - mean) / std).to(dtype)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _align(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None):
    """Target and weight cropped to the logits' size (a valid-convolution U-Net sees the
    centre of its input only)."""
    if logits.dim() == 4 and target.shape[-2:] != logits.shape[-2:]:
        height, width = logits.shape[-2:]
        target = center_crop(target, height, width)
        weight = None if weight is None else center_crop(weight, height, width)
    return target, weight


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def _norm_tensors(spec: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return mean, std


def _full_precision(logits: torch.Tensor) -> torch.Tensor:
    """Logits from autocast (half / bfloat16) as float32 for the loss and metrics."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _parameter_dtype(model: nn.Module) -> torch.dtype:
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


# --- evaluation ------------------------------------------------------------------------

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
    spec: Any,
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
    from cnnzoo.engine.metrics import build_metrics

    device = torch.device(device)
    ctx = ctx or DistributedContext(device=device)
    model.eval()
    metrics = build_metrics(spec.task, spec.num_classes, spec.ignore_index).to(device)
    mean, std = _norm_tensors(spec, device)
    dtype = _parameter_dtype(model)
    loss_sum, count = 0.0, 0
    for batch in loader:
        batch = _to_device(batch, device)
        with _autocast(device, amp):
            logits = model(_model_input(batch["image"], mean, std, dtype, channels_last))
        logits = _full_precision(logits)
        target, weight = _align(logits, batch["target"], batch.get("weight"))
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


def _seed_everything(*key: int) -> None:
    """Seed Python's, NumPy's and torch's generators from a tuple of integers."""
    state = np.random.SeedSequence(list(key)).generate_state(2)
    value = int(state[0]) << 32 | int(state[1])
    random.seed(value)
    np.random.seed(state[0])
    torch.manual_seed(value)


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed every generator from (seed, epoch, rank): a resumed run draws the same
    augmentations and dropout masks as an uninterrupted one."""
    _seed_everything(seed, epoch, rank)


def _is_better(value: float, best: float | None) -> bool:
    if value is None or math.isnan(value):
        return best is None
    return best is None or math.isnan(best) or value > best


# --- the run ---------------------------------------------------------------------------

class _Run:
    """The state of one training run (a class so that its pieces stay short functions)."""

    def __init__(self, config: TrainConfig, ctx: DistributedContext, progress: Progress | None) -> None:
        self.config = config
        self.ctx = ctx
        self.progress = progress or Progress(config.progress, enabled=ctx.is_main)
        self.best_pictures: dict[str, Any] | None = None
        self.curves_drawn = time.perf_counter()
        if not ctx.is_main:
            self.progress.enabled = False

    # set-up: everything a user can get wrong is checked before the run directory exists

    def run(self) -> TrainResult:
        config = self.config
        self.started = time.perf_counter()  # the time limit counts from here
        resumed = self._read_resume() if config.resume else None
        self.run_dir = self._choose_run_dir()
        self.spec = _load_data(config)
        self._check_task()
        _seed_everything(config.seed)  # the model's initial weights
        self.loss_name = config.loss or self._default_loss()
        self._build_model()
        self._build_training()
        if resumed is not None:
            self._restore(resumed)
        else:
            self.history, self.best, self.start_epoch, self.step = [], {}, 0, 0
        self.writer = RunDir(self.run_dir, enabled=self.ctx.is_main)
        self.writer.create()
        self.writer.write_config(self._resolved_config())
        try:
            self._loop()
        except NonFiniteLossError:
            self._draw_plots()  # the curves up to the failure help to see what went wrong
            raise
        else:
            self._draw_plots()
        finally:
            self.writer.close()
        return TrainResult(run_dir=self.run_dir, history=self.history, best=self.best)

    def _read_resume(self) -> tuple[dict, dict]:
        path = Path(self.config.resume)
        if not path.is_dir():
            raise FileNotFoundError(f"cannot resume: {path} is not a run directory")
        _, sidecar = read_checkpoint(path, "last")
        if sidecar["model"] != self.config.model:
            raise ValueError(
                f"cannot resume {path}: its checkpoint is a {sidecar['model']!r} model, not {self.config.model!r}"
            )
        return sidecar, load_training_state(path, "last")

    def _choose_run_dir(self) -> Path:
        config = self.config
        if config.resume:
            if config.out and Path(config.out).resolve() != Path(config.resume).resolve():
                raise ValueError("--out and --resume name different folders; a resumed run continues in its own")
            return Path(config.resume)
        path = Path(config.out) if config.out else default_run_dir(config.model, config.data)
        # Rank 0 checks and tells the others (one timestamp, one verdict): a process checking
        # after rank 0 had begun writing would see a folder in use.
        error = None
        if self.ctx.is_main:
            try:
                check_new_run_dir(path)
            except ValueError as err:
                error = str(err)
        path, error = broadcast_object((str(path), error), self.ctx)
        if error:
            raise ValueError(error)
        return Path(path)

    def _check_task(self) -> None:
        from cnnzoo.registry import model_info

        task = model_info(self.config.model).task
        if task != self.spec.task:
            raise ValueError(
                f"model {self.config.model!r} is a {task} model, but data {self.config.data!r} is a "
                f"{self.spec.task} data set"
            )

    def _default_loss(self) -> str:
        if self.spec.task == "segmentation" and len(self.spec.train) and "weight" in self.spec.train[0]:
            return "weighted-ce"
        return "ce"

    def _build_model(self) -> None:
        from cnnzoo.registry import create_model

        config, spec = self.config, self.spec
        kwargs = dict(config.model_kwargs)
        for key, value in (("num_classes", spec.num_classes), ("in_chans", spec.in_chans)):
            if kwargs.setdefault(key, value) != value:
                raise ValueError(f"model option {key}={kwargs[key]} contradicts the data ({key} = {value})")
        model = create_model(config.model, **kwargs)
        if hasattr(model, "check_input"):  # a size the model cannot take, before any compute
            model.check_input(torch.empty(1, spec.in_chans, *spec.image_size, device="meta"))
        self.model_kwargs = {k: v for k, v in kwargs.items() if k not in ("num_classes", "in_chans")}
        if config.amp == "fp16" and self.ctx.device.type != "cuda":
            raise ValueError("amp fp16 needs a GPU (its grad scaler is CUDA-only); on the CPU use --amp bf16")
        self.model = model.to(self.ctx.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _build_training(self) -> None:
        from cnnzoo.data.augment import build_augment
        from cnnzoo.engine.losses import build_loss
        from cnnzoo.engine.metrics import MAIN_METRIC

        config, spec, ctx = self.config, self.spec, self.ctx
        loss_options = dict(task=spec.task, num_classes=spec.num_classes, ignore_index=spec.ignore_index)
        self.loss = build_loss(self.loss_name, label_smoothing=config.label_smoothing, **loss_options)
        self.val_loss = build_loss(self.loss_name, **loss_options)  # validation loss: no smoothing
        self.main_metric = MAIN_METRIC[spec.task]
        self.augment = build_augment(spec.task, tuple(spec.image_size), config.augment)
        if len(spec.train) == 0 or len(spec.val) == 0:
            raise ValueError(f"data {config.data!r} has an empty {'training' if not len(spec.train) else 'validation'} split")
        self.sampler = train_sampler(spec.train, ctx, config.seed)
        # Drop a last partial batch: a batch of 1 breaks batch norm, and equal batches keep
        # gradient accumulation exact. Keep it when it is all there is.
        drop_last = len(self.sampler) >= config.batch_size
        self.train_loader = DataLoader(
            spec.train, batch_size=config.batch_size, sampler=self.sampler, drop_last=drop_last,
            num_workers=config.workers, pin_memory=ctx.device.type == "cuda",
        )
        self.val_loader = make_eval_loader(spec.val, config.batch_size, config.workers, ctx)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / config.accum_steps)
        total_steps = config.epochs * self.steps_per_epoch
        warmup_steps = min(total_steps, round(config.warmup_epochs * self.steps_per_epoch))
        self.optimizer = build_optimizer(
            self.model, config.optimizer, config.lr, config.weight_decay, config.momentum, config.nesterov
        )
        self.scheduler = build_scheduler(self.optimizer, total_steps, warmup_steps)
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self.ddp_model = wrap_model(self.model, ctx)
        self.forward_model = torch.compile(self.ddp_model) if config.compile else self.ddp_model
        self.mean, self.std = _norm_tensors(spec, ctx.device)

    def _restore(self, resumed: tuple[dict, dict]) -> None:
        sidecar, state = resumed
        load_weights(self.model, self.config.model, self.run_dir, "last")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        restore_rng_state(state["rng"])
        self.start_epoch = state["sampler"]["epoch"]
        self.step = state["step"]
        self.history = sidecar.get("history", [])
        self.best = sidecar.get("best", {})

    def _resolved_config(self) -> dict[str, Any]:
        values = config_to_dict(replace(self.config, loss=self.loss_name, resume=None))
        values["out"] = str(self.run_dir)
        values["model_kwargs"] = self.model_kwargs
        values["data"] = self._data_reference()
        return values

    def _data_reference(self) -> str:
        """A built-in set's name, or a folder's absolute path (a resumed run or a later
        `cnnzoo evaluate` may start from another working directory)."""
        from cnnzoo.data import DATASETS

        return self.config.data if self.config.data in DATASETS else self.spec.source or self.config.data

    # the epochs

    def _loop(self) -> None:
        config = self.config
        epoch_times: list[float] = []
        if self.start_epoch >= config.epochs:
            self.progress.write(f"{self.run_dir} already holds {self.start_epoch} epochs (--epochs {config.epochs})")
        for epoch in range(self.start_epoch, config.epochs):
            if config.time_limit and epoch_times:
                elapsed = time.perf_counter() - self.started
                # All processes stop together (their clocks differ a little).
                if any_process(elapsed + sum(epoch_times) / len(epoch_times) > config.time_limit, self.ctx):
                    self.progress.write(
                        f"stopping before epoch {epoch + 1}: it would not end within the time limit "
                        f"({format_duration(config.time_limit)}; {format_duration(elapsed)} used)"
                    )
                    break
            epoch_started = time.perf_counter()
            self._epoch(epoch)
            epoch_times.append(time.perf_counter() - epoch_started)

    def _epoch(self, epoch: int) -> None:
        _seed_epoch(self.config.seed, epoch, self.ctx.rank)
        self.sampler.set_epoch(epoch)
        train_stats, seconds = self._train_epoch(epoch)
        sync_buffers(self.model, self.ctx)
        results = evaluate(
            self.model, self.val_loader, self.spec, self.ctx.device, loss=self.val_loss,
            amp=self.config.amp, channels_last=self.config.channels_last, ctx=self.ctx,
        )
        if not math.isfinite(results["loss"]):
            self._stop_non_finite(results["loss"], epoch, "on the validation set")
        row = {"epoch": epoch + 1, **train_stats, "val_loss": results.pop("loss"), **scalar_metrics(results)}
        row["lr"] = self.scheduler.get_last_lr()[0]
        row["seconds"] = seconds
        self.history.append(row)
        improved = _is_better(row.get(self.main_metric), self.best.get(self.main_metric))
        if improved:
            self.best = dict(row)
        self._save(epoch, results, improved)
        self._report(row, improved, seconds)

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], float]:
        config, ctx = self.config, self.ctx
        model, optimizer = self.forward_model, self.optimizer
        dtype = _parameter_dtype(self.model)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        batches = len(self.train_loader)
        last_group_start = (batches // config.accum_steps) * config.accum_steps
        loss_sum, seen, correct = 0.0, 0, 0
        self.progress.start_epoch(epoch + 1, config.epochs, batches)
        for index, batch in enumerate(self.train_loader):
            batch = self.augment(_to_device(batch, ctx.device))
            group_size = config.accum_steps if index < last_group_start else batches - last_group_start
            steps_now = (index + 1) % config.accum_steps == 0 or index == batches - 1
            sync = nullcontext() if steps_now or not ctx.enabled else self.ddp_model.no_sync()
            with sync:
                with _autocast(ctx.device, config.amp):
                    logits = model(_model_input(batch["image"], self.mean, self.std, dtype, config.channels_last))
                target, weight = _align(logits, batch["target"], batch.get("weight"))
                loss = self.loss(_full_precision(logits), target, weight)
                value = float(loss.detach())
                if any_process(not math.isfinite(value), ctx):
                    self.progress.end_epoch()
                    self._stop_non_finite(value, epoch, f"at batch {index + 1}")
                scaled = loss / group_size
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if steps_now:
                self._optimizer_step()
            count = len(target)
            loss_sum += value * count
            seen += count
            if self.spec.task == "classification":
                correct += int((logits.detach().argmax(1) == target).sum())
            self.progress.update(count, loss_sum / seen)
        seconds = self.progress.end_epoch()
        loss_sum, seen, correct = all_reduce_sum([loss_sum, seen, correct], ctx)
        stats = {"train_loss": loss_sum / seen}
        if self.spec.task == "classification":
            stats["train_acc1"] = correct / seen
        return stats, seconds

    def _optimizer_step(self) -> None:
        clip = self.config.clip_grad
        if self.scaler is not None:
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _stop_non_finite(self, value: float, epoch: int, where: str) -> None:
        last = self.run_dir / "last.safetensors"
        kept = (
            f"the last good checkpoint, {last} (epoch {self.history[-1]['epoch']}), is intact"
            if self.history else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(
            f"training stopped: the loss became {value} in epoch {epoch + 1} {where}; {kept}. "
            "Try a lower --lr, --clip-grad, a longer --warmup-epochs, or --amp none"
        )

    # writing

    def _meta(self, epoch: int, results: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        return {
            "model": self.config.model, "model_kwargs": self.model_kwargs, "task": spec.task,
            "num_classes": spec.num_classes, "in_chans": spec.in_chans, "class_names": list(spec.class_names),
            "mean": list(spec.mean), "std": list(spec.std), "image_size": list(spec.image_size),
            "ignore_index": spec.ignore_index, "data": self._data_reference(), "data_source": spec.source,
            "epoch": epoch + 1,
            "step": self.step, "metrics": {**results, "val_loss": self.history[-1]["val_loss"]},
            "config": self._resolved_config(), "history": self.history, "best": self.best,
        }

    def _save(self, epoch: int, results: dict[str, Any], improved: bool) -> None:
        if not self.ctx.is_main:
            return
        meta = self._meta(epoch, results)
        if improved:
            save_checkpoint(self.run_dir / "best", self.model, meta)
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": capture_rng_state(),
            "sampler": {"epoch": epoch + 1, "seed": self.config.seed},
            "step": self.step,
        }
        save_checkpoint(self.run_dir / "last", self.model, meta, training_state)
        self.writer.write_metrics(self.history)
        self.writer.log_tensorboard(epoch + 1, self.history[-1])
        if time.perf_counter() - self.curves_drawn > CURVES_INTERVAL:
            self._draw_curves()
        if improved:
            self._keep_best_pictures(results)

    def _keep_best_pictures(self, results: dict[str, Any]) -> None:
        """What the best epoch's pictures need (drawn once, at the end of the run)."""
        self.best_pictures = {"confusion": results["confusion"], "epoch": self.history[-1]["epoch"]}
        if self.spec.task == "segmentation" and self.config.num_overlays:
            self.best_pictures["overlays"] = self._overlay_samples()

    def _draw_curves(self) -> None:
        if self.ctx.is_main and self.history:
            plot_curves(self.history, self.spec.task, self.writer.plots / "curves.png",
                        title=f"{self.config.model} on {self.config.data}")
        self.curves_drawn = time.perf_counter()

    def _draw_plots(self) -> None:
        """The curves, and the confusion matrix and overlays of the best epoch."""
        from cnnzoo.engine.plots import plot_confusion, plot_overlays

        self._draw_curves()
        if not self.ctx.is_main:
            return
        pictures = self.best_pictures or self._best_pictures_from_checkpoint()
        if pictures is None:
            return
        spec, plots = self.spec, self.writer.plots
        plot_confusion(
            pictures["confusion"], spec.class_names, plots / "confusion.png",
            title=f"confusion matrix, validation, epoch {pictures['epoch']} (best)",
        )
        if "overlays" in pictures:
            plot_overlays(*pictures["overlays"], spec.num_classes, plots / "overlays.png",
                          spec.class_names, spec.ignore_index)

    def _best_pictures_from_checkpoint(self) -> dict[str, Any] | None:
        """A resumed run that did not improve: the pictures of the saved best epoch."""
        if not (self.run_dir / "best.json").is_file():
            return None
        weights, sidecar = read_checkpoint(self.run_dir, "best")
        pictures = {"confusion": sidecar["metrics"]["confusion"], "epoch": sidecar["epoch"]}
        if self.spec.task == "segmentation" and self.config.num_overlays:
            best_model = copy.deepcopy(self.model)
            best_model.load_state_dict(weights)
            pictures["overlays"] = self._overlay_samples(best_model)
        return pictures

    @torch.no_grad()
    def _overlay_samples(self, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model = model or self.model
        count = min(self.config.num_overlays, len(self.spec.val))
        samples = [self.spec.val[i] for i in range(count)]
        images = torch.stack([s["image"] for s in samples]).to(self.ctx.device)
        targets = torch.stack([s["target"] for s in samples]).to(self.ctx.device)
        model.eval()
        with _autocast(self.ctx.device, self.config.amp):
            logits = model(_model_input(images, self.mean, self.std, _parameter_dtype(model), self.config.channels_last))
        height, width = logits.shape[-2:]
        return center_crop(images, height, width).cpu(), center_crop(targets, height, width).cpu(), logits.argmax(1).cpu()

    def _report(self, row: dict[str, Any], improved: bool, seconds: float) -> None:
        shown = [f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")]
        mark = "  (best)" if improved else ""
        self.progress.write(
            f"epoch {row['epoch']}/{self.config.epochs}  " + "  ".join(shown) + f"  [{seconds:.1f} s]{mark}"
        )


def _load_data(config: TrainConfig) -> Any:
    from cnnzoo.data import build_data

    return build_data(
        config.data, data_dir=config.data_dir, image_size=config.image_size,
        train_size=config.train_size, val_size=config.val_size, seed=config.seed,
    )
