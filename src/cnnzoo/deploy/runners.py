"""Runners: one model, compiled for one runtime and precision, called like the model.

A runner takes a batch (a float32 tensor or NumPy array, ``N x C x H x W``, already
normalized) and returns the model's outputs in the same kind. The batch size is free; the
spatial size is the one the runner was built for (``input_size``). Every runner starts from
the same PyTorch graph work, done once: eval mode and batch norm folded into the conv before
it (:func:`cnnzoo.deploy.fold.fold_batchnorm`).

=============  =======================  ============================================
runtime        precisions               how
=============  =======================  ============================================
``torch``      fp32, bf16 (native only)  the folded module; channels-last where faster
``onnxruntime`` fp32, int8              ONNX export, int8 through ``quantize_static``
``openvino``   fp32, bf16 (native only), the same ONNX graph (int8: the same QDQ graph),
               int8                     compiled for this CPU, one static shape per input
=============  =======================  ============================================

bf16 is offered only where the CPU computes it in hardware (:func:`cnnzoo.utils.cpu.has_native_bf16`):
elsewhere it is emulated and slower than fp32.
"""

from __future__ import annotations

import importlib.util
import io
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from cnnzoo.deploy.fold import fold_batchnorm
from cnnzoo.deploy.onnx import to_onnx
from cnnzoo.deploy.quantize import quantize_int8
from cnnzoo.utils.cpu import has_native_bf16
from cnnzoo.utils.text import first_line

__all__ = [
    "PRECISIONS", "RUNTIMES", "OnnxRuntimeRunner", "OpenVinoRunner", "Runner", "TorchRunner", "available_runtimes",
    "build_runner", "check_supported",
]

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
_SUPPORTED = {"torch": ("fp32", "bf16"), "onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
_INSTALL = {"onnxruntime": "pip install onnxruntime", "openvino": "pip install 'cnnzoo[openvino]' (or openvino)"}


def available_runtimes() -> list[str]:
    """The runtimes whose package is installed here (``torch`` always)."""
    return [name for name in RUNTIMES if name not in _PACKAGES or importlib.util.find_spec(_PACKAGES[name])]


def check_supported(runtime: str, precision: str) -> None:
    """``ValueError`` with the reason when ``runtime`` cannot run ``precision`` here."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)} or auto")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if runtime not in available_runtimes():
        raise ValueError(f"runtime {runtime} is not installed: {_INSTALL[runtime]}")
    if precision not in _SUPPORTED[runtime]:
        raise ValueError(f"{runtime} runs {' and '.join(_SUPPORTED[runtime])}, not {precision}")
    if precision == "bf16" and not has_native_bf16():
        raise ValueError("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 would be emulated and slower "
                         "than fp32; use fp32 or int8")


class Runner(ABC):
    """A compiled model: call it with a batch, get the model's outputs (see the module docstring)."""

    runtime: str
    precision: str

    def __init__(self, model: nn.Module, input_size: tuple[int, int, int], precision: str) -> None:
        self.model = model  # the eager model it reproduces: its sizes, its reference outputs
        self.input_size = tuple(input_size)
        self.precision = precision
        self.report = None  # how it was chosen and checked (cnnzoo.deploy.compile.CompileReport)

    def __call__(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        if isinstance(batch, np.ndarray):
            return self.run(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()
        return self.run(batch)

    @abstractmethod
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """The outputs for a float32 ``N x C x H x W`` CPU tensor."""

    @property
    def name(self) -> str:
        """``runtime precision``, e.g. ``"onnxruntime int8"``."""
        return f"{self.runtime} {self.precision}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {'x'.join(map(str, self.input_size))}>"


class TorchRunner(Runner):
    """The folded module in eager PyTorch; bf16 under autocast; channels-last when
    ``channels_last`` is true, or (``None``) when a few timed runs say it is faster."""

    runtime = "torch"

    def __init__(self, model: nn.Module, input_size: tuple[int, int, int], precision: str = "fp32",
                 channels_last: bool | None = None, example: torch.Tensor | None = None) -> None:
        super().__init__(model, input_size, precision)
        self.module = fold_batchnorm(model)
        if channels_last is None:
            channels_last = example is not None and _channels_last_is_faster(self.module, example, self._autocast)
        self.channels_last = channels_last
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

    @property
    def name(self) -> str:
        return super().name + (" channels-last" if self.channels_last else "")

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @torch.no_grad()
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self.module(batch).float()


class OnnxRuntimeRunner(Runner):
    """An ONNX graph (fp32, or int8 QDQ) in an onnxruntime CPU session."""

    runtime = "onnxruntime"

    def __init__(self, model: nn.Module, input_size: tuple[int, int, int], precision: str, onnx: bytes,
                 threads: int | None = None) -> None:
        super().__init__(model, input_size, precision)
        import onnxruntime  # the runtime's own import (0.2 s): only when a runner is built

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 4  # fatal only: a failing run raises, and its message says it all
        try:
            self.session = onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types
            raise ValueError(f"onnxruntime cannot load the model: {first_line(err)}") from err

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"input": batch.numpy()})[0])


