"""Peak memory of overlap-tile prediction against whole-image prediction.

A small U-Net (the paper's layout: depth 4, unpadded convolutions, ``base_width`` 8 instead of
64) predicts one ``1 x S x S`` image three ways:

* ``whole``: the model once on the whole image (``auto_pad=True``: mirrored to the next
  size it takes, the paper's Fig. 2 for one tile), returning ``2 x S x S`` logits;
* ``tiled``: :func:`cnnzoo.engine.tiling.predict_tiled` with the paper's 572-pixel tiles
  (388-pixel outputs), returning the same logits;
* ``labels``: the same with ``return_labels=True`` (``S x S`` uint8, no full logits held).

Memory is the peak added by the prediction: ``torch.cuda.max_memory_allocated`` on a GPU, or
on the CPU the growth of the process's peak resident set (each measurement in a fresh
process, glibc told to map every tensor separately so the resident set follows live
memory; the input image and the model are allocated before the peak is reset). Only
measurements and ratios are printed; nothing here is a test. Usage::

    python benchmarks/tiled_memory.py [--sizes 1024 2048 4096] [--whole-up-to 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

import cnnzoo
from cnnzoo.utils.memory import proc_status_bytes, reset_peak_rss
from cnnzoo.engine.tiling import predict_tiled

TILE = 572  # the paper's input tile (output 388)
BASE_WIDTH = 8
MIB = 2.0**20


def build(auto_pad: bool, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights for both variants
    model = cnnzoo.create_model("unet", num_classes=2, in_chans=1, base_width=BASE_WIDTH, auto_pad=auto_pad)
    return model.to(device).eval()


@torch.no_grad()
def measure(mode: str, size: int) -> dict:
    """Peak bytes added by one prediction in this process, and its time."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(auto_pad=mode == "whole", device=device)
    image = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    if mode == "whole":
        image = image.to(device)  # the whole image goes where the model is
    predict = {
        "whole": lambda: model(image),
        "tiled": lambda: predict_tiled(model, image, TILE, batch_size=1),
        "labels": lambda: predict_tiled(model, image, TILE, batch_size=1, return_labels=True),
    }[mode]
    predict_tiled(model, image[..., :200, :200].cpu(), TILE, batch_size=1)  # warm-up (kernels, allocator)
    start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = predict()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        reset_peak_rss()
        before = proc_status_bytes("VmRSS")
        result = predict()
        peak = proc_status_bytes("VmHWM") - before
    seconds = time.perf_counter() - start
    output = result.numel() * result.element_size()
    return {"peak": peak, "output": output, "seconds": seconds}


def in_fresh_process(mode: str, size: int) -> dict:
    args = [sys.executable, __file__, "--child", mode, "--sizes", str(size)]
    # glibc keeps freed heap chunks (and raises its mmap threshold up to 32 MiB), so the RSS
    # would track the allocator's high-water mark rather than live tensors. A fixed 64 KiB
    # threshold gives every tensor its own mapping, returned to the OS when it is freed.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--whole-up-to", type=int, default=2048, help="largest size also predicted whole")
    parser.add_argument("--child", choices=["whole", "tiled", "labels"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.sizes[0])))
        return

    where = "cuda max_memory_allocated" if torch.cuda.is_available() else "CPU peak RSS growth"
    print(f"U-Net depth 4, unpadded, base_width {BASE_WIDTH}; {TILE}-pixel tiles; peak memory ({where})")
    print(f"{'image':>10} {'mode':>7} {'peak MiB':>9} {'output MiB':>10} {'peak-output':>11} {'seconds':>8} "
          f"{'peak / whole':>12}")
    for size in args.sizes:
        results = {}
        for mode in ("whole", "tiled", "labels"):
            if mode == "whole" and size > args.whole_up_to:
                continue
            results[mode] = in_fresh_process(mode, size)
        for mode, r in results.items():
            ratio = f"{r['peak'] / results['whole']['peak']:.3f}" if "whole" in results else "-"
            print(f"{size:>5}x{size:<4} {mode:>7} {r['peak'] / MIB:9.1f} {r['output'] / MIB:10.1f} "
                  f"{(r['peak'] - r['output']) / MIB:11.1f} {r['seconds']:8.1f} {ratio:>12}")


if __name__ == "__main__":
    main()
