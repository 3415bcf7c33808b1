"""Dense connectivity: the dense layer, the dense block and the transition layer.

Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017. Inside a dense block every layer receives the feature maps of *all* preceding
layers, joined by channel-wise concatenation (a ResNet adds them element-wise instead):

    x_l = H_l([x_0, x_1, ..., x_{l-1}])

Each ``H_l`` produces ``k`` new maps (``k`` is the *growth rate*), so layer ``l`` of a block
whose input has ``k0`` channels sees ``k0 + k * (l - 1)`` channels and the block returns
``k0 + k * L`` channels. ``H`` is pre-activation, BN -> ReLU -> conv:

=====================  =================================================  ==========================================
unit                   operations                                         parameters (conv weights, no bias)
=====================  =================================================  ==========================================
dense layer            BN-ReLU-Conv3x3(k)                                 9 * c_in * k
dense layer, B         BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k)             c_in * 4k + 9 * 4k * k
transition             BN-ReLU-Conv1x1(floor(theta * m))-AvgPool2x2       m * floor(theta * m)
=====================  =================================================  ==========================================

(plus 2 parameters per channel for every batch norm). MACs of a dense layer at H x W:
``H * W * 9 * c_in * k``, or ``H * W * (c_in * 4k + 9 * 4k * k)`` with the bottleneck; the
1x1 bottleneck ("DenseNet-B") caps the cost of the 3x3 conv at ``4k`` input channels however
wide the concatenation grows. A transition with compression ``theta < 1`` ("DenseNet-C")
shrinks the ``m`` channels it receives to ``floor(theta * m)`` and halves the spatial size.

``memory_efficient=True`` recomputes the concatenation and the first BN-ReLU-conv in the
backward pass (gradient checkpointing, Pleiss et al., "Memory-Efficient Implementation of
DenseNets", 2017) instead of keeping them, so a block's stored activations grow linearly
rather than quadratically with its depth; outputs and gradients are unchanged.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnzoo.layers.heads import check_probability

__all__ = ["DenseBlock", "DenseLayer", "Transition", "compressed_channels"]

# The bottleneck 1x1 conv produces bn_size * k maps; the paper uses 4k.
DEFAULT_BN_SIZE = 4


def compressed_channels(channels: int, compression: float) -> int:
    """Output channels of a transition: ``floor(theta * m)`` (at least one)."""
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression theta must be in (0, 1], got {compression}")
    return max(1, int(compression * channels))


@contextlib.contextmanager
def _frozen_running_stats(norm: nn.Module) -> Iterator[None]:
    """Undo whatever a forward pass does to ``norm``'s running statistics.

    Gradient checkpointing runs the first batch norm a second time during backward; in
    training mode that second run would update the running mean and variance again, so the
    checkpointed model would drift from the plain one. Restoring the buffers keeps them equal.
    """
    saved = {name: buffer.clone() for name, buffer in norm.named_buffers(recurse=False)}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buffer in norm.named_buffers(recurse=False):
                buffer.copy_(saved[name])


class DenseLayer(nn.Module):
    """One composite function ``H_l``: concatenate the inputs, then BN-ReLU-Conv.

    Without bottleneck: ``norm1, relu1, conv1`` = BN-ReLU-Conv3x3 producing ``growth_rate``
    maps. With ``bottleneck=True`` (DenseNet-B): ``norm1, relu1, conv1`` = BN-ReLU-Conv1x1 to
    ``bn_size * growth_rate`` maps, then ``norm2, relu2, conv2`` = BN-ReLU-Conv3x3 to
    ``growth_rate``. The children are listed flat, in the order the paper writes them, which
    is also torchvision's naming (its checkpoints load as they are).

    ``forward`` takes the *list* of preceding feature maps rather than their concatenation,
    so that the concatenation can be part of the checkpointed (recomputed) segment.
    Dropout (``drop_rate``) follows every conv, as in the paper's CIFAR runs without data
    augmentation; with the default 0 it is a no-op.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bottleneck: bool = True,
        bn_size: int = DEFAULT_BN_SIZE,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        check_probability("drop_rate", drop_rate)
        first_out = bn_size * growth_rate if bottleneck else growth_rate
        first_kernel = 1 if bottleneck else 3
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, first_out, first_kernel, padding=first_kernel // 2, bias=False)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(first_out)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(first_out, growth_rate, 3, padding=1, bias=False)
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.bottleneck = bottleneck
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def _concat_norm_act_conv(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``conv1(relu1(norm1([x_0, ..., x_{l-1}])))``: the part whose activations are
        ``c_in`` channels wide, i.e. grow with the layer's depth in the block."""
        return self._dropout(self.conv1(self.relu1(self.norm1(torch.cat(inputs, dim=1)))))

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0 else x

    def _checkpointed(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
            return contextlib.nullcontext(), _frozen_running_stats(self.norm1)

        return checkpoint(self._concat_norm_act_conv, *inputs, use_reentrant=False, context_fn=contexts)

    def forward(self, inputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The ``growth_rate`` new feature maps of this layer."""
        if isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        if self.memory_efficient and torch.is_grad_enabled():
            out = self._checkpointed(inputs)
        else:
            out = self._concat_norm_act_conv(*inputs)
        if self.bottleneck:
            out = self._dropout(self.conv2(self.relu2(self.norm2(out))))
        return out


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each fed the concatenation of the block input and all
    earlier layers' outputs. Children ``denselayer1`` ... ``denselayerL``.

    Input ``k0`` channels, output ``k0 + k * L`` channels: the block input followed by the
    ``k`` maps of each layer in order. Parameters (bottleneck, no biases):
    ``sum_l [(k0 + k(l-1)) * (4k + 2) + 4k * (9k + 2)]``.
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bottleneck: bool = True,
        bn_size: int = DEFAULT_BN_SIZE,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        layers = OrderedDict(
            (
                f"denselayer{index}",
                DenseLayer(
                    in_channels + (index - 1) * growth_rate,  # k0 + k(l - 1)
                    growth_rate,
                    bottleneck=bottleneck,
                    bn_size=bn_size,
                    drop_rate=drop_rate,
                    memory_efficient=memory_efficient,
                ),
            )
            for index in range(1, num_layers + 1)
        )
        super().__init__(layers)
        self.in_channels = in_channels
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """Between two dense blocks: BN-ReLU-Conv1x1 then 2x2 average pooling (stride 2).

    The 1x1 conv maps the ``m`` channels of the block to ``out_channels``; DenseNet-C uses
    ``floor(theta * m)`` with compression ``theta = 0.5`` (see :func:`compressed_channels`).
    Children ``norm, relu, conv, pool`` (torchvision's names). Parameters:
    ``2m + m * out_channels``; MACs at H x W input: ``H * W * m * out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float = 0.0) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        )
        check_probability("drop_rate", drop_rate)
        if drop_rate > 0:
            layers["drop"] = nn.Dropout(drop_rate)
        layers["pool"] = nn.AvgPool2d(kernel_size=2, stride=2)
        super().__init__(layers)
        self.in_channels = in_channels
        self.out_channels = out_channels
