"""``cnnzoo results``: the reference results cnnzoo trained itself on Fashion-MNIST."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fnmatch
import json
import sys

from cnnzoo.engine.reference_results import RESULTS_FILE, load_reference_results, results_table
from cnnzoo.utils.text import format_table

EPILOG = """\
examples:
  cnnzoo results
  cnnzoo results 'resnet*' --format markdown
  cnnzoo train --config configs/fashion-mnist/resnet20.yaml     (reproduces a row)

Test top-1 is the last epoch's accuracy on the 10,000 test images: the mean over the seeds
run, with the standard deviation when there are several. "published (family)" is the best
Fashion-MNIST result submitted for a network of the same family (the data set's README
benchmark table), for comparison. See docs/results.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "results", help="the Fashion-MNIST results cnnzoo's recipes reach (accuracy, params, MACs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every recipe of configs/fashion-mnist/ as trained by cnnzoo on the real Fashion-MNIST: "
                    "test accuracy beside parameters, multiply-adds, training time and the command that "
                    "reproduces it, and the best published result of the family.",
        epilog=EPILOG,
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern of model names (default: all)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    rows = [row for row in load_reference_results() if fnmatch.fnmatchcase(row.model, args.pattern)]
    if not rows:
        models = sorted({row.model for row in load_reference_results()})
        raise ValueError(f"no reference result for a model matching {args.pattern!r}; there are: {', '.join(models)}")
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0
    header, body = results_table(rows)
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[cell.strip("`") for cell in line] for line in body])
        return 0
    if args.format == "table":
        body = [[cell.strip("`") for cell in line] for line in body]
    print(format_table(header, body, align_right={1, 2, 3, 4, 5, 6}, markdown=args.format == "markdown",
                       pad=args.format == "table"))
    if args.format == "table":
        print(f"\nfrom {RESULTS_FILE.name} (shipped with cnnzoo); see docs/results.md for the hardware and recipes")
    return 0
