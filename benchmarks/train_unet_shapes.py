"""Benchmark: a small padded U-Net (Ronneberger et al. 2015, with "same" convolutions and batch
norm) trained on the built-in `shapes` set on the CPU, with a wall-clock budget (10 minutes
by default). Target: validation mean IoU >= 0.90 (5 classes: background, circle, square,
triangle, cross). A benchmark, not a test: it prints what it measured and asserts nothing.

Recipe (cnnzoo train's own engine):

- U-Net, depth 4, base width 8 (8-16-32-64 channels, 128 at the bridge; 0.49 M parameters,
  48 M multiply-adds per 64x64 image), padded convolutions so the output is the input's
  size, batch norm after every convolution;
- AdamW, lr 3e-3, weight decay 1e-4, batch 16, a short linear warm-up then cosine decay;
- loss cross-entropy + soft Dice (the Dice term pulls on the small classes' overlap, which
  is what mean IoU scores); bf16 autocast where the CPU has bf16 instructions (float32
  elsewhere); flips as augmentation (the set is drawn, so more data is free: 4,000
  training images by default, 3,000 in `make demo`, which uses this recipe).

The number of epochs is chosen to fit the budget from a calibration of a few training
steps, as in train_resnet20_fashion.py; everything counts against the budget.

    python benchmarks/train_unet_shapes.py                  # the full benchmark
    python benchmarks/train_unet_shapes.py --budget-min 0.5 --train-size 200 --val-size 50   # a trial
"""

from __future__ import annotations

import argparse
import time

START = time.perf_counter()

import torch  # noqa: E402

from cnnzoo.engine.config import resolve_config  # noqa: E402
from cnnzoo.engine.speed import default_amp, fastest_thread_count, training_step_timer  # noqa: E402
from cnnzoo.engine.trainer import train  # noqa: E402

TARGET = 0.90
SIZE = 64
MODEL_OPTIONS = {"depth": 4, "base_width": 8, "padding": True, "batch_norm": True}


def seconds_per_image(batch_size: int, amp: str) -> float:
    """Median training time per image of the U-Net on 3 x 64 x 64 batches (cnnzoo.engine.speed)."""
    timer = training_step_timer("unet", 5, (3, SIZE, SIZE), batch_size, "segmentation", model_kwargs=MODEL_OPTIONS,
                                optimizer="adamw", loss="ce+dice", amp=amp, channels_last=True, augment="light")
    return timer() / batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-clock budget in minutes (default 10)")
    parser.add_argument("--epochs", type=int, help="fix the number of epochs (default: as many as fit)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--amp", choices=("none", "bf16"), default=default_amp(torch.device("cpu")),
                        help="default: bf16 where the CPU has bf16 instructions, else none")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=400)
    parser.add_argument("--out", help="run directory (default: runs/bench-unet-shapes-TIMESTAMP)")
    args = parser.parse_args()
    budget = args.budget_min * 60

    threads, timings = fastest_thread_count(lambda: seconds_per_image(args.batch_size, args.amp))
    per_image = timings[threads]
    epoch_estimate = 1.1 * per_image * (args.train_size + args.val_size / 3)
    left = budget - (time.perf_counter() - START) - 15  # drawing the set, the final plots
    epochs = args.epochs or max(1, min(100, int(left // epoch_estimate)))
    print(f"torch {torch.__version__}; calibration: {', '.join(f'{n} thread(s) {1 / t:.0f}' for n, t in timings.items())} "
          f"training images/s -> {threads} thread(s) ({args.amp}, batch {args.batch_size}); epoch estimate "
          f"{epoch_estimate:.0f} s -> {epochs} epochs in a {args.budget_min:g}-minute budget", flush=True)

    out = args.out or f"runs/bench-unet-shapes-{time.strftime('%Y%m%d-%H%M%S')}"
    config = resolve_config({}, {
        "model": "unet", "data": "shapes", "out": out, "image_size": SIZE, "train_size": args.train_size,
        "val_size": args.val_size, "model_kwargs": MODEL_OPTIONS, "epochs": epochs, "batch_size": args.batch_size,
        "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "warmup_epochs": min(0.3, epochs / 10),
        "loss": "ce+dice", "amp": args.amp, "augment": "light", "progress": "log",
        "time_limit": max(1.0, budget - (time.perf_counter() - START) - 10),
    })
    result = train(config)
    used = time.perf_counter() - START
    final = result.history[-1]
    print(f"\nbudget {budget / 60:.1f} min, used {used / 60:.1f} min ({100 * used / budget:.0f} %), "
          f"{len(result.history)} of {epochs} epochs")
    print(f"final mean IoU (last epoch) {final['miou']:.4f} (pixel accuracy {final['pixel_acc']:.4f}); "
          f"best epoch {result.best['epoch']}: {result.best['miou']:.4f}; target {TARGET} -> "
          f"{'PASS' if final['miou'] >= TARGET and used <= budget else 'FAIL'}")
    print(f"run directory: {result.run_dir}")


if __name__ == "__main__":
    main()