class OpenVinoRunner(Runner):
    """An ONNX graph compiled by OpenVINO for this CPU, once per input shape (static shapes
    let OpenVINO plan its memory and kernels; the first call at a new shape compiles: a new
    batch size, or a new height and width for a graph that leaves them free)."""

    runtime = "openvino"

    def __init__(self, model: nn.Module, input_size: tuple[int, int, int], precision: str, onnx: bytes,
                 threads: int | None = None) -> None:
        super().__init__(model, input_size, precision)
        import openvino  # the runtime's own import (0.5 s): only when a runner is built

        self._openvino = openvino
        self.core = openvino.Core()
        try:
            self.graph = openvino.convert_model(io.BytesIO(onnx))  # reads ONNX from a file-like object
        except Exception as err:  # OpenVINO names the operator it cannot convert
            raise ValueError(f"OpenVINO cannot read the model: {first_line(err)}") from err
        self.config = {
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",  # measured: THROUGHPUT streams halve the speed on 2 cores
            # int8 kernels come from the QDQ graph itself; everything else stays in fp32 unless bf16 was asked.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        self.compiled: dict[tuple[int, ...], Callable] = {}

    def _compiled_for(self, shape: tuple[int, ...]):
        if shape not in self.compiled:
            graph = self.graph.clone()
            graph.reshape(list(shape))
            try:
                self.compiled[shape] = self.core.compile_model(graph, "CPU", self.config)
            except Exception as err:
                raise ValueError(f"OpenVINO cannot compile the model: {first_line(err)}") from err
        return self.compiled[shape]

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        compiled = self._compiled_for(tuple(batch.shape))
        return torch.from_numpy(np.array(compiled(batch.numpy())[0]))


def build_runner(
    model: nn.Module,
    runtime: str,
    input_size: tuple[int, int, int],
    precision: str = "fp32",
    *,
    threads: int | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    onnx_cache: dict[str, bytes] | None = None,
) -> Runner:
    """A runner of ``model`` for ``input_size`` (C, H, W) inputs on ``runtime`` in ``precision``.

    int8 needs ``calibration``: batches of normalized inputs of that size, as the model will
    see them (a few dozen images). ``onnx_cache`` lets runners of one model share one ONNX
    export (and one int8 quantization). Raises ``ValueError`` for an unknown or unsupported
    choice, and when the runtime cannot take the model (naming what it could not do).
    """
    check_supported(runtime, precision)
    model = model.eval()
    example = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
    if runtime == "torch":
        return TorchRunner(model, input_size, precision, channels_last=None, example=example)
    cache = onnx_cache if onnx_cache is not None else {}
    graph = _onnx_graph(model, example, "int8" if precision == "int8" else "fp32", calibration, cache)
    runner_class = OnnxRuntimeRunner if runtime == "onnxruntime" else OpenVinoRunner
    return runner_class(model, input_size, precision, graph, threads)


def _onnx_graph(model: nn.Module, example: torch.Tensor, precision: str, calibration: Iterable[torch.Tensor] | None,
                cache: dict[str, bytes]) -> bytes:
    """The folded model's ONNX graph (dynamic batch), quantized for int8, made once per cache."""
    if "fp32" not in cache:
        # Batch 2: torch.export specializes a dynamic dimension it sees at size 1.
        cache["fp32"], _ = to_onnx(fold_batchnorm(model), example, dynamic_batch=True)
    if precision == "int8" and "int8" not in cache:
        if calibration is None:
            raise ValueError("int8 needs calibration images: a few dozen inputs as the model will see them "
                             "(a run directory's training images are used by default)")
        cache["int8"] = quantize_int8(cache["fp32"], calibration)
    return cache[precision]


def _channels_last_is_faster(module: nn.Module, example: torch.Tensor, autocast: Callable, runs: int = 3) -> bool:
    """Whether the module runs ``example`` faster in channels-last memory format (median of
    ``runs`` after one warm-up each, alternating)."""
    if example.dim() != 4:
        return False
    twin = fold_batchnorm(module).to(memory_format=torch.channels_last)
    candidates = {False: (module, example), True: (twin, example.contiguous(memory_format=torch.channels_last))}
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.no_grad(), autocast():
        for key, (net, x) in candidates.items():
            net(x)  # warm-up: memory and kernel choice
        for _ in range(runs):
            for key, (net, x) in candidates.items():
                started = time.perf_counter()
                net(x)
                times[key].append(time.perf_counter() - started)
    return statistics.median(times[True]) < statistics.median(times[False])
