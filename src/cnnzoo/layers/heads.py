"""Classifier heads, and the global pooling they start with."""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "AdaptiveAvgMaxPool2d", "ClassifierHead", "FullyConvHead", "GLOBAL_POOLS", "check_probability", "fc_classifier",
    "make_global_pool", "optional_dropout", "pool_type_of",
]

# Hidden width of the AlexNet / VGG fully connected classifiers (fc6, fc7).
FC_WIDTH = 4096


def check_probability(name: str, p: float) -> None:
    """Raise ``ValueError`` unless ``0 <= p <= 1``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def optional_dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or ``nn.Identity`` for ``p = 0`` (nothing to print or to run)."""
    check_probability("dropout", p)
    return nn.Dropout(p) if p > 0 else nn.Identity()


class AdaptiveAvgMaxPool2d(nn.Module):
    """Global pooling to ``N x C x 1 x 1`` by the mean of the average and the maximum of each
    map (timm's ``"avgmax"``): ``(mean(x) + max(x)) / 2``. No parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.mean(dim=(2, 3), keepdim=True) + x.amax(dim=(2, 3), keepdim=True))


# The global poolings a pooled-linear head can start with, by timm's names.
GLOBAL_POOLS: dict[str, type[nn.Module]] = {
    "avg": nn.AdaptiveAvgPool2d,
    "max": nn.AdaptiveMaxPool2d,
    "avgmax": AdaptiveAvgMaxPool2d,
}


def make_global_pool(pool_type: str) -> nn.Module:
    """The global pooling ``pool_type`` ("avg", "max" or "avgmax") to ``N x C x 1 x 1``."""
    if not isinstance(pool_type, str) or pool_type not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be one of {', '.join(GLOBAL_POOLS)}; got {pool_type!r}")
    layer = GLOBAL_POOLS[pool_type]
    return layer() if layer is AdaptiveAvgMaxPool2d else layer(1)


def pool_type_of(pool: nn.Module) -> str | None:
    """The name of a global pooling :func:`make_global_pool` makes (``None`` for another module)."""
    if getattr(pool, "output_size", 1) not in (1, (1, 1)):
        return None
    return next((name for name, layer in GLOBAL_POOLS.items() if type(pool) is layer), None)


class FullyConvHead(nn.Module):
    """Fully convolutional classifier head: K 1x1 convolutions, global average pooling, softmax.

    The CS-568 notes ("Fully Convolutional Networks"): a dense layer fixes the input size
    (1024 inputs imply H x W = 256), while one 1x1 conv per class followed by global pooling
    works for a feature map of any size. Parameters: ``C_in * K + K``.

    ``forward`` returns logits (what a loss wants); ``predict_proba`` applies the softmax.
    Children: ``dropout`` (identity when ``dropout=0``) and ``score`` (the K 1x1 convs).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = optional_dropout(dropout)
        self.score = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.score(self.dropout(x))
        return scores.mean(dim=(2, 3))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).softmax(dim=1)


class ClassifierHead(nn.Module):
    """Global average pooling, optional dropout, then a linear layer (ResNet, DenseNet,
    MobileNet, EfficientNet). Children: ``pool`` (a :func:`make_global_pool`, average by
    default), ``dropout``, ``fc``."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = optional_dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def fc_classifier(
    in_features: int,
    num_classes: int,
    hidden: int = FC_WIDTH,
    dropout: float = 0.5,
    dropout_first: bool = False,
) -> nn.Sequential:
    """Two hidden fully connected layers with ReLU and dropout, then the class scores.

    ``dropout_first=False`` drops the hidden layers' outputs, as in the AlexNet and VGG
    papers (Linear, ReLU, Dropout); ``True`` drops their inputs, torchvision's AlexNet
    (Dropout, Linear, ReLU). Either way the linear layers sit at positions 0 or 1, 3 or 4, 6.
    """
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(2):
        block: list[nn.Module] = [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        drop = nn.Dropout(dropout)
        layers += [drop, *block] if dropout_first else [*block, drop]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
