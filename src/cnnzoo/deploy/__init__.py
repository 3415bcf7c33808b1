"""Fast inference: one model compiled for the fastest faithful runtime on this machine.

* :func:`compile_runner` (``runtime="auto"`` measures the candidates and keeps the fastest);
  :func:`build_runner` for one runtime; the runners themselves (:mod:`~cnnzoo.deploy.runners`:
  eager PyTorch, onnxruntime, OpenVINO; fp32, bf16 on CPUs that have it, int8);
* :func:`fold_batchnorm`: batch norm folded into the convolution before it;
* :func:`quantize_int8`: post-training static quantization, calibrated on real inputs;
* :func:`to_onnx`: the one ONNX export call (legacy exporter, dynamo where it fails);
* :func:`time_alternating` / :func:`choose_fastest`: timings in alternating rounds.

This package works on ``nn.Module``\\ s; :func:`cnnzoo.engine.compile.compile_model` takes run
directories, calibrates on their training images and measures what int8 costs.
"""

from cnnzoo.deploy.compile import AUTO, TOLERANCES, CompileReport, compile_runner
from cnnzoo.deploy.fold import fold_batchnorm
from cnnzoo.deploy.onnx import to_onnx
from cnnzoo.deploy.quantize import quantize_int8
from cnnzoo.deploy.runners import PRECISIONS, RUNTIMES, Runner, available_runtimes, build_runner
from cnnzoo.deploy.timing import choose_fastest, time_alternating

__all__ = [
    "AUTO", "PRECISIONS", "RUNTIMES", "TOLERANCES", "CompileReport", "Runner", "available_runtimes", "build_runner",
    "choose_fastest", "compile_runner", "fold_batchnorm", "quantize_int8", "time_alternating", "to_onnx",
]
