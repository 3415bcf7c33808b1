"""``cnnzoo benchmark``: every runtime a user could pick, timed on one model, side by side.

For each batch size, eager PyTorch (the model as it is) and the runners of every runtime
asked for (fp32; bf16 where the CPU has bf16 instructions; int8 on request) are timed in
one process, in alternating rounds (:func:`cnnzoo.deploy.time_alternating`),
after one untimed warm-up each. Per runner and batch: images per second (from the median),
latency p50 and p90 of one batch, the memory the runner holds (resident memory it added
when it was built) and the memory a run needs on top (peak resident during the runs above
what was resident before them), and the speed relative to eager PyTorch at that batch.
A segmenter is timed on the tiles of overlap-tile prediction (``input_size`` is the tile).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.deploy.compile import candidate_runtimes
from cnnzoo.deploy.runners import RUNTIMES, build_runner, check_supported
from cnnzoo.deploy.timing import time_alternating
from cnnzoo.engine.compile import CALIBRATION_IMAGES, runner_input_size, run_inputs, spread
from cnnzoo.utils.figures import new_figure, save_figure
from cnnzoo.engine.sources import data_of_run, load_model_source
from cnnzoo.utils.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

__all__ = ["EAGER", "BenchmarkRow", "benchmark", "plot_benchmark"]

EAGER = "eager"


@dataclass(frozen=True)
class BenchmarkRow:
    """One runner at one batch size."""

    runner: str
    batch: int
    images_per_second: float
    p50_ms: float
    p90_ms: float
    speedup: float  # images per second over eager PyTorch's at this batch
    model_bytes: int | None  # resident memory the runner added when built
    run_bytes: int | None  # peak resident memory of its runs above what was resident before


def benchmark(
    source: str | os.PathLike | nn.Module,
    runtimes: Sequence[str] = ("all",),
    batches: Sequence[int] = (1, 8),
    *,
    int8: bool = False,
    threads: int | None = None,
    input_size: tuple[int, ...] | None = None,
    rounds: int = 7,
    model_kwargs: dict[str, Any] | None = None,
    which: str = "best",
    log: Callable[[str], None] | None = None,
    weights: str | os.PathLike | None = None,
) -> tuple[tuple[int, int, int], list[BenchmarkRow]]:
    """``(input size, rows)``: eager PyTorch and each runtime's runner (fp32, and int8 with
    ``int8``) timed on ``source`` at each batch size (see the module docstring).

    ``runtimes``: names of :data:`~cnnzoo.deploy.runners.RUNTIMES`, or ``"all"`` (every one
    installed here). int8 is calibrated on a run's training images; a registered model or a
    module has none, so it is calibrated on random inputs (its speed is meaningful, its
    accuracy is not), and ``log`` says so.
    """
    batches = _check_batches(batches)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    chosen = _check_runtimes(runtimes)
    if threads is not None:
        torch.set_num_threads(threads)
    model, origin = load_model_source(source, model_kwargs, which, weights)
    size = runner_input_size(model, origin, input_size)
    calibration = _calibration(origin, size, log) if int8 else None
    builds = {}
    for runtime in chosen:
        for precision in ("fp32", "bf16", "int8") if int8 else ("fp32", "bf16"):
            try:
                check_supported(runtime, precision)  # bf16 only on a CPU that computes it natively
            except ValueError:
                continue
            builds[f"{runtime} {precision}"] = (runtime, precision)
    calls, model_bytes = _build_all(model, size, builds, calibration, threads)
    rows = []
    for batch in batches:
        x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(batch))
        runs = {label: (lambda call=call: call(x)) for label, call in calls.items()}
        run_bytes = {label: _run_memory(run) for label, run in runs.items()}
        timings = time_alternating(runs, batch, rounds=rounds)
        eager = timings[EAGER].images_per_second
        for label, timing in timings.items():
            rows.append(BenchmarkRow(label, batch, timing.images_per_second, 1000 * timing.median,
                                     1000 * timing.percentile(90), timing.images_per_second / eager,
                                     model_bytes.get(label), run_bytes[label]))
    return size, rows


def plot_benchmark(rows: Sequence[BenchmarkRow], path: str | os.PathLike, title: str) -> Path:
    """Grouped bars of images per second, one group per batch size, the speed-up over eager
    written on each bar."""
    batches = sorted({row.batch for row in rows})
    runners = list(dict.fromkeys(row.runner for row in rows))
    figure = new_figure(max(6.0, 1.2 * len(batches) * len(runners) / 2 + 3), 4.5)
    axes = figure.subplots()
    width = 0.8 / len(runners)
    for index, runner in enumerate(runners):
        mine = {row.batch: row for row in rows if row.runner == runner}
        xs = [position + index * width for position, batch in enumerate(batches) if batch in mine]
        values = [mine[batch].images_per_second for batch in batches if batch in mine]
        bars = axes.bar(xs, values, width, label=runner)
        for bar, batch in zip(bars, [b for b in batches if b in mine]):
            axes.annotate(f"{mine[batch].speedup:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=7)
    axes.set_xticks([position + width * (len(runners) - 1) / 2 for position in range(len(batches))],
                    [f"batch {batch}" for batch in batches])
    axes.set_ylabel("images per second (median of alternating rounds)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)


def _build_all(model: nn.Module, size: tuple[int, int, int], builds: dict[str, tuple[str, str]],
               calibration: list[torch.Tensor] | None, threads: int | None) -> tuple[dict, dict]:
    """Every runner built once (one ONNX export and one int8 quantization shared), with the
    resident memory each added."""
    calls: dict[str, Callable] = {EAGER: _eager(model)}
    model_bytes: dict[str, int | None] = {}
    onnx_cache: dict[str, bytes] = {}
    for label, (runtime, precision) in builds.items():
        before = rss_bytes()
        calls[label] = build_runner(model, runtime, size, precision, threads=threads, calibration=calibration,
                                    onnx_cache=onnx_cache)
        after = rss_bytes()
        model_bytes[label] = None if before is None or after is None else max(0, after - before)
    return calls, model_bytes


def _eager(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    return run


def _run_memory(run: Callable[[], object]) -> int | None:
    """Peak resident memory of two runs above what was resident before them, after one run
    that pays for a runtime's lazy compilation at this batch size."""
    run()
    before = rss_bytes()
    if before is None or not reset_peak_rss():
        return None
    run()
    run()
    peak = peak_rss_bytes()
    return None if peak is None else max(0, peak - before)


def _calibration(origin, size: tuple[int, int, int], log: Callable[[str], None] | None) -> list[torch.Tensor]:
    if origin.run is not None:
        spec = data_of_run(origin.run)
        return list(run_inputs(spec.train, origin.run, size, spread(len(spec.train), CALIBRATION_IMAGES)))
    if log is not None:
        log("int8 is calibrated on random inputs (no run directory, so no images): its speed is meaningful, "
            "its accuracy is not")
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(16, *size, generator=generator) for _ in range(CALIBRATION_IMAGES // 16)]


def _check_batches(batches: Sequence[int]) -> list[int]:
    if not batches:
        raise ValueError("give at least one batch size")
    for batch in batches:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch sizes must be positive integers, got {batch!r}")
    return sorted(set(batches))


def _check_runtimes(runtimes: Sequence[str]) -> list[str]:
    if list(runtimes) == ["all"]:
        return [name for name in RUNTIMES if name in candidate_runtimes("fp32")]
    for runtime in runtimes:
        check_supported(runtime, "fp32")  # unknown or not installed: one clear message
    return list(dict.fromkeys(runtimes))
