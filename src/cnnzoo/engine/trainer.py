"""One training loop for classification and semantic segmentation.

:func:`train` runs a :class:`~cnnzoo.engine.config.TrainConfig` end to end: it builds the
data (:func:`cnnzoo.data.build_data`), the model (registry, with the data's classes and
channels), the loss, the optimizer and the warm-up + cosine schedule; then each epoch it
trains, evaluates (:func:`cnnzoo.engine.evaluate.evaluate`), writes ``metrics.csv``, the
``last`` checkpoint (and ``best``, by the task's main metric) with the run's
:class:`~cnnzoo.engine.runmeta.RunMeta`, and the pictures
(:class:`~cnnzoo.engine.run_pictures.RunPictures`), into the run directory.

What happens to a batch is :mod:`cnnzoo.engine.batches`' (device, augmentation on the
device, normalization, autocast, crop of the target to a valid U-Net's output); then the
loss divided by the number of batches accumulated, backward; every ``accum_steps`` batches:
optional gradient clipping, the optimizer step and the schedule step.

Reproducibility: every generator is reseeded from ``(seed, epoch, rank)`` at the start of
every epoch (:mod:`cnnzoo.engine.seeding`), so a run resumed from its ``last`` checkpoint
continues exactly as if it had not stopped.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnzoo.data import DATASETS, build_data
from cnnzoo.data.augment import build_augment
from cnnzoo.data.reconstruction import data_for_task
from cnnzoo.data.spec import DataSpec
from cnnzoo.engine.batches import ModelFeed, to_device
from cnnzoo.engine.checkpoint import checkpoint_payloads, load_training_state, load_weights, read_checkpoint
from cnnzoo.engine.config import TrainConfig, config_to_dict, fit_batch_size
from cnnzoo.engine.distributed import (
    DistributedContext,
    all_reduce_sum,
    any_process,
    broadcast_object,
    init_distributed,
    shutdown,
    sync_buffers,
    train_sampler,
    wrap_model,
)
from cnnzoo.engine.evaluate import evaluate, has_weight_maps, make_eval_loader, scalar_metrics
from cnnzoo.engine.finetune import prediction_resize, start_from_weights
from cnnzoo.engine.losses import build_loss, choose_loss
from cnnzoo.engine.metrics import MAIN_METRIC, is_improvement
from cnnzoo.engine.objective import EpochLosses, auxiliary_weight, step_loss
from cnnzoo.engine.optim import build_optimizer, build_scheduler
from cnnzoo.engine.progress import Progress, format_duration
from cnnzoo.engine.run_pictures import RunPictures
from cnnzoo.engine.run_summary import describe_run
from cnnzoo.engine.rundir import RunDir, RunInterrupted, check_new_run_dir, default_run_dir
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.engine.seeding import capture_rng_state, restore_rng_state, seed_epoch, seed_everything
from cnnzoo.engine.speed import choose_setting, open_settings, say_choice, use_threads
from cnnzoo.pretrained import keep_frozen_norms_in_eval
from cnnzoo.registry import create_model, data_options, model_info

__all__ = ["NonFiniteLossError", "TrainResult", "train"]


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
        with use_threads(config.threads):
            return _Run(config, ctx, progress).run()
    finally:
        shutdown(ctx)


class _Run:
    """The state of one training run (a class so that its pieces stay short functions)."""

    def __init__(self, config: TrainConfig, ctx: DistributedContext, progress: Progress | None) -> None:
        self.config = config
        self.ctx = ctx
        self.progress = progress or Progress(config.progress, enabled=ctx.is_main)
        if not ctx.is_main:
            self.progress.enabled = False

    # set-up: everything a user can get wrong is checked before the run directory exists

    def run(self) -> TrainResult:
        config = self.config
        self.started = time.perf_counter()  # the time limit counts from here
        resumed = self._read_resume() if config.resume else None
        self.resumed_config = resumed[0].config if resumed is not None else None
        self.run_dir = self._choose_run_dir()
        self.spec = _load_data(config)
        self._check_task()
        seed_everything(config.seed)  # the model's initial weights
        self._build_model()
        self._build_data_path()
        self._choose_speed()
        self._build_optimization()
        self.resolved = self._resolved_config()
        self.progress.write("\n".join(describe_run(self.model, self.spec, self.config, self.ctx.device,
                                                   self.steps_per_epoch, self.pretrained)))
        self.history, self.best, self.start_epoch, self.step = [], {}, 0, 0
        if resumed is not None:
            self._restore(*resumed)
        self.writer = RunDir(self.run_dir, enabled=self.ctx.is_main, tensorboard=config.tensorboard)
        self.run_dir = self.writer.create(claim=not config.resume, default_name=not (config.out or config.resume))
        self.writer.write_config(config_to_dict(self.resolved))
        if resumed is not None:
            self.writer.recover(self.history)  # an interrupted save's leftovers; metrics.csv from the checkpoint
        self.pictures = RunPictures(self.writer.plots, self.spec, f"{config.model} on {config.data}", self.feed,
                                    config.num_overlays, enabled=self.ctx.is_main)
        try:
            self._loop()
        except KeyboardInterrupt:
            raise RunInterrupted(self.run_dir, self.history[-1]["epoch"] if self.history else 0) from None
        finally:  # the curves so far, also of a run that failed; a run that saved nothing leaves nothing
            if self.history:
                self.pictures.draw_all(self.history, self.model, self.run_dir)
            self.writer.close(failed=sys.exc_info()[0] is not None)
        return TrainResult(run_dir=self.run_dir, history=self.history, best=self.best)

    def _read_resume(self) -> tuple[RunMeta, dict[str, Any]]:
        path = Path(self.config.resume)
        if not path.is_dir():
            raise FileNotFoundError(f"cannot resume: {path} is not a run directory")
        _, meta = read_checkpoint(path, "last")
        if meta.model != self.config.model:
            raise ValueError(
                f"cannot resume {path}: its checkpoint is a {meta.model!r} model, not {self.config.model!r}"
            )
        return meta, load_training_state(path, "last")

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
        if self.ctx.is_main and config.out:  # a default name taken moves on to -2 when it is claimed
            try:
                check_new_run_dir(path)
            except ValueError as err:
                error = str(err)
        path, error = broadcast_object((str(path), error), self.ctx)
        if error:
            raise ValueError(error)
        return Path(path)

    def _check_task(self) -> None:
        task = model_info(self.config.model).task
        if task != self.spec.task:
            raise ValueError(
                f"model {self.config.model!r} is a {task} model, but data {self.config.data!r} is a "
                f"{self.spec.task} data set"
            )
        for split, name in ((self.spec.train, "training"), (self.spec.val, "validation")):
            if len(split) == 0:
                raise ValueError(f"data {self.config.data!r} has an empty {name} split")

    def _build_model(self) -> None:
        config, spec = self.config, self.spec
        kwargs = dict(config.model_kwargs)
        for key, value in data_options(config.model, spec.num_classes, spec.in_chans).items():
            if kwargs.setdefault(key, value) != value:
                raise ValueError(f"model option {key}={kwargs[key]} contradicts the data ({key} = {value})")
        if config.amp == "fp16" and self.ctx.device.type != "cuda":
            raise ValueError("amp fp16 needs a GPU (its grad scaler is CUDA-only); on the CPU use --amp bf16")
        # A resumed run's weights come from its own checkpoint, not from where it started.
        model = create_model(config.model, weights=None if config.resume else config.weights, **kwargs)
        if hasattr(model, "check_input"):  # a size the model cannot take, before any compute
            model.check_input(torch.empty(1, spec.in_chans, *spec.image_size, device="meta"))
        self.model_kwargs = {k: v for k, v in kwargs.items() if k not in ("num_classes", "in_chans")}
        self.spec, self.pretrained = start_from_weights(model, spec, config.freeze, self.progress.write)
        self.model = model.to(self.ctx.device)
        self.aux_weight = auxiliary_weight(model)

    def _build_data_path(self) -> None:
        if self.config.batch_size is None:  # the task's default, or less for a small training set
            per_process = len(self.spec.train) // self.ctx.world_size
            self.config = replace(self.config, batch_size=fit_batch_size(self.spec.task, per_process))
        config, spec, ctx = self.config, self.spec, self.ctx
        self.loss_name = choose_loss(config.loss, spec.task, has_weight_maps(spec.train))
        loss_options = dict(task=spec.task, num_classes=spec.num_classes, ignore_index=spec.ignore_index)
        self.loss = build_loss(self.loss_name, label_smoothing=config.label_smoothing, **loss_options)
        self.val_loss = build_loss(self.loss_name, **loss_options)  # validation loss: no smoothing
        self.main_metric = MAIN_METRIC[spec.task]
        self.augment = build_augment(spec.task, tuple(spec.image_size), config.augment)
        self.sampler = train_sampler(spec.train, ctx, config.seed)
        # Drop a last partial batch: a batch of 1 breaks batch norm, and equal batches keep
        # gradient accumulation exact. Keep it when it is all there is.
        drop_last = len(self.sampler) >= config.batch_size
        self.train_loader = DataLoader(
            spec.train, batch_size=config.batch_size, sampler=self.sampler, drop_last=drop_last,
            num_workers=config.workers, pin_memory=ctx.device.type == "cuda",
        )
        self.val_loader = make_eval_loader(spec.val, config.batch_size, config.workers, ctx)

    def _choose_speed(self) -> None:
        """The precision and memory format still open measured on the first batch
        (:mod:`cnnzoo.engine.speed`), as ``config.json`` then records them; a resumed run
        continues in the setting it recorded."""
        config, recorded = self.config, self.resumed_config
        layout = recorded.channels_last if recorded and config.channels_last is None else config.channels_last
        settings = open_settings(self.ctx.device, config.amp, layout)
        amp, channels_last = settings[0]
        if len(settings) > 1 and not config.resume:
            amp, channels_last = broadcast_object(self._probe(settings) if self.ctx.is_main else None, self.ctx)
        self.config = replace(config, amp=amp, channels_last=channels_last, threads=torch.get_num_threads())
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _probe(self, settings: list[tuple[str, bool]]) -> tuple[str, bool]:
        """The fastest of ``settings`` on the first training batch (measured once, then remembered);
        the generators are put back afterwards, so the run's draws do not depend on it."""
        state = capture_rng_state()
        try:
            batch = self.augment(to_device(next(iter(self.train_loader)), self.ctx.device))
            feed = ModelFeed.create(self.spec.mean, self.spec.std, self.ctx.device, self.model)
            choice = choose_setting(self.model, self.loss, feed, batch, settings)
        finally:
            restore_rng_state(state)
        say_choice(choice, self.config.amp, self.progress.write)
        return choice.amp, choice.channels_last

    def _build_optimization(self) -> None:
        config, spec, ctx = self.config, self.spec, self.ctx
        self.steps_per_epoch = math.ceil(len(self.train_loader) / config.accum_steps)
        total_steps = config.epochs * self.steps_per_epoch
        warmup_steps = min(total_steps, round(config.warmup_epochs * self.steps_per_epoch))
        self.optimizer = build_optimizer(
            self.model, config.optimizer, config.lr, config.weight_decay, config.momentum, config.nesterov,
            config.backbone_lr_scale,
        )
        self.scheduler = build_scheduler(self.optimizer, total_steps, warmup_steps)
        self.scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
        self.ddp_model = wrap_model(self.model, ctx)
        self.forward_model = torch.compile(self.ddp_model) if config.compile else self.ddp_model
        self.feed = ModelFeed.create(spec.mean, spec.std, ctx.device, self.model, config.amp, config.channels_last)

    def _restore(self, meta: RunMeta, state: dict[str, Any]) -> None:
        load_weights(self.model, self.config.model, self.run_dir, "last")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        restore_rng_state(state["rng"])
        self.start_epoch = state["sampler"]["epoch"]
        self.step = state["step"]
        self.history = meta.history
        self.best = meta.best

    def _resolved_config(self) -> TrainConfig:
        """The options the run uses, defaults filled in, as ``config.json`` records them."""
        return replace(self.config, loss=self.loss_name, resume=None, out=str(self.run_dir),
                       model_kwargs=self.model_kwargs, data=self._data_reference())

    def _data_reference(self) -> str:
        """A built-in set's name, or a folder's absolute path (a resumed run or a later
        `cnnzoo evaluate` may start from another working directory)."""
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
        seed_epoch(self.config.seed, epoch, self.ctx.rank)
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
        improved = is_improvement(row.get(self.main_metric), self.best.get(self.main_metric))
        if improved:
            self.best = dict(row)
        self._save(epoch, results, improved)
        self._report(row, improved, seconds)

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], float]:
        config, ctx = self.config, self.ctx
        model, optimizer = self.forward_model, self.optimizer
        model.train()
        if config.freeze:
            keep_frozen_norms_in_eval(self.model)  # a frozen part's statistics stay as loaded
        optimizer.zero_grad(set_to_none=True)
        batches = len(self.train_loader)
        last_group_start = (batches // config.accum_steps) * config.accum_steps
        losses, correct = EpochLosses(), 0
        self.progress.start_epoch(epoch + 1, config.epochs, batches)
        for index, batch in enumerate(self.train_loader):
            batch = self.augment(to_device(batch, ctx.device))
            group_size = config.accum_steps if index < last_group_start else batches - last_group_start
            steps_now = (index + 1) % config.accum_steps == 0 or index == batches - 1
            sync = nullcontext() if steps_now or not ctx.enabled else self.ddp_model.no_sync()
            with sync:
                outputs = self.feed.logits(model, batch["image"])
                step = step_loss(self.loss, outputs, batch["target"], batch.get("weight"), self.aux_weight)
                value = losses.add(step, len(step.target))
                if any_process(not math.isfinite(value), ctx):
                    self.progress.end_epoch()
                    self._stop_non_finite(value, epoch, f"at batch {index + 1}")
                scaled = step.total / group_size
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if steps_now:
                self._optimizer_step()
            if self.spec.task == "classification":
                correct += int((step.logits.detach().argmax(1) == step.target).sum())
            self.progress.update(len(step.target), losses.mean())
        seconds = self.progress.end_epoch()
        names = losses.names()
        *sums, seen, correct = all_reduce_sum([*(losses.sums[name] for name in names), losses.seen, correct], ctx)
        stats = {f"train_{name}": total / seen for name, total in zip(names, sums)}
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
            if self.history else f"no checkpoint had been written yet, so {self.run_dir} is removed"
        )
        raise NonFiniteLossError(
            f"training stopped: the loss became {value} in epoch {epoch + 1} {where}; {kept}. "
            "Try a lower --lr, --clip-grad, a longer --warmup-epochs, or --amp none"
        )

    # writing

    def _meta(self, epoch: int, results: dict[str, Any]) -> RunMeta:
        spec = self.spec
        return RunMeta(
            model=self.config.model, model_kwargs=self.model_kwargs, task=spec.task,
            num_classes=spec.num_classes, in_chans=spec.in_chans, class_names=list(spec.class_names),
            mean=tuple(spec.mean), std=tuple(spec.std), image_size=tuple(spec.image_size),
            ignore_index=spec.ignore_index, data=self._data_reference(), data_source=spec.source,
            epoch=epoch + 1, step=self.step, metrics={**results, "val_loss": self.history[-1]["val_loss"]},
            config=self.resolved, history=self.history, best=self.best,
            **prediction_resize(self.pretrained, spec.image_size),
        )

    def _save(self, epoch: int, results: dict[str, Any], improved: bool) -> None:
        if not self.ctx.is_main:
            return
        meta = self._meta(epoch, results)
        payloads = checkpoint_payloads(self.run_dir / "best", self.model, meta) if improved else {}
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": capture_rng_state(),
            "sampler": {"epoch": epoch + 1, "seed": self.config.seed},
            "step": self.step,
        }
        payloads.update(checkpoint_payloads(self.run_dir / "last", self.model, meta, training_state))
        self.writer.commit_epoch(payloads, self.history)  # best, last and metrics.csv: one commit
        self.writer.log_tensorboard(epoch + 1, self.history[-1])
        self.pictures.epoch_done(self.history, results, self.model, improved)

    def _report(self, row: dict[str, Any], improved: bool, seconds: float) -> None:
        shown = [f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds")]
        mark = "  (best)" if improved else ""
        self.progress.write(
            f"epoch {row['epoch']}/{self.config.epochs}  " + "  ".join(shown) + f"  [{seconds:.1f} s]{mark}"
        )


def _load_data(config: TrainConfig) -> DataSpec:
    spec = build_data(
        config.data, data_dir=config.data_dir, image_size=config.image_size,
        train_size=config.train_size, val_size=config.val_size, seed=config.seed,
    )
    return data_for_task(spec, model_info(config.model).task)  # an auto-encoder's targets are its images
