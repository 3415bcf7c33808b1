"""Export a model to ONNX or TorchScript, checked against the model itself before it is kept.

``export_model`` takes a trained run (a run directory or a ``.safetensors`` checkpoint), a
registered model name (untrained weights: enough to inspect or benchmark the graph) or an
``nn.Module``, and writes one self-contained file:

* ``"onnx"``: ``torch.onnx.export``, then run in onnxruntime on a fresh random input and
  compared with the eager model on the same input;
* ``"torchscript"``: ``torch.jit.trace``, serialized, loaded back and compared the same way.

A largest absolute difference over ``tolerance * max(1, max |eager output|)`` is an error
and nothing is written; otherwise the file appears atomically (temporary file, rename).

Two ONNX exporters ship with torch 2.13: the TorchScript-based one (``"legacy"``,
``dynamo=False``) and the ``torch.export``-based one (``"dynamo"``, torch's own default,
which needs onnxscript). Where both export a model they give the same numbers, and the
legacy one is several times faster; the dynamo one exports a few graphs the legacy one
cannot (adaptive pooling to a size that does not divide the input, with a free batch).
The default, ``"auto"``, takes the legacy exporter and falls back on dynamo
(docs/predict_export.md has the measurements).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.engine.checkpoint import load_trained
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.registry import create_model, model_info
from cnnzoo.utils.atomic import check_output_path, write_atomically
from cnnzoo.utils.text import first_line

__all__ = [
    "DEFAULT_EXPORTER", "DEFAULT_TOLERANCE", "EXPORTERS", "FORMATS", "ExportResult", "ModelSource",
    "default_input_size", "export_model", "load_model_for_export",
]

FORMATS = ("onnx", "torchscript")
EXPORTERS = ("auto", "legacy", "dynamo")
DEFAULT_EXPORTER = "auto"  # legacy, and dynamo where legacy cannot export the model
DEFAULT_TOLERANCE = 1e-4
# protobuf's hard limit on one message: a bigger ONNX model would need its weights in a side file.
_ONNX_SIZE_LIMIT = 2**31 - 1
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
    size_bytes: int
    seconds: float


@dataclass(frozen=True)
class ModelSource:
    """Where the model to export came from: a trained run (``run``, its metadata), a
    registered model (``name`` and its ``model_kwargs``), or a module built by the caller
    (neither)."""

    name: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    run: RunMeta | None = None


def load_model_for_export(
    source: str | Path | nn.Module, model_kwargs: dict[str, Any] | None = None
) -> tuple[nn.Module, ModelSource]:
    """``(model in eval mode, where it came from)`` for a run directory, a ``.safetensors``
    checkpoint, a registered model name or an ``nn.Module``.

    ``model_kwargs`` go to the builder of a registered name and are an error with anything else.
    """
    if isinstance(source, nn.Module):
        if model_kwargs:
            raise ValueError("model options apply only to a registered model name, not to a built model")
        return source.eval(), ModelSource()
    path = Path(source)
    if path.exists():
        if model_kwargs:
            raise ValueError(f"model options apply only to a registered model name, not to the run {path}")
        trained = load_trained(path)
        return trained.model.eval(), ModelSource(trained.meta.model, trained.meta.model_kwargs, trained.meta)
    text = str(source)
    if text.endswith(".safetensors") or "/" in text or "\\" in text:
        raise FileNotFoundError(f"no run directory or checkpoint at {text}")
    model = create_model(text, **(model_kwargs or {}))
    return model.eval(), ModelSource(text, dict(model_kwargs or {}))


def default_input_size(model: nn.Module, source: ModelSource) -> tuple[int, int, int]:
    """The input size a model is exported at when none is given: a trained run's
    ``in_chans x image_size``, a registered model's default input (with its ``in_chans``)."""
    if source.run is not None:
        return (source.run.in_chans, *source.run.image_size)
    if source.name is not None:
        _, height, width = model_info(source.name).default_input
        return (_model_channels(model, source), height, width)
    raise ValueError("the input size is not known for this model: give one (C, H, W)")


