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
and nothing is written. A free height and width (``dynamic_size``, the default for
segmenters) is checked the same way at a second size the model takes. Every export says
what it is and how to feed it (:mod:`cnnzoo.engine.export_meta`): inside the model file, and
in ``NAME.json`` beside it; with ``preprocess_in_graph`` the graph takes uint8 images and
normalizes them itself. The files appear together, atomically (temporary files, renames).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.deploy.onnx import DEFAULT_EXPORTER, EXPORTERS, check_opset, onnx_opset, quiet_exporters, to_onnx, with_metadata
from cnnzoo.deploy.openvino_files import openvino_files
from cnnzoo.deploy.preprocess import Uint8Input
from cnnzoo.deploy.runners import OnnxRuntimeRunner, OpenVinoRunner
from cnnzoo.data.spec import DENSE_TASKS
from cnnzoo.engine.export_meta import check_free_size, export_metadata, metadata_strings, sidecar_path, size_rule
from cnnzoo.engine.sources import ModelSource, load_model_source, resolve_input_size
from cnnzoo.utils.atomic import check_output_path, refuse_to_replace, write_files_atomically
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
    ``metadata`` is what the export says about itself (also in ``sidecar``, ``NAME.json``);
    ``notes`` say why a default was not followed (a segmenter exported at a fixed size).
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
    size_bytes: int  # of the model's files (the sidecar aside)
    seconds: float
    files: tuple[Path, ...] = ()  # the file, or an OpenVINO model's .xml and .bin
    dynamic_size: bool = False
    preprocess_in_graph: bool = False
    sidecar: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    checked_sizes: tuple[tuple[int, int], ...] = ()  # the (H, W) the check ran at


