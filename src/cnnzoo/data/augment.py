"""Augmentation of whole batches on the training device (kornia), masks moved with their images.

:func:`build_augment` gives a callable the engine applies to each collated training batch
(a dict with "image" ``N x C x H x W`` in [0, 1], before normalization, "target" and for
some sets "weight"), on whatever device the batch is on. For segmentation the class map
"target" and the loss weights "weight" get exactly the geometric transform of their
image, resampled with nearest neighbour (so no label is invented and 255 = ignore stays
255); brightness and contrast change the image only. Geometric warps fill the border
they uncover by reflection, in the image and its mask alike, so the two still agree there.
Random numbers come from torch's generator: ``torch.manual_seed`` makes a run repeatable.
(kornia is imported when an augmentation is built, not with the package: it takes most of
a second.)

Levels (classification | segmentation):

- ``none``: identity;
- ``light``: horizontal flip | horizontal and vertical flips;
- ``default``: random crop of the image padded by 1/8 of its side (4 pixels at 32x32, the
  CIFAR recipe of He et al. 2016, section 4.2) + horizontal flip | flips, 90-degree
  rotations (square images), a small affine warp (+-10 degrees, +-5 % shift, 0.9-1.1
  scale; half the images), brightness and contrast jitter (+-10 %);
- ``strong``: default + a small affine warp and brightness/contrast jitter | default with a
  larger warp (+-30 degrees, 0.8-1.2 scale, shear) + an elastic deformation (the U-Net
  paper's main augmentation for few training images).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["LEVELS", "BatchAugment", "build_augment"]

LEVELS = ("none", "light", "default", "strong")
_TASKS = ("classification", "segmentation", "reconstruction")


class BatchAugment(nn.Module):
    """Applies one kornia ``AugmentationSequential`` to a batch dict; keys other than
    "image", "target" (segmentation) and "weight" pass through unchanged."""

    def __init__(self, task: str, transforms: list[nn.Module]) -> None:
        super().__init__()
        self.task = task
        self.transforms = nn.ModuleList(transforms)
        self.segmentation = task == "segmentation"
        self._sequentials: dict[int, nn.Module] = {}  # by the number of maps that follow

    def forward(self, batch: dict) -> dict:
        image = batch["image"]
        if image.dim() != 4:
            raise ValueError(f"augmentation needs a batch of images N x C x H x W, got shape {tuple(image.shape)}")
        extras = []  # (key, how to give it back) of the maps that follow the image's geometry
        inputs = [image]
        if self.segmentation:
            for key in ("target", "weight"):
                if key in batch and batch[key] is not None:
                    inputs.append(batch[key][:, None].to(image.dtype))
                    extras.append((key, batch[key].dtype))
        with warnings.catch_warnings():
            # kornia 0.9 hands masks to grid_sample with align_corners=None, which means
            # False (the image's own setting) but warns each time.
            warnings.filterwarnings("ignore", message="Default grid_sample and affine_grid behavior")
            outputs = self._sequential(len(extras))(*inputs)
        outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        result = dict(batch)
        result["image"] = outputs[0]
        if self.task == "reconstruction":  # the target is the image the model is fed, augmented
            result["target"] = outputs[0]
        for (key, dtype), values in zip(extras, outputs[1:]):
            values = values[:, 0]
            # Nearest-neighbour resampling leaves whole numbers (labels >= 0): + 0.5 and
            # truncation is rounding, without torch's round (slow on a busy CPU).
            result[key] = values.to(dtype) if dtype.is_floating_point else values.add(0.5).to(dtype)
        return result

    def _sequential(self, maps: int) -> nn.Module:
        from kornia.augmentation import AugmentationSequential

        if maps not in self._sequentials:
            self._sequentials[maps] = AugmentationSequential(*self.transforms, data_keys=["input"] + ["mask"] * maps)
        return self._sequentials[maps]


def build_augment(task: str, image_size: tuple[int, int], level: str = "default") -> Callable[[dict], dict]:
    """The training augmentation of ``task`` ("classification", "segmentation" or
    "reconstruction", which augments as classification and sets the target to the result) at ``level``
    (:data:`LEVELS`) for batches of ``image_size`` (height, width) images; see the module docstring."""
    if task not in _TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(_TASKS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown augmentation level {level!r}: use one of {', '.join(LEVELS)}")
    height, width = _check_size(image_size)
    if level == "none":
        return _identity
    if task in ("classification", "reconstruction"):  # an auto-encoder's images are augmented as a classifier's
        transforms = _classification(level, height, width)
    else:
        transforms = _segmentation(level, height, width)
    return BatchAugment(task, transforms)


def _classification(level: str, height: int, width: int) -> list[nn.Module]:
    from kornia import augmentation as K

    transforms: list[nn.Module] = []
    if level in ("default", "strong"):
        padding = max(1, round(min(height, width) / 8))
        transforms.append(K.RandomCrop((height, width), padding=padding))
    transforms.append(K.RandomHorizontalFlip())
    if level == "strong":
        transforms += [K.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1), padding_mode="reflection"),
                       *_photometric(0.1)]
    return transforms


def _segmentation(level: str, height: int, width: int) -> list[nn.Module]:
    from kornia import augmentation as K

    transforms: list[nn.Module] = [K.RandomHorizontalFlip(), K.RandomVerticalFlip()]
    if level == "light":
        return transforms
    if height == width:  # a quarter turn of a non-square image would change its shape
        transforms.append(K.RandomRotation90(times=(0, 3), p=1.0))
    if level == "default":
        transforms.append(K.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1),
                                         padding_mode="reflection"))
    else:
        transforms += [K.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=5,
                                      padding_mode="reflection"),
                       K.RandomElasticTransform(kernel_size=(31, 31), sigma=(6.0, 6.0), alpha=(1.0, 1.0),
                                                padding_mode="reflection")]
    return transforms + _photometric(0.1)


def _photometric(amount: float) -> list[nn.Module]:
    from kornia import augmentation as K

    return [K.RandomBrightness((1 - amount, 1 + amount), p=0.5),
            K.RandomContrast((1 - amount, 1 + amount), p=0.5)]


def _identity(batch: dict) -> dict:
    return batch


def _check_size(image_size: tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(side, bool) or int(side) != side or side < 1 for side in size):
        raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size}")
    return int(size[0]), int(size[1])
