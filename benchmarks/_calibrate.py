"""Timing a few training steps, to size a benchmark's schedule to its wall-clock budget."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def seconds_per_training_image(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                               augment: Callable[[dict], dict], batch: dict, amp: str = "none",
                               channels_last: bool = False, steps: int = 5) -> float:
    """Median time per image of one training step (augmentation, forward under autocast when
    ``amp == "bf16"``, loss, backward, optimizer step) on ``batch``, after two warm-up steps."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    times = []
    for _ in range(steps + 2):
        began = time.perf_counter()
        augmented = augment(batch)
        images = augmented["image"]
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(images)
        loss = loss_fn(logits.float(), augmented["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[2:]) / len(batch["image"])


def fastest_thread_count(measure: Callable[[], float]) -> tuple[int, dict[int, float]]:
    """Time ``measure`` with 1 and with all torch threads, keep the faster setting set, and
    return it with every timing: on a shared machine one thread can beat two."""
    timings = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        timings[threads] = measure()
    fastest = min(timings, key=timings.get)
    torch.set_num_threads(fastest)
    return fastest, timings
