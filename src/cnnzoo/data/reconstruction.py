"""Any image data set as a reconstruction set: each image is its own target.

An auto-encoder (``task="reconstruction"``, e.g. ``conv_autoencoder``) learns to give its
input back, so it trains on the images of any data set, classification or segmentation,
built-in or a folder; the labels are not used. :func:`as_reconstruction` turns a
:class:`~cnnzoo.data.spec.DataSpec` into one whose samples are ``{"image", "target"}`` with
``target`` the image itself (``C x H x W`` in [0, 1]: the pixels the model must give back,
not the normalized input it is fed). Training augmentation moves the image and the target
together: :class:`~cnnzoo.data.augment.BatchAugment` sets the target to the augmented image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.utils.data import Dataset

from cnnzoo.data.spec import DataSpec

__all__ = ["ImagesAsTargets", "as_reconstruction", "data_for_task"]


class ImagesAsTargets(Dataset):
    """The samples of ``dataset`` as ``{"image": x, "target": x}``; their labels are dropped."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.dataset[index]["image"]
        return {"image": image, "target": image}


def as_reconstruction(spec: DataSpec) -> DataSpec:
    """``spec``'s images as a reconstruction set: the same splits, channels, size and
    normalization, no classes (``num_classes=0``), each image its own target. A
    reconstruction set is returned as it is."""
    if spec.task == "reconstruction":
        return spec
    return dataclasses.replace(
        spec, task="reconstruction", num_classes=0, class_names=[], ignore_index=None,
        train=ImagesAsTargets(spec.train), val=ImagesAsTargets(spec.val),
    )


def data_for_task(spec: DataSpec, task: str) -> DataSpec:
    """The data a model of ``task`` trains and is scored on: ``spec`` itself, or its images
    as a reconstruction set for a reconstruction model."""
    return as_reconstruction(spec) if task == "reconstruction" else spec
