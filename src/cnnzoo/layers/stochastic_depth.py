"""Stochastic depth: residual branches dropped for whole samples during training, and the
linear schedule of their drop probabilities over a network's blocks.

Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016. A
residual block computes ``shortcut(x) + F(x)``; in training, each sample's F(x) is dropped
with probability p, so that sample sees a shallower network (the block reduces to its
shortcut), and the survivors are scaled by ``1 / (1 - p)`` so the expected output is
unchanged. In evaluation nothing is dropped and nothing is scaled. timm calls it
"drop path", EfficientNet's release "drop connect"; the residual families of the zoo
(ResNet, ResNeXt, EfficientNet) take it as ``drop_path_rate``.

The drop probability rises linearly with depth (the paper's "linear decay rule", since
early blocks extract the low-level features every later block uses). Here, as in
torchvision's and the released EfficientNets, block ``i`` of ``N`` (counting from 0) gets
``rate * i / N``: the first block is never dropped and the last approaches ``rate``. (The
paper's rule, 1-based, gives ``rate * (i + 1) / N``; timm's ResNets use ``rate * i / (N - 1)``.)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StochasticDepth", "check_drop_rate", "linear_drop_rates"]


def check_drop_rate(name: str, rate: float) -> None:
    """Raise ``ValueError`` unless ``0 <= rate <= 1`` (``name`` is the option's name)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {rate}")


def linear_drop_rates(rate: float, num_blocks: int) -> list[float]:
    """Drop probabilities of ``num_blocks`` residual blocks, shallow to deep: ``rate * i / N``."""
    check_drop_rate("drop_path_rate", rate)
    return [rate * index / num_blocks for index in range(num_blocks)]


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole samples during training (Huang et al. 2016;
    EfficientNet's "drop connect").

    In training each sample's branch is zeroed with probability p and the survivors are scaled
    by ``1 / (1 - p)``, so the expected output equals the input: E[out] = (1 - p) * x / (1 - p).
    A block whose branch is dropped reduces to the identity shortcut, so the network is
    effectively shallower for that sample. In evaluation the module is the identity.
    No parameters, no MACs.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        check_drop_rate("drop probability", p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        keep.bernoulli_(survival)
        # Multiply even when everything is dropped, so every parameter still gets a (zero) gradient.
        return x * keep / survival if survival > 0 else x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
