"""``cnnzoo segment-classic``: segment one image with a classical (pre-deep-learning) method."""

from __future__ import annotations

import argparse
import time
from typing import Any

from cnnzoo.classical.methods import method_name, segment
from cnnzoo.classical.predicates import PREDICATES, make_predicate
from cnnzoo.cli.options import add_overwrite_option
from cnnzoo.images.read import read_array
from cnnzoo.images.write import write_label_map, write_overlay
from cnnzoo.utils.atomic import check_output_path

METHOD_CHOICES = ("region-growing", "kmeans", "split-merge")

# Which method each option belongs to (None: all), so that a misplaced option is an error
# rather than silently ignored.
_OPTION_METHODS: dict[str, tuple[str, ...] | None] = {
    "seeds": ("region_growing",),
    "threshold": None,
    "predicate": None,
    "connectivity": None,
    "k": ("kmeans",),
    "window": ("kmeans",),
    "texture": ("kmeans",),
    "use_position": ("kmeans",),
    "random_state": ("kmeans",),
    "min_block": ("split_and_merge",),
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "segment-classic",
        help="segment an image by region growing, k-means or split and merge",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Segment an image with a method from before deep learning and write the label map\n"
            "(a palette PNG whose pixel values are the region numbers) and/or an overlay.\n"
            "Thresholds are in the image's units (0-255 for 8-bit images)."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo segment-classic region-growing photo.png --threshold 20 --seed 10,12 --out regions.png\n"
            "  cnnzoo segment-classic kmeans photo.png --k 4 --texture lbp --overlay overlay.png\n"
            "  cnnzoo segment-classic split-merge photo.png --predicate max-range --threshold 30 --out regions.png"
        ),
    )
    p.add_argument("method", choices=METHOD_CHOICES, metavar="METHOD", help=", ".join(METHOD_CHOICES))
    p.add_argument("image", metavar="IMAGE", help="image file (PNG, JPEG, TIFF, ...)")
    p.add_argument("--out", metavar="MASK.png", help="write the label map here")
    p.add_argument("--overlay", metavar="OVERLAY.png", help="write the image with the regions tinted and outlined")
    add_overwrite_option(p)
    p.add_argument("--threshold", type=float, help="predicate threshold in image units "
                   "(default: 10%% of the dtype's range for region growing, 5%% for split and merge)")
    p.add_argument("--predicate", choices=tuple(PREDICATES),
                   help="similarity predicate (default: mean-distance for region growing, max-std for split and "
                        "merge; with kmeans, merges adjacent regions that satisfy it)")
    p.add_argument("--connectivity", type=int, choices=(4, 8), help="pixel neighbourhood (default 4)")
    p.add_argument("--seed", dest="seeds", action="append", type=_parse_seed, metavar="ROW,COL",
                   help="region growing: a seed pixel; repeat for several (default: automatic seeds)")
    p.add_argument("--k", type=int, help="kmeans: number of clusters (required)")
    p.add_argument("--window", type=int, help="kmeans: odd side of the local window for colour and texture (default 7)")
    p.add_argument("--texture", choices=("lbp", "oriented", "none"), help="kmeans: texture feature (default lbp)")
    p.add_argument("--use-position", action="store_true", default=None,
                   help="kmeans: add pixel position to the features")
    p.add_argument("--random-state", type=int, help="kmeans: random seed (default 0)")
    p.add_argument("--min-block", type=int, help="split-merge: smallest block side, a power of two (default 1)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    method = method_name(args.method)
    options = _method_options(args, method)
    for output in (args.out, args.overlay):
        if output:
            check_output_path(output, overwrite=args.overwrite)  # fails now, not after the work
    image = read_array(args.image)
    start = time.perf_counter()
    labels = segment(image, method, **options)
    seconds = time.perf_counter() - start
    height, width = labels.shape
    print(f"{args.method}: {int(labels.max()) + 1} regions in {seconds:.2f} s ({height}x{width} pixels)")
    if args.out:
        write_label_map(args.out, labels)
        print(f"wrote {args.out}")
    if args.overlay:
        write_overlay(args.overlay, image, labels)
        print(f"wrote {args.overlay}")
    return 0


def _method_options(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The method's keyword options from the parsed arguments; a misplaced option is a ValueError."""
    given = {name: getattr(args, name) for name in _OPTION_METHODS if getattr(args, name, None) is not None}
    for name in given:
        allowed = _OPTION_METHODS[name]
        if allowed is not None and method not in allowed:
            flag = "--seed" if name == "seeds" else "--" + name.replace("_", "-")
            owners = " and ".join(m.replace("_", "-") for m in allowed)
            raise ValueError(f"{flag} applies only to {owners}, not {method.replace('_', '-')}")
    if method == "kmeans" and "k" not in given:
        raise ValueError("kmeans needs the number of clusters: --k K")

    options = {name: value for name, value in given.items() if name not in ("threshold", "predicate")}
    if "texture" in options and options["texture"] == "none":
        options["texture"] = None
    predicate_name = given.get("predicate")
    threshold = given.get("threshold")
    if method == "region_growing" and predicate_name in (None, "mean-distance"):
        if threshold is not None:
            options["threshold"] = threshold  # region growing's own default threshold otherwise
    elif predicate_name is not None or threshold is not None:
        if predicate_name is None:
            if method == "kmeans":
                raise ValueError("with kmeans, --threshold needs --predicate (the merge criterion)")
            predicate_name = "max-std"
        if threshold is None:
            raise ValueError(f"--predicate {predicate_name} needs --threshold")
        options["predicate"] = make_predicate(predicate_name, threshold)
    return options


def _parse_seed(text: str) -> tuple[int, int]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2 or not all(part.lstrip("-").isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"malformed seed {text!r}: expected ROW,COL, e.g. 10,12")
    return int(parts[0]), int(parts[1])
