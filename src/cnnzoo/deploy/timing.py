"""Timing runners against each other, and choosing the fastest: measured, never guessed.

Timings on a shared machine drift with the load, so runners are compared only in one
process, in alternating rounds (every runner once per round, the order rotating), and by the
median of the rounds: a load that comes and goes then falls on all of them alike.
:func:`choose_fastest` remembers its choice per model structure, input shape, precision,
thread count and machine in a small JSON file (``$CNNZOO_CACHE`` or
``~/.cache/cnnzoo/runtimes.json``), so ``runtime="auto"`` measures once.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnzoo.utils.atomic import write_atomically
from cnnzoo.utils.cpu import machine_fingerprint
from cnnzoo.utils.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

__all__ = [
    "Choice", "Timing", "cache_path", "choose_fastest", "measure_memory", "model_key", "remember", "remembered",
    "time_alternating",
]


@dataclass
class Timing:
    """Seconds per call of one runner on one batch, over the rounds."""

    label: str
    batch: int
    seconds: list[float] = field(default_factory=list)
    peak_memory: int | None = None  # bytes above the process's resident set before it was built

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def images_per_second(self) -> float:
        return self.batch / self.median

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the per-call seconds (nearest rank)."""
        ordered = sorted(self.seconds)
        rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[rank]


def time_alternating(
    calls: dict[str, Callable[[], object]], batch: int, rounds: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Time every call ``rounds`` times, one call each per round in a rotating order, after
    ``warmup`` untimed calls each (memory, kernel choice, lazy compilation)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    labels = list(calls)
    for label in labels:
        for _ in range(warmup):
            calls[label]()
    timings = {label: Timing(label, batch) for label in labels}
    for round_index in range(rounds):
        shift = round_index % len(labels)
        for label in labels[shift:] + labels[:shift]:
            started = time.perf_counter()
            calls[label]()
            timings[label].seconds.append(time.perf_counter() - started)
    return timings


def measure_memory(build: Callable[[], Callable[[], object]], runs: int = 2) -> tuple[Callable[[], object], int | None]:
    """``(call, peak bytes)``: build a runner's call and run it ``runs`` times, the peak
    resident memory above what the process held before the build (``None`` where Linux's
    ``/proc`` cannot say)."""
    before = rss_bytes()
    call = build()
    resettable = reset_peak_rss()
    for _ in range(runs):
        call()
    peak = peak_rss_bytes()
    if before is None or peak is None or not resettable:
        return call, None
    return call, max(0, peak - before)


def model_key(model: nn.Module) -> str:
    """A short hash of the model's structure (class, parameter and buffer shapes), which is
    what its speed depends on: trained and untrained weights share a key."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    return digest.hexdigest()[:16]


def cache_path() -> Path:
    """Where measured choices (runtimes; the trainer's precision and memory format) are
    remembered: ``$CNNZOO_CACHE/runtimes.json``, default ``~/.cache/cnnzoo/runtimes.json``."""
    root = os.environ.get("CNNZOO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo")
    return Path(root) / "runtimes.json"


@dataclass
class Choice:
    """What :func:`choose_fastest` chose: the label, the seconds per batch it measured (now or
    when it was remembered), and the runner when it was built now."""

    label: str
    seconds: dict[str, float]
    from_cache: bool
    runner: Callable | None = None


def choose_fastest(
    model: nn.Module, input_shape: Sequence[int], precision: str, candidates: dict[str, Callable[[], Callable]],
    example: torch.Tensor, rounds: int = 5,
) -> Choice:
    """The fastest of ``candidates`` (label -> a function building the runner) on
    ``example``, remembered per model structure, shape, precision, thread count and machine
    (see the module docstring)."""
    key = " | ".join([model_key(model), "x".join(map(str, input_shape)), precision,
                      f"{torch.get_num_threads()} threads", machine_fingerprint("torch", "onnxruntime", "openvino")])
    earlier = remembered(key)
    if earlier and earlier.get("choice") in candidates:
        return Choice(earlier["choice"], earlier["seconds"], from_cache=True)
    runners = {label: build() for label, build in candidates.items()}
    timings = time_alternating({label: (lambda r=runner: r(example)) for label, runner in runners.items()},
                               len(example), rounds=rounds)
    seconds = {label: timing.median for label, timing in timings.items()}
    choice = min(seconds, key=seconds.get)
    remember(key, {"choice": choice, "seconds": seconds})
    return Choice(choice, seconds, from_cache=False, runner=runners[choice])


def remembered(key: str) -> dict | None:
    """The entry remembered under ``key`` in :func:`cache_path`, or ``None``."""
    entry = _read_cache().get(key)
    return entry if isinstance(entry, dict) else None


def remember(key: str, entry: dict) -> None:
    """Remember ``entry`` (JSON values) under ``key``, with the time it was measured; a
    cache that cannot be written is skipped (the choice is measured again next time)."""
    values = _read_cache()
    values[key] = {**entry, "measured": time.strftime("%Y-%m-%d %H:%M")}
    text = json.dumps(values, indent=1, sort_keys=True) + "\n"
    try:
        write_atomically(cache_path(), lambda stream: stream.write(text.encode()), create_folder=True)
    except OSError:  # a read-only home: nothing is lost
        pass


def _read_cache() -> dict:
    try:
        values = json.loads(cache_path().read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    return values if isinstance(values, dict) else {}
