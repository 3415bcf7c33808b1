"""A model that takes 8-bit images: the normalization moved into the graph.

An exported :class:`Uint8Input` takes what an image decoder gives, ``N x C x H x W`` uint8
values 0..255, and computes ``model((x / 255 - mean) / std)``: the caller no longer needs
to know the run's statistics, and the input is a quarter of the float32 one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Uint8Input"]


class Uint8Input(nn.Module):
    """``model`` behind ``x / 255`` and ``(x - mean) / std`` (per channel) for uint8 ``x``.

    ``mean`` and ``std`` are those the model was trained with, on [0, 1] images; the
    wrapped model is ``self.model`` (unchanged, in the mode it was given).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        if not all(value > 0 for value in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.model = model
        # scale = 1 / (255 std), shift = mean / std: one multiply-add per pixel in the graph.
        std_tensor = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_tensor))
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) / std_tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise ValueError(f"this model takes uint8 images (0..255), got {x.dtype}")
        return self.model(x.float() * self.scale - self.shift)
