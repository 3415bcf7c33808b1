"""``cnnzoo export``: a trained run or a registered model as ONNX, OpenVINO or TorchScript,
with ``NAME.json`` beside it saying how to feed it."""

from __future__ import annotations

import argparse

from cnnzoo.cli.options import (
    add_input_size_option,
    add_model_kwargs_option,
    add_overwrite_option,
    add_weights_option,
    parse_model_kwargs,
    parse_size_option,
)
from cnnzoo.engine.export import DEFAULT_EXPORTER, DEFAULT_TOLERANCE, EXPORTERS, FORMATS, ExportResult, export_model
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
            "a difference over the tolerance is an error and nothing is written.\n"
            "Every export carries its metadata (task, classes, mean and std, input size and the\n"
            "sizes it takes, resize and crop, channel order, model, cnnzoo version): in the ONNX\n"
            "metadata_props / the OpenVINO rt_info / the TorchScript file's cnnzoo.json, and in\n"
            "NAME.json beside it. Segmenters are exported with a free height and width where\n"
            "their graph computes other sizes right (checked at a second size)."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo export runs/unet-shapes --out unet.onnx --dynamic-batch\n"
            "  cnnzoo export runs/resnet20/best.safetensors --format torchscript --out resnet20.pt\n"
            "  cnnzoo export runs/resnet20 --format openvino --out resnet20.xml --dynamic-batch\n"
            "  cnnzoo export runs/resnet20 --out resnet20-uint8.onnx --preprocess-in-graph --dynamic-size\n"
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
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--dynamic-size", dest="dynamic_size", action="store_true", default=None,
                       help="leave the height and width free (any size the model takes; checked at a second "
                            "size): the default for segmenters whose graph allows it; for classifiers that end "
                            "in global pooling")
    sizes.add_argument("--fixed-size", dest="dynamic_size", action="store_false",
                       help="fix the height and width to the input size (the default for classifiers)")
    p.add_argument("--preprocess-in-graph", action="store_true",
                   help="the graph takes uint8 images (0..255) and divides by 255 and normalizes with the run's "
                        "mean and std itself (trained runs only)")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help="ONNX exporter: legacy (dynamo=False), dynamo (torch.export), or auto: legacy, then "
                        f"dynamo where legacy fails (default: {DEFAULT_EXPORTER})")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest difference allowed, relative to max(1, largest output) "
                        f"(default: {DEFAULT_TOLERANCE})")
    add_model_kwargs_option(p)
    add_weights_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    kwargs = parse_model_kwargs(args.model_kwargs)
    size = parse_size_option(args.input_size)
    if args.opset is not None and args.format == "torchscript":
        raise ValueError("--opset applies only to --format onnx and openvino")
    result = export_model(
        args.source, args.out, format=args.format, input_size=size, opset=args.opset,
        dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size, preprocess_in_graph=args.preprocess_in_graph,
        exporter=args.exporter, model_kwargs=kwargs, tolerance=args.tolerance, weights=args.weights,
        overwrite=args.overwrite,
    )
    how = f"{result.exporter} exporter, opset {result.opset}" if result.format != "torchscript" else "traced"
    batch = "dynamic batch" if result.dynamic_batch else "batch 1"
    checker = {"onnx": "onnxruntime", "openvino": "OpenVINO", "torchscript": "the reloaded TorchScript module"}[result.format]
    files = " + ".join(str(path) for path in result.files)
    for note in result.notes:
        print(note)
    print(f"wrote {files} ({result.format}, {how}, input {input_text(result)}, {batch}, "
          f"{format_count(result.size_bytes, 'B')}) in {result.seconds:.1f} s")
    print(f"{checker} agrees with the model to {result.max_abs_diff:.2g} (tolerance {result.tolerance:.2g})")
    print(f"wrote {result.sidecar} (how to feed it: task, classes, preprocessing, sizes)")
    return 0


def input_text(result: ExportResult) -> str:
    """``1x96x96``, or ``1xHxW (H, W = 4 + 4k; checked at 96x96, 100x104)`` for a free size;
    ``uint8`` said when the graph normalizes its input itself."""
    meta = result.metadata
    channels, height, width = result.input_size
    text = f"{channels}x{height}x{width}"
    if result.dynamic_size:
        step, least = meta["size_multiple"], meta["min_size"]
        rule = f"= {least} + {step}k" if step > 1 else f">= {least}"
        checked = ", ".join(f"{h}x{w}" for h, w in result.checked_sizes)
        text = f"{channels}xHxW (H, W {rule}; checked at {checked})"
    return text + (", uint8 normalized in the graph" if result.preprocess_in_graph else "")
