"""How long ``cnnzoo.analysis.summarize`` takes on every registered model (a benchmark,
not a test: nothing here asserts a time).

Each model is built on the meta device and summarized at its default input, ``--repeats``
times; the table gives the best and the median time per model, then the slowest model and
the total over the registry (sum of the medians). The very first summarize in a process
also pays PyTorch's one-time set-up of its meta kernels (imports of its decompositions);
it is timed apart as "cold start".

    python benchmarks/summarize_speed.py [--repeats 3] [--pattern 'resnet*'] [--task classification]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model (default 3)")
    parser.add_argument("--pattern", default="*", help="shell-style model name pattern")
    parser.add_argument("--task", default=None, help="classification, segmentation, ... (default: all)")
    args = parser.parse_args()

    names = cnnzoo.list_models(args.pattern, task=args.task)
    if not names:
        raise SystemExit(f"no registered model matches {args.pattern!r}")

    start = time.perf_counter()
    summarize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), (3, 8, 8))
    cold = time.perf_counter() - start

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} runs per model")
    print(f"cold start (first summarize in the process): {cold:.2f} s\n")
    print(f"{'model':<24} {'input':>11} {'rows':>5} {'GMACs':>8} {'build s':>8} {'best s':>7} {'median s':>9}")
    medians: dict[str, float] = {}
    for name in names:
        info = cnnzoo.model_info(name)
        t0 = time.perf_counter()
        with torch.device("meta"):
            model = cnnzoo.create_model(name)
        build = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            summary = summarize(model, info.default_input)
            times.append(time.perf_counter() - t0)
        medians[name] = statistics.median(times)
        size = "x".join(map(str, info.default_input))
        print(f"{name:<24} {size:>11} {len(summary.rows):>5} {summary.total.macs / 1e9:>8.2f} "
              f"{build:>8.3f} {min(times):>7.3f} {medians[name]:>9.3f}", flush=True)

    slowest = max(medians, key=medians.get)
    print(f"\n{len(names)} models; slowest: {slowest} {medians[slowest]:.3f} s; "
          f"total (sum of medians): {sum(medians.values()):.2f} s")


if __name__ == "__main__":
    main()
