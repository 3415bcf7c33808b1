"""Batch norm folded into the convolution before it: the graph work every runtime gains from.

In eval mode a batch norm is an affine map per channel, ``y = gamma (x - mu) / sqrt(var +
eps) + beta``. After a convolution ``x = W * v + b`` it composes into one convolution with

    W' = W * s,   b' = (b - mu) * s + beta,   s = gamma / sqrt(var + eps)   (per output channel),

which computes the same numbers (up to float rounding) without reading and writing the
activation a second time. The fold works on the pairs a model actually runs in a row: a
``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential`` (every
:class:`~cnnzoo.layers.conv.ConvNormAct`, VGG-BN's flat ``features``). A batch norm before
its convolution (DenseNet's pre-activation layers, with a ReLU between) is left as it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_batchnorm", "folded_conv"]


def folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution computing ``norm(conv(x))`` of eval mode (see the module docstring)."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("a batch norm without running statistics (track_running_stats=False) cannot be folded")
    with torch.no_grad():
        scale = torch.rsqrt(norm.running_var.double() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = norm.bias.double() if norm.bias is not None else torch.zeros_like(scale)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        fused = copy.deepcopy(conv)
        fused.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
        fused.bias = nn.Parameter(((bias - norm.running_mean.double()) * scale + shift).to(conv.weight.dtype))
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every (Conv2d, BatchNorm2d) pair of an
    ``nn.Sequential`` replaced by the folded convolution and an ``nn.Identity`` (so module
    names and indices stay). The model itself is not modified."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.num_features == conv.out_channels:
                module._modules[first] = folded_conv(conv, norm)
                module._modules[second] = nn.Identity()
    return folded
