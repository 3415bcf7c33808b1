"""Benchmark: the deploy path against eager PyTorch and plain onnxruntime, and what int8 costs.

Speed (``cnnzoo.engine.benchmark``: every runner and eager PyTorch in one process, alternating
rounds, medians) for ResNet-50 and MobileNet v1 at 224 x 224, batch 1 and 8, fp32 and int8
(int8 calibrated on random inputs: speed only). Then, for trained run directories given with
``--runs``, the accuracy int8 costs on their validation split (``compile_model``). The
targets of issue 10 are checked and printed; nothing is asserted.

    python benchmarks/deploy_speed.py
    python benchmarks/deploy_speed.py --runs runs/bench-resnet20-fashion-* runs/demo/*/unet-shapes
"""

from __future__ import annotations

import argparse

import torch

from cnnzoo.engine.benchmark import EAGER, benchmark
from cnnzoo.engine.compile import compile_model
from cnnzoo.utils.cpu import cpu_name, has_native_bf16, has_native_int8

# Issue 10's targets: fp32 runner over eager (batch 8), int8 over the best fp32 runner (batch 8),
# batch-1 latency of ResNet-50 over eager.
FP32_TARGET = {"resnet50": 1.35, "mobilenet_v1": 1.8}
INT8_TARGET = {"resnet50": 1.5, "mobilenet_v1": 1.3}
LATENCY_TARGET = 1.5


def best(rows, batch: int, precision: str):
    mine = [row for row in rows if row.batch == batch and row.runner.endswith(precision)]
    return max(mine, key=lambda row: row.images_per_second)


def speed(model: str, rounds: int) -> None:
    size, rows = benchmark(model, ["all"], [1, 8], int8=True, rounds=rounds)
    print(f"\n{model} at {'x'.join(map(str, size))} ({rounds} alternating rounds, medians)")
    for row in rows:
        print(f"  {row.runner:<18} batch {row.batch:>2}  {row.images_per_second:8.1f} img/s  p50 {row.p50_ms:7.1f} ms  "
              f"p90 {row.p90_ms:7.1f} ms  {row.speedup:5.2f}x eager")
    fp32, int8 = best(rows, 8, "fp32"), best(rows, 8, "int8")
    ort = next(row for row in rows if row.batch == 8 and row.runner == "onnxruntime fp32")
    print(f"  fp32 batch 8: best {fp32.runner} {fp32.speedup:.2f}x eager (target {FP32_TARGET[model]}x), "
          f"{fp32.images_per_second / ort.images_per_second:.2f}x onnxruntime")
    print(f"  int8 batch 8: best {int8.runner} {int8.images_per_second / fp32.images_per_second:.2f}x the best fp32 "
          f"(target {INT8_TARGET[model]}x), {int8.speedup:.2f}x eager")
    if model == "resnet50":
        eager = next(row for row in rows if row.batch == 1 and row.runner == EAGER)
        fastest = max((row for row in rows if row.batch == 1), key=lambda row: row.images_per_second)
        print(f"  batch 1 latency: eager {eager.p50_ms:.1f} ms, {fastest.runner} {fastest.p50_ms:.1f} ms "
              f"({eager.p50_ms / fastest.p50_ms:.2f}x; target {LATENCY_TARGET}x)")


def accuracy(run: str) -> None:
    runner = compile_model(run, "auto", "int8", max_drop=0.99, log=None)
    print(f"\n{run}: " + "; ".join(runner.report.notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v1")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", nargs="*", default=[], help="trained run directories to measure int8 accuracy on")
    args = parser.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; native bf16 {has_native_bf16()}, "
          f"native int8 {has_native_int8()}; torch {torch.__version__}")
    for model in args.models.split(","):
        speed(model, args.rounds)
    for run in args.runs:
        accuracy(run)


if __name__ == "__main__":
    main()
