"""Speed of the data package (a benchmark, not a test).

The issue's budgets, on the project's 2-core machine: all 70,000 Fashion-MNIST images read
from their IDX files well under 2 s; thousands of drawn samples in seconds. Also timed: a
folder of PNG files built into a DataSpec, and one augmentation of a training batch. Run
from the repository root:

    .venv/bin/python benchmarks/data_speed.py [--repeats 3] [--count 2000] [--threads N] [--skip-fashion]

Each measurement is repeated (caches cleared in between) and the median and fastest
wall-clock times are printed; on a machine shared with other work, quote the median of
several runs together with the load average printed at the top. On a busy machine torch's
small operations can be many times slower with two intra-op threads than with one (the
threads wait on each other): ``--threads 1`` shows the difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnzoo.data import build_augment, build_data, load_fashion_mnist, synthetic
from cnnzoo.data.fashion_mnist import find_fashion_mnist


def timed(work: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None) -> list[float]:
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def report(label: str, times: list[float], extra: str = "") -> None:
    print(f"{label:<44} median {statistics.median(times):7.3f} s   fastest {min(times):7.3f} s   {extra}")


def fashion_mnist(repeats: int) -> None:
    try:
        folder = find_fashion_mnist("train")[0].parent
    except FileNotFoundError as error:
        print(f"Fashion-MNIST skipped: {str(error).splitlines()[0]}")
        return

    def both_splits():
        return load_fashion_mnist("train"), load_fashion_mnist("test")

    report("Fashion-MNIST, 70,000 images (train + t10k)", timed(both_splits, repeats), f"from {folder}")


def drawn_sets(count: int, repeats: int, fashion: bool) -> None:
    for name in ("shapes", "cells") + (("fashion-scenes",) if fashion else ()):
        make = getattr(synthetic, f"make_{name.replace('-', '_')}")
        times = timed(lambda: make(count), repeats, before=synthetic._cached.cache_clear)
        per_second = count / statistics.median(times)
        report(f"{name}, {count} samples 64x64", times, f"{per_second:,.0f} samples/s")


def folder_set(repeats: int) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        for index in range(500):
            folder = Path(root) / f"class{index % 5}"
            folder.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{index}.png")
        report("folder of 500 PNGs (64x64 RGB) -> DataSpec", timed(lambda: build_data(root), repeats))


def augmentation(repeats: int) -> None:
    batch = {"image": torch.rand(32, 3, 64, 64), "target": torch.randint(0, 5, (32, 64, 64)),
             "weight": torch.rand(32, 64, 64)}
    for level in ("light", "default", "strong"):
        augment = build_augment("segmentation", (64, 64), level)
        augment(batch)  # warm up
        report(f"augment segmentation {level}, 32x3x64x64", timed(lambda: augment(batch), repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=2000, help="samples drawn per built-in set")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--skip-fashion", action="store_true", help="skip what needs the Fashion-MNIST files")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f}, torch threads {torch.get_num_threads()}")
    if not args.skip_fashion:
        fashion_mnist(args.repeats)
    drawn_sets(args.count, args.repeats, fashion=not args.skip_fashion)
    folder_set(args.repeats)
    augmentation(args.repeats)


if __name__ == "__main__":
    main()
