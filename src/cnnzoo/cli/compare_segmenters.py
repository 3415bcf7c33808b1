"""``cnnzoo compare-segmenters``: classical methods and trained CNNs on the same images."""

from __future__ import annotations

import argparse

from cnnzoo.classical.evaluate import evaluation_table
from cnnzoo.cli.options import add_overwrite_option
from cnnzoo.engine.compare import compare_segmenters
from cnnzoo.utils.atomic import check_output_path, write_atomically

MATCHING_CHOICES = ("majority", "hungarian")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare-segmenters",
        help="score region growing, k-means, split and merge and trained segmenters on one data set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Segment the first N validation images of a segmentation data set with the three classical\n"
            "methods (their options tuned on a few training images by Hungarian-matched mean IoU) and\n"
            "with each trained run given, and print one Markdown table of mean IoU and pixel accuracy\n"
            "computed the same way for every row (confusion matrices summed over the images).\n"
            "Classical regions are matched to classes by majority (lenient to over-segmentation) and/or\n"
            "one-to-one Hungarian matching; a trained segmenter's classes are scored as they are."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo compare-segmenters --data shapes --images 50\n"
            "  cnnzoo train unet --data shapes -k padding=true -k base_width=8 --out runs/unet-shapes\n"
            "  cnnzoo compare-segmenters --data shapes --run runs/unet-shapes --out comparison.md"
        ),
    )
    p.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                   help="a segmentation data set: shapes, cells, fashion-scenes, aerial or a folder")
    p.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN_DIR",
                   help="a trained segmenter's run directory or checkpoint; repeat for several")
    p.add_argument("--images", type=int, default=50, help="validation images to score (default 50)")
    p.add_argument("--tune-images", type=int, default=10,
                   help="training images the classical options are tuned on (default 10)")
    p.add_argument("--matching", choices=MATCHING_CHOICES, action="append",
                   help="region-to-class matching for the classical methods; repeat for both (default both)")
    p.add_argument("--data-dir", help="where Fashion-MNIST's files are (fashion-scenes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the built-in data sets (default 0)")
    p.add_argument("--out", metavar="TABLE.md", help="also write the table here")
    add_overwrite_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_output_path(args.out, overwrite=args.overwrite)
    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    if args.tune_images < 1:
        raise ValueError(f"--tune-images must be at least 1, got {args.tune_images}")
    rows = compare_segmenters(args.data, args.runs, num_images=args.images, tune_images=args.tune_images,
                              matchings=tuple(args.matching or MATCHING_CHOICES), data_dir=args.data_dir,
                              seed=args.seed)
    table = evaluation_table(rows)
    print(table)
    if args.out:
        write_atomically(args.out, lambda stream: stream.write((table + "\n").encode()))
        print(f"wrote {args.out}")
    return 0
