"""Export a model to ONNX, OpenVINO or TorchScript, checked against the model itself before
it is kept.

``export_model`` takes a trained run (a run directory or a ``.safetensors`` checkpoint), a
registered model name (untrained weights: enough to inspect or benchmark the graph) or an
``nn.Module``, and writes a self-contained model:

* ``"onnx"``: one ``.onnx`` file (:func:`cnnzoo.deploy.onnx.to_onnx`: the legacy exporter,
  dynamo where it fails), run in onnxruntime on a fresh random input and compared with the
  eager model on the same input;
* ``"openvino"``: the same graph converted by OpenVINO, ``NAME.xml`` + ``NAME.bin``,
  compiled for this CPU and compared the same way;
* ``"torchscript"``: ``torch.jit.trace``, serialized, loaded back and compared the same way.

A largest absolute difference over ``tolerance * max(1, max |eager output|)`` is an error
and nothing is written; otherwise the files appear atomically (temporary files, renames).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.deploy.onnx import DEFAULT_EXPORTER, EXPORTERS, onnx_opset, quiet_exporters, to_onnx
from cnnzoo.deploy.openvino_files import save_openvino
from cnnzoo.deploy.runners import OnnxRuntimeRunner, OpenVinoRunner
from cnnzoo.engine.sources import load_model_source, resolve_input_size
from cnnzoo.utils.atomic import check_output_path, write_atomically
from cnnzoo.utils.text import first_line

__all__ = [
    "DEFAULT_EXPORTER", "DEFAULT_TOLERANCE", "EXPORTERS", "FORMATS", "ExportResult", "export_model",
]

FORMATS = ("onnx", "openvino", "torchscript")
DEFAULT_TOLERANCE = 1e-4
_CHECK_BATCH = 3  # the batch size the dynamic-batch check runs at (any size but the exported one)


@dataclass(frozen=True)
class ExportResult:
    """What was written and how well it matches the eager model.

    ``max_abs_diff`` is the largest absolute difference between the exported and the eager
    model's outputs on the same random input(s), ``max_abs_output`` the largest eager output
    (their ratio is the relative difference) and ``tolerance`` the absolute bound the
    difference was held to; ``exporter`` is ``"legacy"`` or ``"dynamo"`` (ONNX) or ``"trace"`` (TorchScript).
    """

    path: Path
    format: str
    exporter: str
    input_size: tuple[int, int, int]
    dynamic_batch: bool
    opset: int | None
    max_abs_diff: float
    tolerance: float
    max_abs_output: float
    size_bytes: int  # of every file written
    seconds: float
    files: tuple[Path, ...] = ()  # the file, or an OpenVINO model's .xml and .bin


def export_model(
    source: str | Path | nn.Module,
    out: str | Path,
    *,
    format: str = "onnx",
    input_size: tuple[int, int, int] | None = None,
    opset: int | None = None,
    dynamic_batch: bool = False,
    exporter: str = DEFAULT_EXPORTER,
    model_kwargs: dict[str, Any] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Export ``source`` to ``out`` as ONNX or TorchScript and check it against the eager model.

    Args:
        source: a run directory, a ``.safetensors`` checkpoint, a registered model name or
            an ``nn.Module``.
        out: the file to write (its folder must exist).
        format: ``"onnx"`` or ``"torchscript"``.
        input_size: ``(C, H, W)`` of the exported graph, or ``(H, W)`` with the model's
            channels (default: the run's training size, or the registered model's default input).
        opset: ONNX opset version (default: the exporter's own).
        dynamic_batch: leave the batch dimension free (checked at a second batch size).
        exporter: ONNX only: ``"legacy"`` (``dynamo=False``), ``"dynamo"`` or ``"auto"``
            (legacy, and dynamo where legacy fails).
        model_kwargs: builder options for a registered model name.
        tolerance: the exported outputs must be within ``tolerance * max(1, max|y|)`` of
            the eager outputs ``y``.
        seed: seed of the random check input.

    Raises ``ValueError`` (bad option, an input the model cannot take, an export or check
    that fails) with nothing written.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format != "torchscript" and exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if format == "torchscript" and opset is not None:
        raise ValueError("an opset applies only to ONNX export")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    out = check_output_path(out)  # a bad output path fails now, not after the export
    if format == "openvino" and out.suffix != ".xml":
        raise ValueError(f"an OpenVINO model is written as NAME.xml (+ NAME.bin beside it), got {out.name}")
    model, origin = load_model_source(source, model_kwargs)
    size = resolve_input_size(model, origin, input_size)

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    # torch.export specializes a dynamic dimension seen at size 1, so trace a batch of 2 then.
    example = torch.randn(2 if dynamic_batch else 1, *size, generator=generator)
    with torch.no_grad():
        model(example)  # an input the model cannot take fails here, with the model's own message
    if format == "torchscript":
        data, used = _export_torchscript(model, example), "trace"
        run_exported = _torchscript_runner(data)
    else:
        data, used = to_onnx(model, example, opset, dynamic_batch, exporter)
        run_exported = _runtime_runner(format, model, size, data)
    batches = [1, _CHECK_BATCH] if dynamic_batch else [1]
    worst, bound, largest = _compare(
        model, run_exported, [torch.randn(b, *size, generator=generator) for b in batches], tolerance, format
    )
    if format == "openvino":
        written = save_openvino(data, out)
    else:
        written = (write_atomically(out, lambda stream: stream.write(data)),)
    return ExportResult(
        path=out, format=format, exporter=used, input_size=size, dynamic_batch=dynamic_batch,
        opset=onnx_opset(data) if format != "torchscript" else None, max_abs_diff=worst, tolerance=bound,
        max_abs_output=largest, size_bytes=sum(path.stat().st_size for path in written),
        seconds=time.perf_counter() - start, files=tuple(written),
    )


def _compare(
    model: nn.Module, run_exported: Callable[[torch.Tensor], np.ndarray], inputs: list[torch.Tensor],
    tolerance: float, format: str,
) -> tuple[float, float, float]:
    """``(largest difference, its bound, largest eager output)`` between the exported and
    the eager model on ``inputs``; ``ValueError`` when the difference is over the bound (or
    the exported model fails)."""
    worst, largest = 0.0, 0.0
    for x in inputs:
        with torch.no_grad():
            expected = model(x).numpy()
        try:
            got = run_exported(x)
        except Exception as err:  # onnxruntime and TorchScript raise their own types
            raise ValueError(f"the exported {format} model fails on a {tuple(x.shape)} input: {first_line(err)}; "
                             "nothing written") from err
        if got.shape != expected.shape:
            raise ValueError(f"the exported {format} model gives shape {got.shape}, the model {expected.shape}; "
                             "nothing written")
        worst = max(worst, float(np.abs(got - expected).max()))
        largest = max(largest, float(np.abs(expected).max()))
    bound = tolerance * max(1.0, largest)
    if not worst <= bound:  # NaN fails too
        raise ValueError(
            f"the exported {format} model differs from the original by up to {worst:.3g} "
            f"(tolerance {bound:.3g}); nothing written"
        )
    return worst, bound, largest


def _runtime_runner(format: str, model: nn.Module, size: tuple[int, int, int], data: bytes):
    """The exported ONNX graph in the runtime that will run it: onnxruntime, or OpenVINO."""
    runner = (OnnxRuntimeRunner if format == "onnx" else OpenVinoRunner)(model, size, "fp32", data)
    return lambda x: runner(x).numpy()


def _export_torchscript(model: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    try:
        with quiet_exporters(), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as err:
        raise ValueError(f"TorchScript tracing failed: {first_line(err)}") from err
    return buffer.getvalue()


def _torchscript_runner(data: bytes):
    with quiet_exporters():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(x: torch.Tensor) -> np.ndarray:
        with quiet_exporters(), torch.no_grad():
            return loaded(x).numpy()

    return run
