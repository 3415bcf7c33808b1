"""Data-parallel training under ``torchrun``: one process per device, same command.

``torchrun --nproc_per_node N -m cnnzoo.cli.main train ...`` (or ``--nnodes`` with its
rendezvous flags for several machines) starts N processes and tells each its ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in the environment; :func:`init_distributed` reads them
and joins the process group (gloo on CPU, NCCL on GPU). Without them it is a plain
single-process run and every helper here is a no-op.

Each process sees its own shard of the training set (:func:`train_sampler`) and of the
validation set (:class:`ShardSampler`, without the padding DistributedSampler adds, so the
synchronized metrics count every validation sample exactly once); gradients are averaged by
DDP; only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

__all__ = [
    "DistributedContext",
    "ShardSampler",
    "all_reduce_sum",
    "any_process",
    "barrier",
    "broadcast_object",
    "check_device_name",
    "init_distributed",
    "resolve_device",
    "shutdown",
    "sync_buffers",
    "train_sampler",
    "wrap_model",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this run joined the process group (and leaves it at the end)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0


def check_device_name(name: str) -> str:
    """``name`` when it is a device cnnzoo runs on here (auto, cpu, cuda or cuda:N), else a
    ValueError saying what to write instead (one line, for the CLI)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"no CUDA device here ({name} asked for): use --device cpu")
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise ValueError(f"device {name} does not exist: this machine has {count} GPU(s)")
    return name


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when a GPU is there, else ``cpu``; ``"cuda"`` under
    torchrun -> this process's own GPU. A name that is none of auto, cpu, cuda, cuda:N, or a
    GPU this machine lacks, is a ValueError (:func:`check_device_name`)."""
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (gloo on CPU, NCCL on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    owns_group = False
    if world_size > 1:
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
            owns_group = True
    return DistributedContext(rank, world_size, local_rank, resolved, owns_group)


def shutdown(ctx: DistributedContext) -> None:
    """Leave the process group (if this run joined it)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """DDP around ``model`` (already on ``ctx.device``) when distributed, else ``model``."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def train_sampler(dataset: Any, ctx: DistributedContext, seed: int) -> DistributedSampler:
    """This process's shuffled share of ``dataset``; call ``set_epoch(e)`` each epoch.

    The order of epoch ``e`` is a permutation drawn from a generator seeded with
    ``seed + e`` (the same on every process), so a resumed run sees the same order.
    Used with one process too (then it is the whole set, shuffled).
    """
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``length`` samples: a split of the
    validation set without padding or repeats."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def sync_buffers(model: nn.Module, ctx: DistributedContext) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics): each process
    updated its own with its own batches, and evaluation must use the saved ones."""
    if not ctx.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def all_reduce_sum(values: list[float], ctx: DistributedContext) -> list[float]:
    """Element-wise sums of ``values`` over all processes (float64)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_process(flag: bool, ctx: DistributedContext) -> bool:
    """True when ``flag`` is true on at least one process (so that all stop together)."""
    if not ctx.enabled:
        return flag
    return all_reduce_sum([float(flag)], ctx)[0] > 0


def broadcast_object(value: Any, ctx: DistributedContext) -> Any:
    """Rank 0's ``value`` on every process."""
    if not ctx.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        dist.barrier()
