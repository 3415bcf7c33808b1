"""``cnnzoo predict``: classes of images, or their masks, from a trained run."""

from __future__ import annotations

import argparse

from cnnzoo.cli.options import (
    add_device_option,
    add_overwrite_option,
    add_runtime_options,
    add_threads_option,
    add_weights_option,
    add_which_option,
    apply_threads,
    max_drop_fraction,
)
from cnnzoo.data.spec import DENSE_TASKS
from cnnzoo.engine.predict import PREDICTION_FORMATS, PredictResult, predict
from cnnzoo.engine.tiling import WHOLE_IMAGE_MAX_PIXELS
from cnnzoo.utils.text import format_table

MAX_ROWS_SHOWN = 20  # more predictions than this are in the file, not on the screen


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    side = int(WHOLE_IMAGE_MAX_PIXELS ** 0.5)
    p = subparsers.add_parser(
        "predict",
        help="classify images, or segment them into PNG masks, with a trained run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Predict images (files, or folders searched recursively) with a trained run.\n"
            "Classifiers: the top-k classes and their probabilities per image, printed and,\n"
            "with --out, written to OUT/predictions.json (or .csv).\n"
            "Segmenters: OUT/NAME_mask.png per image (a palette PNG whose pixel values are the\n"
            "class indices) and, with --overlay, OUT/NAME_overlay.png (the image tinted with the\n"
            f"class colours). Images larger than {side}x{side} pixels, or all with --tile-size,\n"
            "are predicted tile by tile (overlap-tile, mirrored borders), in bounded memory.\n"
            "Images are prepared as in training: the run's channels, size (classifiers: resized,\n"
            "or for a run with a resize size, e.g. ImageNet-pretrained, shorter side resized and\n"
            "the centre cropped) and normalization."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo predict runs/resnet20-fashion photos/ --top-k 3 --out results --format csv\n"
            "  cnnzoo predict runs/unet-shapes scan.png --out masks --overlay\n"
            "  cnnzoo predict runs/unet-shapes/best.safetensors big_scan.tif --tile-size 256 --out masks\n"
            "  cnnzoo predict runs/resnet20-fashion photos/ --runtime auto --int8   (fastest runtime, int8)\n"
            "  cnnzoo predict resnet50 --weights IMAGENET1K_V2 photo.jpg           (ImageNet-1k classes, pretrained)"
        ),
    )
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT|MODEL", help="a run directory (its best checkpoint), a "
                   ".safetensors checkpoint, or a registered model with --weights")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", metavar="DIR", help="output folder (segmenters: default ./predictions; classifiers: "
                   "nothing written without it)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="classifiers: classes per image (default 5)")
    p.add_argument("--format", choices=PREDICTION_FORMATS, help="classifiers: file format (default json)")
    p.add_argument("--tile-size", type=int, metavar="T", help="segmenters: predict in tiles of TxT input pixels")
    p.add_argument("--overlay", action="store_true", help="segmenters: also write the image tinted with the classes")
    p.add_argument("--keep-aspect", action="store_true",
                   help="classifiers: resize each image to cover the run's input size, keeping its aspect "
                        "ratio, and crop the centre (instead of resizing it to the input size); runs with a "
                        "resize size, as ImageNet-pretrained ones, always do so")
    add_which_option(p)
    add_weights_option(p)
    add_device_option(p)
    add_runtime_options(p)
    add_threads_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    result = predict(
        args.source, args.inputs, out=args.out, top_k=args.top_k, format=args.format, tile_size=args.tile_size,
        overlay=args.overlay, which=args.which, device=args.device, runtime=args.runtime, precision=args.precision,
        max_drop=max_drop_fraction(args.max_drop), keep_aspect=args.keep_aspect, weights=args.weights,
        overwrite=args.overwrite,
    )
    for note in result.notes:
        print(note)
    print(result_table(result))
    for path in result.files if result.task == "classification" else []:
        print(f"wrote {path}")
    if result.task in DENSE_TASKS:
        count = len(result.files)
        print(f"wrote {count} file{'s' * (count != 1)} under {args.out or 'predictions'}")
    return 0


def _shares(fractions: dict[str, float]) -> str:
    """``"background 83%, circle 9%"``: the classes, most pixels first."""
    return ", ".join(f"{name} {share:.0%}" for name, share in sorted(fractions.items(), key=lambda kv: -kv[1]))


def result_table(result: PredictResult) -> str:
    """The predictions as a plain-text table (the first :data:`MAX_ROWS_SHOWN` images)."""
    shown = result.predictions[:MAX_ROWS_SHOWN]
    if result.task == "classification":
        k = max(len(p.classes) for p in shown)
        header = ["image", *[f"top-{rank}" for rank in range(1, k + 1)]]
        rows = [[str(p.image), *[f"{c} {q:.3f}" for c, q in zip(p.classes, p.probabilities)]] for p in shown]
    elif result.task == "reconstruction":
        header = ["image", "size", "PSNR (dB)", "reconstruction"]
        rows = [[str(p.image), f"{p.size[0]}x{p.size[1]}", f"{p.psnr:.2f}", str(p.reconstruction)] for p in shown]
    else:
        header = ["image", "size", "how", "classes (share of pixels)", "mask"]
        rows = [
            [str(p.image), f"{p.size[0]}x{p.size[1]}", "tiles" if p.tiled else "whole",
             _shares(p.class_fractions),
             str(p.mask)]
            for p in shown
        ]
    table = format_table(header, rows)
    hidden = len(result.predictions) - len(shown)
    return table + (f"\n... and {hidden} more" if hidden else "")

