"""Benchmark: training throughput on the CPU, and what fraction of the machine's matrix-multiply
rate it reaches, for ResNet-20 on 1 x 28 x 28 (Fashion-MNIST) and the U-Net of `make demo`.

For each thread count (1 and all cores by default) and each setting (float32 / bf16, each
with and without channels-last) it times the trainer's own training step
(`cnnzoo.engine.speed.training_step`: normalization, forward under autocast, loss,
backward, the optimizer step of the recipe; no augmentation, no data loading) and a large
matrix product (`torch.mm`, 2048 x 2048, in float32 and in bf16). The settings are run in
turn, round after round, and each number is the median over the rounds, so a burst of
load on a shared machine touches every setting alike.

FLOPs per training image = 3 x forward FLOPs (the backward pass costs about twice the
forward: one product for the input gradient, one for the weight gradient) = 3 x 2 x the
forward multiply-adds of `cnnzoo.analysis.count_macs`. The GEMM fraction is the training
FLOP rate over the matrix-multiply rate of the same precision and thread count.

    python benchmarks/train_throughput.py                  # both models, 1 and all threads, 5 rounds
    python benchmarks/train_throughput.py --rounds 3 --threads 2 --models resnet20
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import torch

from cnnzoo.analysis import count_macs
from cnnzoo.cli.demo import UNET_BATCH_SIZE, UNET_IMAGE_SIZE, UNET_OPTIONS
from cnnzoo.engine.speed import seconds_per_step, training_step_timer
from cnnzoo.registry import create_model
from cnnzoo.utils.cpu import cpu_name, has_native_bf16

SETTINGS = (("none", False), ("none", True), ("bf16", False), ("bf16", True))  # (amp, channels_last)
GEMM_SIZE = 2048


@dataclass(frozen=True)
class Workload:
    """A model and a batch, trained as its recipe says."""

    label: str
    model: str
    options: dict
    input_size: tuple[int, int, int]
    num_classes: int
    batch_size: int
    task: str
    optimizer: str

    def training_flops(self) -> int:
        """FLOPs of one training image: 3 x 2 x the forward multiply-adds."""
        model = create_model(self.model, num_classes=self.num_classes, in_chans=self.input_size[0], **self.options)
        return 6 * count_macs(model, self.input_size)


WORKLOADS = {
    "resnet20": Workload("ResNet-20, 1x28x28, batch 128", "resnet20", {}, (1, 28, 28), 10, 128,
                         "classification", "sgd"),
    "unet": Workload(f"demo U-Net, 3x{UNET_IMAGE_SIZE}x{UNET_IMAGE_SIZE}, batch {UNET_BATCH_SIZE}", "unet",
                     UNET_OPTIONS, (3, UNET_IMAGE_SIZE, UNET_IMAGE_SIZE), 5, UNET_BATCH_SIZE, "segmentation", "adamw"),
}


def gemm_seconds(amp: str, size: int = GEMM_SIZE) -> float:
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    return seconds_per_step(lambda: torch.mm(a, b), steps=3)


def step_timer(work: Workload, amp: str, channels_last: bool):
    """A function timing one training step of ``work`` in this setting (seconds)."""
    return training_step_timer(work.model, work.num_classes, work.input_size, work.batch_size, work.task,
                               model_kwargs=work.options, optimizer=work.optimizer, amp=amp,
                               channels_last=channels_last)


def measure(works: list[Workload], threads: list[int], rounds: int) -> dict:
    """Median seconds per key over ``rounds`` rounds of every measurement in turn."""
    timers = {("step", w.label, amp, cl): step_timer(w, amp, cl) for w in works for amp, cl in SETTINGS}
    timers.update({("gemm", amp): (lambda amp=amp: gemm_seconds(amp)) for amp in ("none", "bf16")})
    samples: dict = {}
    for round_ in range(rounds):
        for count in threads:
            torch.set_num_threads(count)
            for key, timer in timers.items():
                samples.setdefault((count, *key), []).append(timer())
        print(f"round {round_ + 1}/{rounds} done", flush=True)
    return {key: statistics.median(values) for key, values in samples.items()}


def report(works: list[Workload], threads: list[int], medians: dict) -> None:
    gemm_flops = 2 * GEMM_SIZE**3
    for count in threads:
        rates = {amp: gemm_flops / medians[(count, "gemm", amp)] / 1e9 for amp in ("none", "bf16")}
        print(f"\n{count} thread(s): GEMM {rates['none']:.0f} GFLOP/s float32, {rates['bf16']:.0f} GFLOP/s bf16")
        print(f"{'workload':<34} {'setting':<18} {'img/s':>7} {'GFLOP/s':>8} {'of GEMM':>8}")
        for work in works:
            flops = work.training_flops()
            for amp, cl in SETTINGS:
                per_second = work.batch_size / medians[(count, "step", work.label, amp, cl)]
                achieved = per_second * flops / 1e9
                setting = ("bf16" if amp == "bf16" else "float32") + (" channels-last" if cl else "")
                print(f"{work.label:<34} {setting:<18} {per_second:>7.0f} {achieved:>8.1f} "
                      f"{achieved / rates[amp]:>8.0%}")
            print(f"{'':<34} ({flops / 1e6:.0f} MFLOP per training image)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,unet", help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--threads", help="comma-separated thread counts (default: 1 and all cores)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every measurement (default 5)")
    args = parser.parse_args()
    works = [WORKLOADS[name] for name in args.models.split(",")]
    threads = [int(n) for n in args.threads.split(",")] if args.threads else sorted({1, os.cpu_count() or 1})
    print(f"{cpu_name()} x{os.cpu_count()}, native bf16: {has_native_bf16()}, torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    began = time.perf_counter()
    medians = measure(works, threads, args.rounds)
    report(works, threads, medians)
    print(f"\n{time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
