"""Optimizers and the learning-rate schedule.

Weight decay pulls every weight towards zero; on the scale and shift of a normalization
layer and on biases it only fights the normalization (the scale of a BN-followed conv is
free anyway), so those parameters get none, as in Goyal et al. 2017 ("Accurate, large
minibatch SGD", section 5.1) and the common practice since.

The schedule is a linear warm-up (Goyal et al. 2017, section 2.2) followed by a cosine
decay to zero (Loshchilov & Hutter 2017, "SGDR", eq. 5 without restarts), stepped once per
optimizer step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from cnnzoo.pretrained import head_prefixes, is_under

__all__ = [
    "NORM_LAYERS",
    "build_optimizer",
    "build_scheduler",
    "parameter_groups",
    "split_decay_parameters",
    "warmup_cosine",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def split_decay_parameters(model: nn.Module) -> tuple[list[str], list[str]]:
    """The names of the trainable parameters that get weight decay, and of those that do
    not (every parameter of a normalization layer, and every bias)."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            full_name = f"{module_name}.{name}" if module_name else name
            if isinstance(module, NORM_LAYERS) or name == "bias":
                no_decay.append(full_name)
            else:
                decay.append(full_name)
    return decay, no_decay


def parameter_groups(model: nn.Module, weight_decay: float, backbone_lr_scale: float = 1.0) -> list[dict]:
    """Optimizer parameter groups: with ``weight_decay`` and with none; with
    ``backbone_lr_scale`` below 1, each split again into the head (``model.head_children()``)
    and the rest, whose groups carry ``lr_scale`` (fine-tuning: a pretrained backbone moves
    more slowly than its new head)."""
    decay, no_decay = split_decay_parameters(model)
    parameters = dict(model.named_parameters())
    groups = [(decay, weight_decay), (no_decay, 0.0)]
    if backbone_lr_scale == 1.0:
        return [{"params": [parameters[n] for n in names], "weight_decay": wd} for names, wd in groups]
    head = head_prefixes(model)
    split = []
    for names, wd in groups:
        for in_head, scale in ((True, 1.0), (False, backbone_lr_scale)):
            chosen = [parameters[n] for n in names if is_under(n, head) == in_head]
            split.append({"params": chosen, "weight_decay": wd, "lr_scale": scale})
    return split


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    backbone_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    """SGD (with ``momentum``, optionally Nesterov's) or AdamW (``momentum`` is its beta1),
    with no weight decay on norm layers and biases, and the backbone's learning rate
    ``backbone_lr_scale`` times ``lr``."""
    groups = parameter_groups(model, weight_decay, backbone_lr_scale)
    for group in groups:
        group["lr"] = lr * group.pop("lr_scale", 1.0)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"unknown optimizer {name!r}; use sgd or adamw")


def warmup_cosine(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The learning-rate factor of optimizer step ``s`` (0-based):

    - warm-up, ``s < W``: ``(s + 1) / W``, so the first step already moves and step ``W - 1``
      reaches the peak;
    - then ``0.5 * (1 + cos(pi * (s - W) / (T - W)))``: 1 at ``s = W``, 1/2 half-way,
      0 at ``s = T``.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if total_steps == warmup_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    """Warm-up then cosine (:func:`warmup_cosine`); call ``.step()`` after each optimizer step."""
    return LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))