@dataclass(frozen=True)
class _Job:
    """One export request, resolved: the module to export (the model, or it behind the
    uint8 normalization), its input size and how the export is checked."""

    graph: nn.Module
    format: str
    size: tuple[int, int, int]
    opset: int | None
    dynamic_batch: bool
    uint8: bool
    tolerance: float
    seed: int
    second_size: tuple[int, int]

    def shapes(self, dynamic_size: bool) -> list[tuple[int, int, int, int]]:
        """The shapes the export is checked at: batch 1 (and 3 with a free batch) at the
        export size, and batch 1 at a second size when the size is free."""
        shapes = [(1, *self.size)] + ([(_CHECK_BATCH, *self.size)] if self.dynamic_batch else [])
        return shapes + ([(1, self.size[0], *self.second_size)] if dynamic_size else [])

    def inputs(self, dynamic_size: bool) -> list[torch.Tensor]:
        """Seeded random inputs of :meth:`shapes`."""
        generator = torch.Generator().manual_seed(self.seed + 1)
        return [self.random(shape, generator) for shape in self.shapes(dynamic_size)]

    def random(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        if self.uint8:
            return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        return torch.randn(shape, generator=generator)


@dataclass
class _Exported:
    """A checked export, before anything is written."""

    data: bytes
    exporter: str
    dynamic_size: bool
    check: tuple[float, float, float]  # (largest difference, its bound, largest eager output)
    traced: torch.jit.ScriptModule | None = None  # TorchScript: saved again with the metadata
    notes: tuple[str, ...] = ()


def export_model(
    source: str | Path | nn.Module,
    out: str | Path,
    *,
    format: str = "onnx",
    input_size: tuple[int, int, int] | None = None,
    opset: int | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool | None = None,
    preprocess_in_graph: bool = False,
    exporter: str = DEFAULT_EXPORTER,
    model_kwargs: dict[str, Any] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    weights: str | Path | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export ``source`` to ``out`` (and its metadata to ``NAME.json`` beside it), checked
    against the eager model first.

    Args:
        source: a run directory, a ``.safetensors`` checkpoint, a registered model name or
            an ``nn.Module``.
        out: the file to write (its folder must exist): ``NAME.onnx``, ``NAME.xml``
            (OpenVINO, + ``NAME.bin``), ``NAME.pt`` (TorchScript).
        format: ``"onnx"``, ``"openvino"`` or ``"torchscript"``.
        input_size: ``(C, H, W)`` of the exported graph, or ``(H, W)`` with the model's
            channels (default: the run's training size, or the registered model's default input).
        opset: ONNX opset version (default: the exporter's own).
        dynamic_batch: leave the batch dimension free (checked at a second batch size).
        dynamic_size: leave the height and width free (checked at a second valid size):
            ``True`` requires it (``ValueError`` when the model or its graph cannot), ``False``
            fixes the size, ``None`` (default) frees it for segmenters where their graph
            allows it (else fixed, said in ``notes``) and fixes it for classifiers.
        preprocess_in_graph: the graph takes uint8 images (0..255) and divides by 255 and
            normalizes with the run's mean and std itself (a trained run only).
        exporter: ONNX only: ``"legacy"`` (``dynamo=False``), ``"dynamo"`` or ``"auto"``
            (legacy, and dynamo where legacy fails: to export, or with a free size, to
            compute other sizes right).
        model_kwargs: builder options for a registered model name.
        tolerance: the exported outputs must be within ``tolerance * max(1, max|y|)`` of
            the eager outputs ``y``.
        seed: seed of the random check inputs.
        weights: pretrained weights for a registered model name (:func:`cnnzoo.create_model`'s);
            the export then carries their preprocessing and class names.
        overwrite: replace files that already exist (refused otherwise); a checkpoint's
            files are never replaced (:func:`~cnnzoo.engine.export_meta.sidecar_path`).

    Raises ``ValueError`` (bad option, an input the model cannot take, an export or check
    that fails) with nothing written.
    """
    _check_options(format, exporter, opset, tolerance)
    out = check_output_path(out)  # a bad output path fails now, not after the export
    if format == "openvino" and out.suffix != ".xml":
        raise ValueError(f"an OpenVINO model is written as NAME.xml (+ NAME.bin beside it), got {out.name}")
    sidecar = check_output_path(sidecar_path(out))
    refuse_to_replace([out, sidecar, *([out.with_suffix(".bin")] if format == "openvino" else [])], overwrite)
    model, origin = load_model_source(source, model_kwargs, weights=weights)
    size = resolve_input_size(model, origin, input_size)
    start = time.perf_counter()
    if dynamic_size:
        check_free_size(model, origin.name or type(model).__name__)
    job = _job(model, origin, format, size, opset, dynamic_batch, preprocess_in_graph, tolerance, seed)
    free = dynamic_size if dynamic_size is not None else origin.task(model) in DENSE_TASKS
    if free:
        exported = _export_free(job, exporter, required=bool(dynamic_size))
    else:
        exported = _export_checked(job, exporter, False)
    metadata = export_metadata(
        model, origin, format=format, exporter=exported.exporter, opset=_opset(format, exported.data),
        input_size=size, dynamic_batch=dynamic_batch, dynamic_size=exported.dynamic_size,
        preprocess_in_graph=preprocess_in_graph,
    )
    files = _model_files(format, out, exported, metadata)
    write_files_atomically({**files, sidecar: (json.dumps(metadata, indent=1) + "\n").encode()})
    return _result(job, exported, out, files, sidecar, metadata, time.perf_counter() - start)


def _result(job: _Job, exported: _Exported, out: Path, files: dict[Path, bytes], sidecar: Path,
            metadata: dict[str, Any], seconds: float) -> ExportResult:
    worst, bound, largest = exported.check
    return ExportResult(
        path=out, format=job.format, exporter=exported.exporter, input_size=job.size, dynamic_batch=job.dynamic_batch,
        opset=metadata["opset"], max_abs_diff=worst, tolerance=bound, max_abs_output=largest,
        size_bytes=sum(len(data) for data in files.values()), seconds=seconds,
        files=tuple(sorted(files, key=lambda path: path != out)), dynamic_size=exported.dynamic_size,
        preprocess_in_graph=job.uint8, sidecar=sidecar, metadata=metadata, notes=exported.notes,
        checked_sizes=tuple(dict.fromkeys(shape[-2:] for shape in job.shapes(exported.dynamic_size))),
    )


def _check_options(format: str, exporter: str, opset: int | None, tolerance: float) -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format != "torchscript" and exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if format == "torchscript" and opset is not None:
        raise ValueError("an opset applies only to ONNX export")
    check_opset(opset)
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")


def _job(model: nn.Module, origin: ModelSource, format: str, size: tuple[int, int, int], opset: int | None,
         dynamic_batch: bool, preprocess_in_graph: bool, tolerance: float, seed: int) -> _Job:
    """The request resolved; the model runs once on the export size here, so that an input
    it cannot take fails now, with the model's own message."""
    graph = model
    if preprocess_in_graph:
        if origin.meta is None:
            raise ValueError("preprocessing in the graph needs the mean and std of a trained run; a registered "
                             "model or a module has none: export a run directory or checkpoint")
        graph = Uint8Input(model, origin.meta.mean, origin.meta.std).eval()
    job = _Job(graph, format, size, opset, dynamic_batch, preprocess_in_graph, tolerance, seed,
               size_rule(model, size[1]).second_size(*size[1:]))
    with torch.no_grad():
        graph(job.inputs(dynamic_size=False)[0])
    return job


def _export_free(job: _Job, exporter: str, required: bool) -> _Exported:
    """The export with a free height and width, checked at a second size: with exporter
    ``"auto"``, dynamo where the legacy graph fails there (it records sizes a model computes
    in Python as constants); when no graph takes other sizes, an error if ``required``, else
    the export at a fixed size, with a note saying why."""
    failures = []
    for attempt in _free_size_exporters(job.format, exporter):
        try:
            return _export_checked(job, attempt, True)
        except ValueError as err:
            failures.append(str(err))
    reason = failures[-1].removesuffix("; nothing written")
    height, width = job.second_size
    if required:
        raise ValueError(f"the exported {job.format} graph does not take a free height and width (checked at "
                         f"{height}x{width}): {reason}; export it at one size (--fixed-size); nothing written")
    fixed = _export_checked(job, exporter, False)
    note = (f"fixed input size {job.size[1]}x{job.size[2]}: the graph with a free size failed at {height}x{width} "
            f"({reason})")
    return dataclasses.replace(fixed, notes=(note,))


def _free_size_exporters(format: str, exporter: str) -> list[str]:
    if format == "torchscript":
        return ["trace"]
    return ["legacy", "dynamo"] if exporter == "auto" else [exporter]  # "auto", with the check counted in


def _export_checked(job: _Job, exporter: str, dynamic_size: bool) -> _Exported:
    """Export once and compare with the eager model on :meth:`_Job.inputs`."""
    batch = 2 if job.dynamic_batch else 1  # torch.export specializes a dynamic dimension seen at size 1
    example = job.random((batch, *job.size), torch.Generator().manual_seed(job.seed))
    traced = None
    if job.format == "torchscript":
        traced = _trace(job.graph, example)
        data, used = _torchscript_bytes(traced), "trace"
        run_exported = _torchscript_runner(data)
    else:
        data, used = to_onnx(job.graph, example, job.opset, job.dynamic_batch, exporter, dynamic_size)
        run_exported = _runtime_runner(job.format, job.graph, job.size, data)
    check = _compare(job.graph, run_exported, job.inputs(dynamic_size), job.tolerance, job.format)
    return _Exported(data, used, dynamic_size, check, traced)


def _opset(format: str, data: bytes) -> int | None:
    return onnx_opset(data) if format != "torchscript" else None


def _model_files(format: str, out: Path, exported: _Exported, metadata: dict[str, Any]) -> dict[Path, bytes]:
    """The model's files with their metadata inside: ONNX ``metadata_props``, OpenVINO
    ``rt_info``, a TorchScript archive's extra file ``cnnzoo.json``."""
    strings = metadata_strings(metadata)
    if format == "onnx":
        return {out: with_metadata(exported.data, strings)}
    if format == "openvino":
        return openvino_files(exported.data, out, strings)
    return {out: _torchscript_bytes(exported.traced, json.dumps(metadata))}


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
            raise ValueError(f"the exported {format} model gives shape {got.shape} for a {tuple(x.shape)} input, "
                             f"the model {expected.shape}; nothing written")
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


def _trace(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    try:
        with quiet_exporters(), torch.no_grad():
            return torch.jit.trace(model, example, check_trace=False)
    except Exception as err:
        raise ValueError(f"TorchScript tracing failed: {first_line(err)}") from err


def _torchscript_bytes(traced: torch.jit.ScriptModule, metadata: str | None = None) -> bytes:
    """The traced module serialized, with ``metadata`` as the archive's extra file
    ``cnnzoo.json`` (``torch.jit.load(path, _extra_files={"cnnzoo.json": ""})`` reads it)."""
    buffer = io.BytesIO()
    with quiet_exporters():
        torch.jit.save(traced, buffer, _extra_files={"cnnzoo.json": metadata} if metadata is not None else None)
    return buffer.getvalue()


def _torchscript_runner(data: bytes):
    with quiet_exporters():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(x: torch.Tensor) -> np.ndarray:
        with quiet_exporters(), torch.no_grad():
            return loaded(x).numpy()

    return run