def _model_channels(model: nn.Module, source: ModelSource) -> int:
    """Input channels: the run's, else the model's own ``in_chans`` (every zoo model has one),
    else the registered model's default input's."""
    if source.run is not None:
        return source.run.in_chans
    channels = getattr(model, "in_chans", None)
    if channels is None and source.name is not None:
        channels = model_info(source.name).default_input[0]
    if channels is None:
        raise ValueError("the model's input channels are not known: give the input size as (C, H, W)")
    return int(channels)


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
    if format == "onnx" and exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if format == "torchscript" and opset is not None:
        raise ValueError("an opset applies only to ONNX export")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    out = check_output_path(out)  # a bad output path fails now, not after the export
    model, origin = load_model_for_export(source, model_kwargs)
    size = _resolve_input_size(model, origin, input_size)

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    # torch.export specializes a dynamic dimension seen at size 1, so trace a batch of 2 then.
    example = torch.randn(2 if dynamic_batch else 1, *size, generator=generator)
    with torch.no_grad():
        model(example)  # an input the model cannot take fails here, with the model's own message
    if format == "onnx":
        data, used = _export_onnx_with(model, example, opset, dynamic_batch, exporter)
        run_exported = _onnxruntime_runner(data)
    else:
        data, used = _export_torchscript(model, example), "trace"
        run_exported = _torchscript_runner(data)
    batches = [1, _CHECK_BATCH] if dynamic_batch else [1]
    worst, bound, largest = _compare(
        model, run_exported, [torch.randn(b, *size, generator=generator) for b in batches], tolerance, format
    )
    write_atomically(out, lambda stream: stream.write(data))
    return ExportResult(
        path=out, format=format, exporter=used, input_size=size, dynamic_batch=dynamic_batch,
        opset=_onnx_opset(data) if format == "onnx" else None, max_abs_diff=worst, tolerance=bound,
        max_abs_output=largest, size_bytes=len(data), seconds=time.perf_counter() - start,
    )


def _resolve_input_size(
    model: nn.Module, origin: ModelSource, input_size: tuple[int, ...] | None
) -> tuple[int, int, int]:
    if input_size is None:
        size = default_input_size(model, origin)
    elif len(input_size) == 2:
        size = (_model_channels(model, origin), *input_size)
    else:
        size = tuple(input_size)
    return _check_input_size(size)


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


def _check_input_size(size: tuple[int, ...]) -> tuple[int, int, int]:
    if len(size) != 3 or not all(isinstance(n, int) and n > 0 for n in size):
        raise ValueError(f"input size must be three positive integers (C, H, W), got {size}")
    return size  # type: ignore[return-value]


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence what a user cannot act on: deprecation and tracer warnings, the dynamo
    exporter's progress lines, its notes that torchvision's operators are not installed, and
    the legacy exporter's dump of the whole graph when it fails (written by C++ to the
    process's standard output, hence the redirect of file descriptor 1)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch._export")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _null_stdout_fd():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _null_stdout_fd() -> Iterator[None]:
    try:
        sys.__stdout__.flush()
        saved = os.dup(1)
    except (AttributeError, OSError, ValueError):  # no real standard output: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _export_onnx_with(
    model: nn.Module, example: torch.Tensor, opset: int | None, dynamic_batch: bool, exporter: str
) -> tuple[bytes, str]:
    """``(ONNX bytes, exporter used)``; ``"auto"`` tries the legacy exporter, then dynamo."""
    if exporter != "auto":
        return _export_onnx(model, example, opset, dynamic_batch, exporter), exporter
    try:
        return _export_onnx(model, example, opset, dynamic_batch, "legacy"), "legacy"
    except ValueError as legacy_error:
        try:
            return _export_onnx(model, example, opset, dynamic_batch, "dynamo"), "dynamo"
        except ValueError as dynamo_error:
            raise ValueError(f"{legacy_error}; {dynamo_error}") from dynamo_error


def _export_onnx(
    model: nn.Module, example: torch.Tensor, opset: int | None, dynamic_batch: bool, exporter: str
) -> bytes:
    options: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "opset_version": opset}
    try:
        with _quiet_exporters():
            if exporter == "legacy":
                if dynamic_batch:
                    options["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
                buffer = io.BytesIO()
                torch.onnx.export(model, (example,), buffer, dynamo=False, **options)
                data = buffer.getvalue()
            else:
                if dynamic_batch:
                    options["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
                program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, **options)
                proto = program.model_proto
                if proto.ByteSize() > _ONNX_SIZE_LIMIT:
                    raise ValueError("the model is larger than 2 GB, the most one ONNX file holds")
                data = proto.SerializeToString()
    except ValueError:
        raise
    except Exception as err:  # the exporters raise many types; the first line says what failed
        raise ValueError(f"ONNX export ({exporter}) failed: {first_line(err)}") from err
    return data


def _onnxruntime_runner(data: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ValueError(f"onnxruntime cannot load the exported model: {first_line(err)}") from err
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})[0]


def _export_torchscript(model: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    try:
        with _quiet_exporters(), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as err:
        raise ValueError(f"TorchScript tracing failed: {first_line(err)}") from err
    return buffer.getvalue()


def _torchscript_runner(data: bytes):
    with _quiet_exporters():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(x: torch.Tensor) -> np.ndarray:
        with _quiet_exporters(), torch.no_grad():
            return loaded(x).numpy()

    return run


def _onnx_opset(data: bytes) -> int | None:
    import onnx

    model = onnx.load_model_from_string(data)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
