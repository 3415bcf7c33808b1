"""SqueezeNet's Fire module (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size", 2016, section 3.2).

A 1x1 "squeeze" conv cuts the channels to ``s``; two "expand" convs, ``e1`` 1x1 filters and
``e3`` 3x3 filters, both read the squeezed map and their outputs are concatenated into
``e1 + e3`` channels. Each conv is followed by ReLU (no normalization, as in the paper).

Parameters (with biases)::

    C_in * s + s  +  s * e1 + e1  +  9 * s * e3 + e3

The 3x3 filters see only ``s`` channels instead of ``C_in`` (the paper keeps
``s < e1 + e3``), which is where SqueezeNet's saving comes from: fire2 of SqueezeNet 1.0
(96 -> 16 -> 64 + 64) has 11,920 parameters, a plain 3x3 conv 96 -> 128 has 110,720.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.conv import ModuleFactory, make_activation

__all__ = ["Fire", "fire_params"]


class Fire(nn.Module):
    """Squeeze (1x1) then expand (1x1 and 3x3, concatenated).

    Children ``squeeze``, ``expand1x1`` and ``expand3x3`` are plain convolutions named as
    in torchvision's SqueezeNet, so its checkpoints load as is; the activations hold no
    parameters.

    Args:
        in_channels: C_in.
        squeeze_channels: s, the number of 1x1 squeeze filters.
        expand1x1_channels: e1, the number of 1x1 expand filters.
        expand3x3_channels: e3, the number of 3x3 expand filters.
        act_layer: activation factory applied after each conv (``nn.ReLU``).
    """

    def __init__(
        self,
        in_channels: int,
        squeeze_channels: int,
        expand1x1_channels: int,
        expand3x3_channels: int,
        act_layer: ModuleFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze_channels, kernel_size=1)
        self.squeeze_act = make_activation(act_layer)
        self.expand1x1 = nn.Conv2d(squeeze_channels, expand1x1_channels, kernel_size=1)
        self.expand1x1_act = make_activation(act_layer)
        # padding 1 keeps the 3x3 output the size of the 1x1 output, so the two concatenate.
        self.expand3x3 = nn.Conv2d(squeeze_channels, expand3x3_channels, kernel_size=3, padding=1)
        self.expand3x3_act = make_activation(act_layer)
        self.in_channels = in_channels
        self.out_channels = expand1x1_channels + expand3x3_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.squeeze_act(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_act(self.expand1x1(squeezed)), self.expand3x3_act(self.expand3x3(squeezed))],
            dim=1,
        )


def fire_params(in_channels: int, squeeze_channels: int, expand1x1_channels: int, expand3x3_channels: int) -> int:
    """Parameter count of a :class:`Fire` module (weights and biases), by the formula above."""
    s, e1, e3 = squeeze_channels, expand1x1_channels, expand3x3_channels
    return (in_channels * s + s) + (s * e1 + e1) + (9 * s * e3 + e3)
