"""How fast a run trains: its thread count, bf16 where it pays, channels-last; and the timer
of a few training steps that these choices (and the budgets of the demo and the training
benchmarks) are measured with.

- **Threads.** ``threads`` sets PyTorch's intra-op threads for the run (:func:`use_threads`,
  which puts the old count back afterwards); ``None`` leaves PyTorch's default, all cores.
- **bf16.** Autocast to bfloat16 pays on a CPU only where it has bf16 dot-product
  instructions (AVX512-BF16 or AMX, :func:`cnnzoo.utils.cpu.has_native_bf16`); elsewhere
  every operation converts to float32 and back. There, a run that asks for bf16 is timed in
  both precisions before epoch 1 and keeps bf16 only when it is faster (with a warning when
  it is not).
- **channels-last**, when not told (``channels_last=None``): on a GPU off (not measured
  here); on the CPU measured, because it depends on the network. On this project's 2-core
  Xeon (docs/training.md, ``benchmarks/train_throughput.py``) channels-last made ResNet-20
  train 1.15-1.25x faster, and the demo's width-8 U-Net 1.0x in float32 and 0.89x in bf16.
- **The probe** (:func:`probe_settings`): the settings still open (precision, memory format)
  are each timed for :data:`PROBE_STEPS` training steps on the run's first batch, on a copy
  of the model, and the fastest is kept; ``config.json`` records it. A step slower than
  :data:`PROBE_MAX_STEP_SECONDS` ends the probe with the first setting (the usual winner),
  so a large model does not spend minutes choosing. Pass ``--channels-last`` or
  ``--no-channels-last`` for a run whose weights must not depend on how busy the machine
  was when it started (the memory format changes the convolution kernels, hence the last
  bits of the weights).
- **Timing** (:func:`training_step_timer`, :func:`fastest_thread_count`): the demo and the
  training benchmarks size their schedules to a wall-clock budget from a few timed steps of
  the recipe they will run, with the thread count that measured faster (on a shared 2-core
  machine one thread can beat two).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnzoo.data.augment import build_augment
from cnnzoo.deploy.timing import model_key, remember, remembered
from cnnzoo.engine.batches import ModelFeed
from cnnzoo.engine.losses import build_loss
from cnnzoo.engine.objective import auxiliary_weight, step_loss
from cnnzoo.engine.optim import build_optimizer
from cnnzoo.registry import create_model
from cnnzoo.utils.cpu import cpu_name, has_native_bf16, machine_fingerprint

__all__ = [
    "PROBE_MAX_STEP_SECONDS", "PROBE_STEPS", "SettingChoice", "bf16_needs_probe", "channels_last_choices",
    "choose_setting", "default_amp",
    "describe_settings", "fastest_thread_count", "open_settings", "precision_choices", "probe_settings", "say_choice",
    "seconds_per_step", "slow_bf16_warning", "training_step", "training_step_timer", "use_threads",
]

# Timed steps of each setting in the probe (after one warm-up step, which pays for oneDNN's
# kernel creation): the median of three is steady to a few per cent when the machine is
# quiet, and a few steps of a small model take well under a second.
PROBE_STEPS = 3
# A warm-up step slower than this ends the probe: 4 settings x 4 steps would cost minutes.
PROBE_MAX_STEP_SECONDS = 2.0


@contextmanager
def use_threads(threads: int | None) -> Iterator[int]:
    """PyTorch's intra-op thread count set to ``threads`` inside the block (``None``: as it
    is), and put back after it; yields the count in use."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def channels_last_choices(device: torch.device) -> list[bool]:
    """The memory formats a run may train in when not told, the usual winner first: on the
    CPU channels-last or not (measured by the probe), on a GPU contiguous only."""
    return [True, False] if device.type == "cpu" else [False]


def precision_choices(device: torch.device, amp: str) -> list[str]:
    """The precisions a run that asks for ``amp`` may train in: bf16 on a CPU without bf16
    instructions may fall back to float32 (measured by the probe; float32 first, the usual
    winner there); anything else is kept as asked."""
    return ["none", "bf16"] if bf16_needs_probe(device, amp) else [amp]


def default_amp(device: torch.device) -> str:
    """The precision a budgeted recipe (the demo's) trains in: bf16 on a CPU with bf16
    instructions (1.4-1.7x the float32 rate, docs/training.md), float32 elsewhere."""
    return "bf16" if device.type == "cpu" and has_native_bf16() else "none"


