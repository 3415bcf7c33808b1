"""Decoded images as tensors: resizing, channel statistics, and a dataset over images held
in memory (the built-in sets, Fashion-MNIST and a user's folders all end as one).

Files are decoded by :mod:`cnnzoo.images.read`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "INTERPOLATIONS", "InMemoryDataset", "center_crop_image", "channel_mean_std", "cover_size", "fit_image",
    "resize_image", "resize_mask", "shorter_side_size",
]

# How an image may be resized (``RunMeta.interpolation``), and the ``F.interpolate`` mode
# that gives Pillow's result (antialiased when shrinking; ``nearest-exact`` samples each
# output pixel's centre, as Pillow's NEAREST does).
INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


def resize_image(image: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize of a ``C x H x W`` or ``N x C x H x W`` float image in [0, 1] to ``size`` (H, W):
    bilinear (default) or bicubic, antialiased when shrinking, or nearest (:data:`INTERPOLATIONS`)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batch = image if image.dim() == 4 else image[None]
    mode = INTERPOLATIONS[interpolation]
    smooth = {"align_corners": False, "antialias": True} if interpolation != "nearest" else {}
    resized = F.interpolate(batch, size=tuple(size), mode=mode, **smooth)
    return (resized if image.dim() == 4 else resized[0]).clamp_(0.0, 1.0)


def shorter_side_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The size an ``height x width`` image takes when its shorter side becomes ``side`` and
    the aspect ratio is kept, the longer side rounded down (torchvision's ``Resize(side)``:
    256 for the ImageNet evaluation transform, before its 224 centre crop)."""
    if height <= width:
        return side, side * width // height
    return side * height // width, side


def cover_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """The smallest size of the same aspect ratio as ``height x width`` that covers ``size``
    (H, W): one side equal to its target, the other at least its target (rounded down)."""
    target_h, target_w = size
    if target_h * width >= target_w * height:  # the height is the tighter constraint
        return target_h, target_h * width // height
    return target_w * height // width, target_w


def center_crop_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size`` (H, W) window of an image's last two dimensions; an odd margin
    is split as torchvision's ``CenterCrop`` splits it (``round(margin / 2)`` before)."""
    height, width = image.shape[-2:]
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise ValueError(f"cannot crop a {height}x{width} image to a larger {crop_h}x{crop_w}")
    top, left = int(round((height - crop_h) / 2)), int(round((width - crop_w) / 2))
    return image[..., top : top + crop_h, left : left + crop_w]


def fit_image(
    image: torch.Tensor, size: tuple[int, int], resize_size: int | None = None, interpolation: str = "bilinear",
    keep_aspect: bool = False,
) -> torch.Tensor:
    """A float image brought to ``size`` (H, W) as a classifier's input:

    * with ``resize_size``: its shorter side resized to ``resize_size``, then the central
      ``size`` cropped (the ImageNet evaluation transform: 256, then 224);
    * with ``keep_aspect``: resized to the smallest size of its own aspect ratio covering
      ``size``, then the central ``size`` cropped;
    * otherwise resized to ``size`` (the aspect ratio is not kept).
    """
    height, width = image.shape[-2:]
    if resize_size is not None:
        resized = resize_image(image, shorter_side_size(height, width, resize_size), interpolation)
    elif keep_aspect:
        resized = resize_image(image, cover_size(height, width, size), interpolation)
    else:
        return resize_image(image, size, interpolation)
    return center_crop_image(resized, size)


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
