"""``compile_runner``: the fastest faithful runner of a model on this machine.

``runtime="auto"`` builds every runtime installed here that runs the precision, times them
on a batch of the model's input size (alternating rounds, median) and keeps the fastest; the
choice and its numbers are said in one line and remembered (:mod:`cnnzoo.deploy.timing`).
Whatever the runtime, the runner's outputs are compared with the eager model's on the same
random batch before it is returned: fp32 within ``1e-4 x max(1, max |y|)``, bf16 within
``5e-2 x max(1, max |y|)``. int8 changes outputs by design; it is judged on data instead
(:func:`cnnzoo.engine.compile.compile_model` measures the accuracy it costs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnzoo.deploy.runners import RUNTIMES, Runner, available_runtimes, build_runner, check_supported
from cnnzoo.deploy.timing import choose_fastest

__all__ = ["AUTO", "TOLERANCES", "CompileReport", "candidate_runtimes", "compile_runner", "output_difference"]

AUTO = "auto"
# Largest difference to the eager outputs, relative to max(1, largest eager output).
TOLERANCES = {"fp32": 1e-4, "bf16": 5e-2, "int8": None}


@dataclass
class CompileReport:
    """How a runner was chosen and how close it is to the eager model."""

    runtime: str
    precision: str
    seconds: dict[str, float] = field(default_factory=dict)  # per batch, by runner name (auto only)
    from_cache: bool = False
    max_abs_diff: float = 0.0
    tolerance: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)  # filled by engine.compile for int8
    notes: list[str] = field(default_factory=list)  # what a command should tell its user

    def choice_line(self) -> str:
        """``runtime auto: openvino fp32 (torch fp32 480 ms, onnxruntime fp32 340 ms, ...)``."""
        if not self.seconds:
            return f"runtime: {self.runtime} {self.precision}"
        times = ", ".join(f"{label} {1000 * s:.1f} ms" for label, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        how = "remembered" if self.from_cache else "measured now"
        return f"runtime auto: {self.runtime} {self.precision} ({times} per batch; {how})"


def candidate_runtimes(precision: str) -> list[str]:
    """The runtimes installed here that can run ``precision`` (bf16 only on native bf16)."""
    candidates = []
    for runtime in available_runtimes():
        try:
            check_supported(runtime, precision)
        except ValueError:
            continue
        candidates.append(runtime)
    return candidates


def compile_runner(
    model: nn.Module,
    input_size: tuple[int, int, int],
    runtime: str = AUTO,
    precision: str = "fp32",
    *,
    threads: int | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    batch: int = 8,
    log: Callable[[str], None] | None = print,
) -> Runner:
    """A runner of ``model`` for ``(C, H, W)`` inputs on ``runtime`` ("auto" or one of
    :data:`~cnnzoo.deploy.runners.RUNTIMES`) in ``precision``, checked against the eager
    model; ``runner.report`` (:class:`CompileReport`) says how it was chosen. ``batch`` is
    the batch size ``auto`` measures at. ``ValueError`` for an unknown or unsupported choice,
    a runtime that cannot take the model, or outputs that disagree with eager."""
    if runtime != AUTO and runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose auto or one of {', '.join(RUNTIMES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"the batch size must be a positive integer, got {batch!r}")
    model = model.eval()
    onnx_cache: dict[str, bytes] = {}

    def build(name: str) -> Callable[[], Runner]:
        return lambda: build_runner(model, name, input_size, precision, threads=threads, calibration=calibration,
                                    onnx_cache=onnx_cache)

    if runtime == AUTO:
        candidates = candidate_runtimes(precision)
        if not candidates:
            raise ValueError(f"no runtime installed here runs {precision}")
        example = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(1))
        choice = choose_fastest(model, (batch, *input_size), precision, {name: build(name) for name in candidates},
                                example)
        runner = choice.runner or build(choice.label)()
        report = CompileReport(runner.runtime, precision, choice.seconds, choice.from_cache)
    else:
        runner = build(runtime)()
        report = CompileReport(runtime, precision)
    report.max_abs_diff, report.tolerance = _check_agreement(runner, model, input_size, precision)
    if runtime == AUTO:
        report.notes.append(report.choice_line())
    runner.report = report
    if log is not None and runtime == AUTO:
        log(report.choice_line())
    return runner


def output_difference(runner: Callable, model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(largest |runner(x) - model(x)|, largest |model(x)|)``."""
    with torch.no_grad():
        expected = model(x).float()
    got = runner(x)
    if tuple(got.shape) != tuple(expected.shape):
        raise ValueError(f"the runner gives outputs of shape {tuple(got.shape)}, the model {tuple(expected.shape)}")
    return float((got - expected).abs().max()), float(expected.abs().max())


def _check_agreement(runner: Runner, model: nn.Module, input_size: tuple[int, int, int],
                     precision: str) -> tuple[float, float | None]:
    x = torch.randn(3, *input_size, generator=torch.Generator().manual_seed(2))  # a batch size not compiled for
    worst, largest = output_difference(runner, model, x)
    relative = TOLERANCES[precision]
    if relative is None:
        return worst, None
    bound = relative * max(1.0, largest)
    if not worst <= bound:  # NaN fails too
        raise ValueError(f"{runner.name} disagrees with the eager model by up to {worst:.3g} "
                         f"(tolerance {bound:.3g}); the runtime computes something else")
    return worst, bound