def bf16_needs_probe(device: torch.device, amp: str) -> bool:
    """Whether ``amp`` on ``device`` is bf16 on a CPU without bf16 instructions, where it may
    well be slower than float32 and is timed before the run keeps it."""
    return amp == "bf16" and device.type == "cpu" and not has_native_bf16()


def training_step(model: nn.Module, loss_fn: nn.Module, feed: ModelFeed, batch: dict[str, torch.Tensor],
                  optimizer: torch.optim.Optimizer | None = None,
                  augment: Callable[[dict], dict] | None = None) -> Callable[[], None]:
    """One training step on ``batch`` (on the device) as a function of no arguments:
    ``augment`` when given, the forward pass through ``feed`` (normalization, memory format,
    autocast), the loss, backward, ``optimizer``'s step when given; gradients cleared."""

    def step() -> None:
        augmented = augment(batch) if augment is not None else batch
        outputs = feed.logits(model, augmented["image"])
        loss = step_loss(loss_fn, outputs, augmented["target"], augmented.get("weight"), auxiliary_weight(model))
        loss.total.backward()
        if optimizer is not None:
            optimizer.step()
        model.zero_grad(set_to_none=True)

    return step


def seconds_per_step(step: Callable[[], None], steps: int = PROBE_STEPS, warmup: int = 1) -> float:
    """The median wall-clock seconds of ``step()`` over ``steps`` calls, after ``warmup``."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def probe_settings(model: nn.Module, loss_fn: nn.Module, feed: ModelFeed, batch: dict[str, torch.Tensor],
                   settings: list[tuple[str, bool]], steps: int = PROBE_STEPS) -> dict[tuple[str, bool], float]:
    """Median seconds of a training step of ``model`` on ``batch`` in each ``(amp,
    channels_last)`` setting, in order, each on its own copy of the model (``model`` is not
    touched). Stops after the first setting when its warm-up step took longer than
    :data:`PROBE_MAX_STEP_SECONDS`. A model that draws random numbers (dropout) draws them
    from the global generators: the caller saves and restores them around the probe."""
    timings: dict[tuple[str, bool], float] = {}
    for amp, channels_last in settings:
        twin = copy.deepcopy(model)
        if channels_last:
            twin = twin.to(memory_format=torch.channels_last)
        twin.train()
        step = training_step(twin, loss_fn, replace(feed, amp=amp, channels_last=channels_last), batch)
        began = time.perf_counter()
        step()  # the warm-up: oneDNN creates its kernels
        if not timings and time.perf_counter() - began > PROBE_MAX_STEP_SECONDS:
            return {(amp, channels_last): time.perf_counter() - began}
        timings[(amp, channels_last)] = seconds_per_step(step, steps, warmup=0)
    return timings


@dataclass(frozen=True)
class SettingChoice:
    """What :func:`choose_setting` chose, the seconds per step it measured (now or when it was
    remembered) and whether it was remembered."""

    amp: str
    channels_last: bool
    timings: dict[tuple[str, bool], float]
    from_cache: bool


def choose_setting(model: nn.Module, loss_fn: nn.Module, feed: ModelFeed, batch: dict[str, torch.Tensor],
                   settings: list[tuple[str, bool]]) -> SettingChoice:
    """The fastest of ``settings`` for training ``model`` on batches like ``batch``:
    :func:`probe_settings` the first time, then remembered per model structure, batch
    shape, settings, thread count and machine (``$CNNZOO_CACHE/runtimes.json``, as the
    deploy path remembers its runtimes), so that runs with the same seed on one machine
    train in the same setting and give the same weights."""
    key = " | ".join(["train", model_key(model), "x".join(map(str, batch["image"].shape)),
                      ",".join(f"{amp}/{int(layout)}" for amp, layout in settings),
                      f"{torch.get_num_threads()} threads", machine_fingerprint("torch")])
    earlier = remembered(key)
    if earlier and [earlier.get("amp"), earlier.get("channels_last")] in [list(s) for s in settings]:
        timings = {(amp, bool(layout)): seconds for amp, layout, seconds in earlier.get("timings", [])}
        return SettingChoice(earlier["amp"], earlier["channels_last"], timings, from_cache=True)
    timings = probe_settings(model, loss_fn, feed, batch, settings)
    amp, channels_last = min(timings, key=timings.get)
    remember(key, {"amp": amp, "channels_last": channels_last,
                   "timings": [[a, layout, seconds] for (a, layout), seconds in timings.items()]})
    return SettingChoice(amp, channels_last, timings, from_cache=False)


def describe_settings(timings: dict[tuple[str, bool], float]) -> str:
    """``bf16 channels-last 0.12 s, float32 0.2 s`` (seconds per training step)."""
    def name(amp: str, channels_last: bool) -> str:
        return ("float32" if amp == "none" else amp) + (" channels-last" if channels_last else "")

    return ", ".join(f"{name(*setting)} {seconds:.3g} s" for setting, seconds in timings.items())


def open_settings(device: torch.device, amp: str, channels_last: bool | None) -> list[tuple[str, bool]]:
    """The ``(amp, channels_last)`` settings a run may train in, the usual winner first; one
    setting when nothing is left to measure."""
    layouts = channels_last_choices(device) if channels_last is None else [channels_last]
    return [(precision, layout) for precision in precision_choices(device, amp) for layout in layouts]


def say_choice(choice: SettingChoice, asked_amp: str, write: Callable[[str], None]) -> None:
    """Tell the user what the probe chose: a warning on stderr when bf16 was asked for and
    lost, else one line through ``write`` with the seconds per step of each setting."""
    if asked_amp == "bf16" and choice.amp == "none":
        print(slow_bf16_warning(choice.timings), file=sys.stderr, flush=True)
    elif len(choice.timings) > 1:
        how = "remembered" if choice.from_cache else "measured now"
        write(f"speed ({how}, seconds per training step): {describe_settings(choice.timings)}")


def slow_bf16_warning(timings: dict[tuple[str, bool], float]) -> str:
    """The one-line warning of a run that asked for bf16 and trains in float32."""
    return (f"warning: --amp bf16 is slower than float32 on this CPU ({cpu_name()}: no AVX512-BF16 or AMX), "
            f"seconds per training step: {describe_settings(timings)}; this run trains in float32 "
            "(config.json records amp: none)")


def training_step_timer(model_name: str, num_classes: int, input_size: tuple[int, int, int], batch_size: int,
                        task: str, *, model_kwargs: dict | None = None, optimizer: str = "sgd", loss: str = "ce",
                        amp: str = "none", channels_last: bool = False, augment: str = "none",
                        steps: int = PROBE_STEPS) -> Callable[[], float]:
    """A function of no arguments that returns the median seconds of one training step of
    this recipe on random data (augmentation at level ``augment``, the forward pass under
    ``amp`` in the memory format asked for, ``loss``, backward, ``optimizer``'s step) over
    ``steps`` steps after one warm-up; the model is built once, seeded."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes, in_chans=input_size[0], **(model_kwargs or {}))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    chosen = build_optimizer(model, optimizer, lr=1e-3, weight_decay=1e-4, nesterov=optimizer == "sgd")
    loss_fn = build_loss(loss, task=task, num_classes=num_classes)
    channels = input_size[0]
    feed = ModelFeed.create([0.5] * channels, [0.25] * channels, torch.device("cpu"), model, amp, channels_last)
    target_shape = (batch_size,) if task == "classification" else (batch_size, *input_size[1:])
    batch = {"image": torch.rand(batch_size, *input_size), "target": torch.randint(0, num_classes, target_shape)}
    step = training_step(model, loss_fn, feed, batch, chosen, build_augment(task, input_size[1:], augment))
    return lambda: seconds_per_step(step, steps)


def fastest_thread_count(measure: Callable[[], float], rounds: int = 2) -> tuple[int, dict[int, float]]:
    """Time ``measure`` (a function returning seconds) with 1 and with all of PyTorch's
    threads, in turn for ``rounds`` rounds, leave the faster count set, and return it with
    each count's best timing (the least disturbed by other work on a shared machine)."""
    counts = sorted({1, os.cpu_count() or 1})
    timings: dict[int, float] = {}
    for _ in range(rounds):
        for threads in counts:
            torch.set_num_threads(threads)
            timings[threads] = min(timings.get(threads, math.inf), measure())
    fastest = min(timings, key=timings.get)
    torch.set_num_threads(fastest)
    return fastest, timings
