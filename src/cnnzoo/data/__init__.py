"""Data sets and augmentation: Fashion-MNIST, built-in segmentation sets, a user's folders.

``build_data(name_or_path, ...)`` gives a :class:`DataSpec` (task, classes, mean/std and
the train/val datasets) for a built-in set (:data:`DATASETS`) or a folder of images;
``build_augment(task, image_size, level)`` the batch augmentation the engine applies on
the training device. See docs/data.md.

Files are decoded by :mod:`cnnzoo.images.read`. This package imports no model, engine or CLI
module.
"""

from cnnzoo.data.augment import build_augment
from cnnzoo.data.build import DATASETS, build_data
from cnnzoo.data.fashion_mnist import load_fashion_mnist
from cnnzoo.data.spec import DataSpec
from cnnzoo.images.read import IMAGE_SUFFIXES, read_image, read_mask  # the files' one reader

__all__ = [
    "DATASETS",
    "IMAGE_SUFFIXES",
    "DataSpec",
    "build_augment",
    "build_data",
    "load_fashion_mnist",
    "read_image",
    "read_mask",
]
