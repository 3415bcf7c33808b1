"""Decoded images as tensors: resizing, channel statistics, and a dataset over images held
in memory (the built-in sets, Fashion-MNIST and a user's folders all end as one).

Files are decoded by :mod:`cnnzoo.images.read`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["InMemoryDataset", "channel_mean_std", "resize_image", "resize_mask"]


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a ``C x H x W`` or ``N x C x H x W`` float image (antialiased when shrinking)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batch = image if image.dim() == 4 else image[None]
    resized = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    return (resized if image.dim() == 4 else resized[0]).clamp_(0.0, 1.0)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an ``H x W`` (or ``N x H x W``) class map: no label is ever invented.

    ``nearest-exact`` samples each output pixel's centre, as Pillow's NEAREST does.
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    batch = mask if mask.dim() == 3 else mask[None]
    resized = F.interpolate(batch[:, None].float(), size=size, mode="nearest-exact")[:, 0].to(mask.dtype)
    return resized if mask.dim() == 3 else resized[0]


class InMemoryDataset(Dataset):
    """Samples from decoded tensors: ``{"image", "target"[, "weight"]}`` as :class:`~cnnzoo.data.spec.DataSpec` says.

    ``images``: ``N x C x H x W``, uint8 (divided by 255 when read) or float32 in [0, 1].
    ``targets``: ``N`` class indices or ``N x H x W`` class maps (any integer dtype; int64
    when read). ``weights``: optional ``N x H x W`` float32. ``image_size``: resize each
    sample when read (bilinear images, nearest masks and weights), for sets stored smaller
    than the model wants (Fashion-MNIST's 28x28 shown to AlexNet at 224x224).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None,
                 image_size: tuple[int, int] | None = None) -> None:
        if len(images) != len(targets) or (weights is not None and len(weights) != len(images)):
            raise ValueError(f"{len(images)} images but {len(targets)} targets"
                             + ("" if weights is None else f" and {len(weights)} weight maps"))
        self.images = images
        self.targets = targets
        self.weights = weights
        self.image_size = tuple(image_size) if image_size is not None else tuple(images.shape[-2:])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index]
        image = image.float().div_(255.0) if image.dtype == torch.uint8 else image.float()
        sample = {"image": resize_image(image, self.image_size)}
        target = self.targets[index].long()
        sample["target"] = resize_mask(target, self.image_size) if target.dim() == 2 else target
        if self.weights is not None:
            sample["weight"] = resize_mask(self.weights[index].float(), self.image_size)
        return sample


def channel_mean_std(images: torch.Tensor, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``N x C x H x W`` images (uint8 read as /255), over all pixels.

    Sums in float64, a chunk of images at a time, so large sets need little extra memory.
    """
    if len(images) == 0:
        raise ValueError("cannot compute the mean and std of an empty set of images")
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].to(torch.float64)
        if images.dtype == torch.uint8:
            part /= 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt()
    return tuple(float(value) for value in mean), tuple(float(value) for value in std)
