"""``cnnzoo export``: a trained run or a registered model as one ONNX or TorchScript file."""

from __future__ import annotations

import argparse

from cnnzoo.cli.options import add_input_size_option, add_model_kwargs_option, parse_model_kwargs, parse_size_option
from cnnzoo.engine.export import DEFAULT_EXPORTER, DEFAULT_TOLERANCE, EXPORTERS, FORMATS, export_model
from cnnzoo.utils.text import format_count


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write a model as ONNX, OpenVINO or TorchScript, checked against the original",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Export a trained run (its directory or a .safetensors checkpoint) or a registered\n"
            "model (untrained weights, for the graph) to ONNX, OpenVINO (NAME.xml + NAME.bin) or\n"
            "TorchScript. The exported model is run on a random input (in onnxruntime for ONNX,\n"
            "OpenVINO for OpenVINO) and compared with the original;\n"
            "a difference over the tolerance is an error and nothing is written."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo export runs/unet-shapes --out unet.onnx --dynamic-batch\n"
            "  cnnzoo export runs/resnet20/best.safetensors --format torchscript --out resnet20.pt\n"
            "  cnnzoo export runs/resnet20 --format openvino --out resnet20.xml --dynamic-batch\n"
            "  cnnzoo export mobilenet_v1 -k width_mult=0.5 --input-size 3x160x160 --out mobilenet.onnx"
        ),
    )
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT|MODEL", help="a run directory, a .safetensors checkpoint "
                   "or a registered model name (see `cnnzoo list`)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.onnx, .xml for OpenVINO, .pt)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    add_input_size_option(p, "input size of the exported graph (default: the run's training size, or the "
                             "model's default input)")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help="ONNX exporter: legacy (dynamo=False), dynamo (torch.export), or auto: legacy, then "
                        f"dynamo where legacy fails (default: {DEFAULT_EXPORTER})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest difference allowed, relative to max(1, largest output) "
                        f"(default: {DEFAULT_TOLERANCE})")
    add_model_kwargs_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    kwargs = parse_model_kwargs(args.model_kwargs)
    size = parse_size_option(args.input_size)
    if args.opset is not None and args.format == "torchscript":
        raise ValueError("--opset applies only to --format onnx and openvino")
    result = export_model(
        args.source, args.out, format=args.format, input_size=size, opset=args.opset,
        dynamic_batch=args.dynamic_batch, exporter=args.exporter, model_kwargs=kwargs, tolerance=args.tolerance,
    )
    how = f"{result.exporter} exporter, opset {result.opset}" if result.format != "torchscript" else "traced"
    batch = "dynamic batch" if result.dynamic_batch else "batch 1"
    shape = "x".join(map(str, result.input_size))
    checker = {"onnx": "onnxruntime", "openvino": "OpenVINO", "torchscript": "the reloaded TorchScript module"}[result.format]
    files = " + ".join(str(path) for path in result.files)
    print(f"wrote {files} ({result.format}, {how}, input {shape}, {batch}, "
          f"{format_count(result.size_bytes, 'B')}) in {result.seconds:.1f} s")
    print(f"{checker} agrees with the model to {result.max_abs_diff:.2g} (tolerance {result.tolerance:.2g})")
    return 0
