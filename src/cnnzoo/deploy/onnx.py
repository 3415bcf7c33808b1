"""Models to ONNX: the one exporter call behind ``cnnzoo export`` and every ONNX-based runner.

Two ONNX exporters ship with torch 2.13: the TorchScript-based one (``"legacy"``,
``dynamo=False``) and the ``torch.export``-based one (``"dynamo"``, torch's own default,
which needs onnxscript). Where both export a model they give the same numbers, and the
legacy one is several times faster; the dynamo one exports a few graphs the legacy one
cannot (adaptive pooling to a size that does not divide the input, with a free batch;
max-unpooling). ``"auto"`` takes the legacy exporter and falls back on dynamo
(docs/predict_export.md has the measurements).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from cnnzoo.utils.text import first_line

__all__ = ["DEFAULT_EXPORTER", "EXPORTERS", "OPSETS", "check_opset", "onnx_opset", "quiet_exporters", "to_onnx", "with_metadata"]

EXPORTERS = ("auto", "legacy", "dynamo")
DEFAULT_EXPORTER = "auto"  # legacy, and dynamo where legacy cannot export the model


def _supported_opsets() -> range:
    """The opsets torch.onnx's exporters can write (torch 2.13: 7 to 23)."""
    try:
        from torch.onnx import _constants

        return range(_constants.ONNX_MIN_OPSET, _constants.ONNX_MAX_OPSET + 1)
    except (ImportError, AttributeError):  # a private module: the range of torch 2.13
        return range(7, 24)


OPSETS = _supported_opsets()
# protobuf's hard limit on one message: a bigger ONNX model would need its weights in a side file.
_ONNX_SIZE_LIMIT = 2**31 - 1


def to_onnx(
    model: nn.Module, example: torch.Tensor, opset: int | None = None, dynamic_batch: bool = False,
    exporter: str = DEFAULT_EXPORTER, dynamic_size: bool = False,
) -> tuple[bytes, str]:
    """``(ONNX bytes, exporter used)`` of ``model`` traced on ``example``: one input named
    ``input``, one output named ``output``, the batch dimension free with ``dynamic_batch``,
    the height and width with ``dynamic_size`` (declared free: whether the graph really
    computes other sizes right is for the caller to check). ``"auto"`` tries the legacy
    exporter, then dynamo; ``ValueError`` when none succeeds, naming what failed."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    check_opset(opset)
    free = _free_axes(dynamic_batch, dynamic_size)
    if exporter != "auto":
        return _export(model, example, opset, free, exporter), exporter
    try:
        return _export(model, example, opset, free, "legacy"), "legacy"
    except ValueError as legacy_error:
        try:
            return _export(model, example, opset, free, "dynamo"), "dynamo"
        except ValueError as dynamo_error:
            raise ValueError(f"{legacy_error}; {dynamo_error}") from dynamo_error


def check_opset(opset: int | None) -> int | None:
    """``opset`` when the installed exporters can write it (or None: the exporter's own),
    else a ValueError naming the range."""
    if opset is not None and opset not in OPSETS:
        raise ValueError(f"opset {opset} is not one the ONNX exporter writes: choose {OPSETS[0]} to {OPSETS[-1]}")
    return opset


def with_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """The ONNX model ``data`` with ``metadata`` in its ``metadata_props`` (what
    onnxruntime's ``get_modelmeta().custom_metadata_map`` reads), replacing equal keys."""
    import onnx  # 0.3 s, needed only once a model is exported

    model = onnx.load_model_from_string(data)
    kept = [(entry.key, entry.value) for entry in model.metadata_props if entry.key not in metadata]
    del model.metadata_props[:]
    for key, value in [*kept, *metadata.items()]:
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def onnx_opset(data: bytes) -> int | None:
    """The default-domain opset an ONNX model was written for."""
    import onnx  # 0.3 s, needed only once a model is exported

    model = onnx.load_model_from_string(data)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def _free_axes(dynamic_batch: bool, dynamic_size: bool) -> dict[int, str]:
    """The input's free dimensions by position, with their names."""
    return {**({0: "batch"} if dynamic_batch else {}), **({2: "height", 3: "width"} if dynamic_size else {})}


def _export(model: nn.Module, example: torch.Tensor, opset: int | None, free: dict[int, str], exporter: str) -> bytes:
    options: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "opset_version": opset}
    try:
        with quiet_exporters():
            if exporter == "legacy":
                if free:  # a classifier's output has no axes 2 and 3: the exporter ignores those
                    outputs = {axis: name if axis == 0 else f"out_{name}" for axis, name in free.items()}
                    options["dynamic_axes"] = {"input": free, "output": outputs}
                buffer = io.BytesIO()
                torch.onnx.export(model, (example,), buffer, dynamo=False, **options)
                data = buffer.getvalue()
            else:
                if free:
                    options["dynamic_shapes"] = ({axis: torch.export.Dim(name) for axis, name in free.items()},)
                program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, **options)
                proto = program.model_proto
                if proto.ByteSize() > _ONNX_SIZE_LIMIT:
                    raise ValueError("the model is larger than 2 GB, the most one ONNX file holds")
                data = proto.SerializeToString()
    except ValueError:
        raise
    except Exception as err:  # the exporters raise many types; the first line says what failed
        raise ValueError(f"ONNX export ({exporter}) failed: {first_line(err)}") from err
    written = onnx_opset(data) if opset is not None else opset
    if written != opset:  # dynamo falls back on its own opset where it cannot convert the graph to the one asked for
        raise ValueError(f"ONNX export ({exporter}) wrote opset {written}, not the {opset} asked for")
    return data


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence what a user cannot act on: deprecation and tracer warnings, the dynamo
    exporter's progress lines, its notes that torchvision's operators are not installed, and
    onnxscript's version converter's tracebacks where it cannot write the opset asked for
    (:func:`_export` then says so in one line), the legacy exporter's dump of the whole graph when it fails (written by C++ to the
    process's standard output, hence the redirect of file descriptor 1)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch._export", "onnxscript")]
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
