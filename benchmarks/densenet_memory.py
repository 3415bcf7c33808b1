"""Memory saved by DenseNet's gradient checkpointing (``memory_efficient=True``).

Without checkpointing every dense layer keeps its concatenated input and the BN-ReLU output
of it for the backward pass: ``c_in`` channels per layer, so a block of L layers keeps
O(L^2) maps. With checkpointing those are recomputed during backward and only the layers'
k-channel outputs are kept (O(L)). Two measurements, plain against checkpointed:

* activation bytes saved for backward: every tensor autograd stores, counted once per
  storage, parameters excluded (exact and the same on any device);
* peak memory of one forward + backward: ``torch.cuda.max_memory_allocated`` on a GPU, or
  on the CPU the growth of the process's peak resident set (each mode in a fresh process,
  with glibc told to map every tensor separately so the resident set follows live memory).

Only ratios are reported; nothing here is a test. Usage::

    python benchmarks/densenet_memory.py [--model densenet121] [--batch 8] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

import cnnzoo
from cnnzoo.utils.memory import proc_status_bytes, reset_peak_rss


def build(model_name: str, memory_efficient: bool, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return cnnzoo.create_model(model_name, memory_efficient=memory_efficient).to(device).train()


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x).sum().backward()
    return sum(storages.values())


def peak_bytes(model_name: str, memory_efficient: bool, batch: int, size: int) -> int:
    """Peak memory added by one forward + backward (run in the current process)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(model_name, memory_efficient, device)
    x = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        model(x).sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    reset_peak_rss()
    before = proc_status_bytes("VmRSS")
    model(x).sum().backward()
    return proc_status_bytes("VmHWM") - before


def peak_in_fresh_process(model_name: str, memory_efficient: bool, batch: int, size: int) -> int:
    # A fresh process per mode, so that neither inherits the other's freed memory.
    args = [sys.executable, __file__, "--child", "--model", model_name, "--batch", str(batch), "--size", str(size)]
    if memory_efficient:
        args.append("--memory-efficient")
    # glibc keeps freed heap chunks (and raises its mmap threshold up to 32 MiB), so the RSS
    # would track the allocator's high-water mark rather than live tensors. A fixed 64 KiB
    # threshold gives every tensor its own mapping, returned to the OS when it is freed.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout)["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--memory-efficient", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"peak": peak_bytes(args.model, args.memory_efficient, args.batch, args.size)}))
        return

    x = torch.randn(args.batch, 3, args.size, args.size)
    saved = {me: saved_activation_bytes(build(args.model, me, torch.device("cpu")), x) for me in (False, True)}
    peak = {me: peak_in_fresh_process(args.model, me, args.batch, args.size) for me in (False, True)}
    where = "cuda max_memory_allocated" if torch.cuda.is_available() else "CPU peak RSS growth"
    mib = 2.0**20
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, one forward + backward")
    print(f"  activations saved for backward: plain {saved[False] / mib:8.1f} MiB, "
          f"checkpointed {saved[True] / mib:8.1f} MiB, ratio {saved[True] / saved[False]:.3f}")
    print(f"  peak memory ({where}): plain {peak[False] / mib:8.1f} MiB, "
          f"checkpointed {peak[True] / mib:8.1f} MiB, ratio {peak[True] / peak[False]:.3f}")


if __name__ == "__main__":
    main()
