"""The two numbers most asked for: :func:`count_params` and :func:`count_macs` (re-exported
by :mod:`cnnzoo.analysis`; a module of their own so that the explain topics can use them
without importing the package that imports them)."""

from __future__ import annotations

from torch import nn

from cnnzoo.analysis.summary import summarize

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224)) -> int:
    """Multiply-accumulates of convolutions, linear layers and matmuls for one image of
    ``input_size`` (C, H, W), counted on the meta device (nothing is computed and the model
    is not modified). FLOPs = 2 x MACs; ``torch.utils.flop_counter.FlopCounterMode`` agrees."""
    return summarize(model, input_size).total.macs
