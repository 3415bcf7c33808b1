"""Random generators: seeded for a run, and saved and restored with its checkpoints.

Reproducibility: the training order of epoch ``e`` is drawn from a generator seeded with
``seed + e`` (:func:`cnnzoo.engine.distributed.train_sampler`), and every generator is
reseeded from ``(seed, e, rank)`` at the start of every epoch (:func:`seed_epoch`), so a run
resumed from its ``last`` checkpoint continues exactly as if it had not stopped (with
``workers=0``, or deterministic data loading). The states themselves travel in the
checkpoint's training state (:func:`capture_rng_state`, :func:`restore_rng_state`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seed_epoch", "seed_everything"]


def seed_everything(*key: int) -> None:
    """Seed Python's, NumPy's and torch's generators from a tuple of integers."""
    state = np.random.SeedSequence(list(key)).generate_state(2)
    value = int(state[0]) << 32 | int(state[1])
    random.seed(value)
    np.random.seed(state[0])
    torch.manual_seed(value)


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed every generator from (seed, epoch, rank): a resumed run draws the same
    augmentations and dropout masks as an uninterrupted one."""
    seed_everything(seed, epoch, rank)


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's, torch's and (when present) CUDA's generators."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generator states of :func:`capture_rng_state`."""
    random.setstate(_as_tuples(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


def _as_tuples(value: Any) -> Any:
    # random.setstate needs tuples all the way down.
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value
