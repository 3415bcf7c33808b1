"""Speed of the classical segmenters on a 512x512 RGB synthetic image (a benchmark, not a test).

The issue's budget, on the project's 2-core machine: k-means and split-and-merge under 1 s,
region growing under 2 s. Run from the repository root:

    .venv/bin/python benchmarks/classical_speed.py [--size 512] [--repeats 5] [--noise 6] [--impulse 0.05]

Each method runs once to warm up (imports, caches), then ``--repeats`` times; the median and
the fastest wall-clock times are printed with the number of regions found. Timings on a
machine shared with other work vary; the median of several runs is the number to quote.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from cnnzoo.classical import segment


def synthetic_image(size: int, noise: float, seed: int = 0, impulse: float = 0.0) -> np.ndarray:
    """Five flat shapes (disk, two rectangles, triangle, background) plus Gaussian noise, uint8 RGB;
    ``impulse``: the fraction of pixels replaced by random colours (salt-and-pepper noise)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size] / size
    image = np.empty((size, size, 3))
    image[:] = (40, 60, 90)
    image[(rows - 0.3) ** 2 + (cols - 0.3) ** 2 < 0.18**2] = (200, 60, 50)
    image[(rows > 0.55) & (rows < 0.9) & (cols > 0.15) & (cols < 0.5)] = (60, 180, 70)
    image[(rows > 0.5) & (rows < 0.95) & (cols > 0.55) & (cols - 0.55 < (rows - 0.5) * 0.9)] = (230, 220, 60)
    image[(rows > 0.08) & (rows < 0.35) & (cols > 0.6) & (cols < 0.9)] = (150, 150, 150)
    image += rng.normal(0.0, noise, image.shape)
    hit = rng.random((size, size)) < impulse
    image[hit] = rng.integers(0, 256, size=(int(hit.sum()), 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


METHODS = {
    "region growing": ("region_growing", {}),
    "k-means (k=5)": ("kmeans", {"k": 5}),
    "split and merge": ("split_and_merge", {}),
}
BUDGET_S = {"region growing": 2.0, "k-means (k=5)": 1.0, "split and merge": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--noise", type=float, default=6.0, help="Gaussian noise sigma, in 0-255 units")
    parser.add_argument("--impulse", type=float, default=0.0,
                        help="fraction of pixels replaced by random colours (salt-and-pepper noise)")
    args = parser.parse_args()

    image = synthetic_image(args.size, args.noise, impulse=args.impulse)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.size}x{args.size} RGB uint8, noise sigma {args.noise}, impulse noise {args.impulse:.0%}, "
          f"{os.cpu_count()} CPUs, "
          f"load average {load:.1f}, {args.repeats} repeats")
    print(f"{'method':<18}{'median s':>10}{'fastest s':>11}{'budget s':>10}{'regions':>9}")
    for label, (method, options) in METHODS.items():
        labels = segment(image, method, **options)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            labels = segment(image, method, **options)
            times.append(time.perf_counter() - start)
        print(f"{label:<18}{statistics.median(times):>10.3f}{min(times):>11.3f}{BUDGET_S[label]:>10.1f}"
              f"{int(labels.max()) + 1:>9}")


if __name__ == "__main__":
    main()
