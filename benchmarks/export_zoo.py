"""Which registered models export, and how fast: every model through ONNX and TorchScript
at a small input, each checked against the eager model (as `cnnzoo export` checks it).

    python benchmarks/export_zoo.py [PATTERN] [--formats onnx-auto,torchscript]
    python benchmarks/export_zoo.py 'resnet*' --formats onnx-legacy,onnx-dynamo   # the two exporters

Prints a Markdown table (the one in docs/predict_export.md). Each model (its registered
initialisation plus a little noise on every parameter, so that no output is trivially zero)
is exported with a free batch dimension at its smallest sensible input: 32x32, or its
documented minimum where that is larger (its default input where that is refused). Files
go to a temporary folder. On a busy machine run it with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.engine.export import export_model

WAYS = {
    "onnx-auto": ("onnx", "auto"), "onnx-legacy": ("onnx", "legacy"), "onnx-dynamo": ("onnx", "dynamo"),
    "torchscript": ("torchscript", "auto"),
}


def export_sizes(name: str) -> list[tuple[int, int, int]]:
    info = cnnzoo.model_info(name)
    channels = info.default_input[0]
    side = max(32, info.min_input_size)
    return [(channels, side, side), tuple(info.default_input)]


def perturbed_model(name: str) -> torch.nn.Module:
    """The registered model with noise on every parameter tensor that its initialisation
    fills with one value (norm scales and shifts, biases, zero-initialised last norms): those
    can make every output zero (EfficientNet), which would check nothing."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() > 1 and bool((parameter == parameter.flatten()[0]).all()):
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def try_export(name: str, fmt: str, exporter: str, folder: Path) -> str:
    """The table cell: seconds and the largest difference relative to the largest output
    (which exporter "auto" used, and the input size where the smallest one failed), or why
    it fails."""
    out = folder / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}"
    error = None
    model = perturbed_model(name)
    for size in export_sizes(name):
        try:
            result = export_model(model, out, format=fmt, exporter=exporter, input_size=size, dynamic_batch=True,
                                  dynamic_size=False)  # the table measures fixed-size graphs
        except ValueError as err:
            error = str(err).splitlines()[0]
            continue
        finally:
            out.unlink(missing_ok=True)
        used = f" ({result.exporter})" if exporter == "auto" and fmt == "onnx" else ""
        at = "" if size == export_sizes(name)[0] else f" at {'x'.join(map(str, size))}"
        relative = result.max_abs_diff / max(result.max_abs_output, 1e-30)
        return f"{result.seconds:.1f} s, {relative:.0e}{used}{at}"
    return f"FAILS: {error[:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", default="*")
    parser.add_argument("--formats", default="onnx-auto,torchscript", help=", ".join(WAYS))
    args = parser.parse_args()
    ways = args.formats.split(",")
    torch.manual_seed(0)
    print("| model | input | " + " | ".join(ways) + " |")
    print("|---|---|" + "---|" * len(ways))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in cnnzoo.list_models(args.pattern):
            cells = [try_export(name, *WAYS[way], Path(folder)) for way in ways]
            shape = "x".join(map(str, export_sizes(name)[0]))
            print(f"| {name} | {shape} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all, torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
