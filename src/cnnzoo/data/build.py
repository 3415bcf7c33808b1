"""``build_data``: a data set by name (the built-in sets) or by path (a folder of images).

Built-in sets (:data:`DATASETS`), their default sizes and where their mean/std come from:

================  ==============  ===========  ==============  ===================================
name              task            classes      default size    train / val samples (default)
================  ==============  ===========  ==============  ===================================
fashion-mnist     classification  10           1 x 28 x 28     60,000 / 10,000 (the t10k set)
shapes            segmentation    5            3 x 64 x 64     2,000 / 400 (drawn)
cells             segmentation    2            1 x 64 x 64     1,000 / 200 (drawn, with "weight")
fashion-scenes    segmentation    11           1 x 64 x 64     4,000 / 1,000 (drawn from Fashion-MNIST)
aerial            segmentation    6            3 x 128 x 128   1,000 / 200 (drawn, ISPRS classes)
================  ==============  ===========  ==============  ===================================

Fashion-MNIST's mean and std are the published training-set statistics (0.2860 / 0.3530);
a drawn set's are computed from its generated training split; a folder's from its
training images (all when held in memory, else a seeded sample of 500).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np
import torch

from cnnzoo.data import aerial, fashion_mnist, synthetic
from cnnzoo.data.folders import load_folder
from cnnzoo.data.in_memory import InMemoryDataset, channel_mean_std
from cnnzoo.data.spec import DataSpec
from cnnzoo.utils.memory import check_fits_in_memory

__all__ = ["DATASETS", "DEFAULT_SIZES", "build_data"]

DATASETS = ("fashion-mnist", "shapes", "cells", "fashion-scenes", "aerial")
# (train, val) sample counts when not given.
DEFAULT_SIZES = {"fashion-mnist": (60000, 10000), "shapes": (2000, 400), "cells": (1000, 200),
                 "fashion-scenes": (4000, 1000), "aerial": (1000, 200)}
_SYNTHETIC_SIZE = (64, 64)
_DRAWN_SIZES = {"aerial": (128, 128)}  # where a drawn set's default size is not _SYNTHETIC_SIZE


def build_data(name_or_path: str, *, data_dir: str | os.PathLike | None = None,
               image_size: int | tuple[int, int] | None = None, train_size: int | None = None,
               val_size: int | None = None, seed: int = 0) -> DataSpec:
    """The data set ``name_or_path``: a built-in name (:data:`DATASETS`) or a folder (see
    :mod:`cnnzoo.data.folders`; a relative path is also looked for under ``data_dir``).

    ``data_dir``: where Fashion-MNIST's files are looked for first (fashion-mnist and
    fashion-scenes). ``image_size``: int or (height, width); built-in sets are drawn at it
    (Fashion-MNIST is resized to it), folders resized to it. ``train_size`` / ``val_size``:
    samples per split (a seeded subset for the real sets). ``seed``: draws the samples,
    the subsets and a folder's validation split.
    """
    size = _check_image_size(image_size)
    if size is not None:  # an image is read, converted to float and resized: three copies at once, at worst
        check_fits_in_memory(3 * 4 * 3 * size[0] * size[1],
                             f"reading one {size[0]}x{size[1]} image (RGB float32, three copies while it is resized)")
    train_size, val_size = _check_count(train_size, "train_size"), _check_count(val_size, "val_size")
    if name_or_path in DATASETS:
        build = _BUILTIN[name_or_path]
        return build(data_dir=data_dir, image_size=size, train_size=train_size, val_size=val_size, seed=seed)
    folder = _find_folder(str(name_or_path), data_dir)
    return load_folder(folder, image_size=size, train_size=train_size, val_size=val_size, seed=seed)


def _fashion_mnist(data_dir, image_size, train_size, val_size, seed) -> DataSpec:
    splits = []
    for split, count, name in (("train", train_size, "train_size"), ("test", val_size, "val_size")):
        images, labels = fashion_mnist.load_fashion_mnist(split, data_dir)
        keep = _subset(len(images), count, seed, name, f"Fashion-MNIST's {split} split")
        images, labels = images[keep], labels[keep]
        splits.append(InMemoryDataset(torch.from_numpy(images)[:, None], torch.from_numpy(labels),
                                      image_size=image_size))
    folder = fashion_mnist.find_fashion_mnist("train", data_dir)[0].parent
    return DataSpec(
        name="fashion-mnist", task="classification", num_classes=10, in_chans=1,
        class_names=list(fashion_mnist.CLASS_NAMES), image_size=image_size or (28, 28),
        mean=(fashion_mnist.MEAN,), std=(fashion_mnist.STD,), train=splits[0], val=splits[1],
        source=str(folder), extra={"val_split": "t10k (the published test set)"},
    )


def _synthetic(name: str, class_names: tuple[str, ...]):
    def build(data_dir, image_size, train_size, val_size, seed) -> DataSpec:
        size = image_size or _DRAWN_SIZES.get(name, _SYNTHETIC_SIZE)
        counts = {"train": train_size or DEFAULT_SIZES[name][0], "val": val_size or DEFAULT_SIZES[name][1]}
        splits = {}
        for split, count in counts.items():
            if name == "fashion-scenes":
                drawn = synthetic.make_fashion_scenes(count, size, seed, split, data_dir=data_dir)
            elif name == "aerial":
                drawn = aerial.make_aerial(count, size, seed, split)
            else:
                drawn = getattr(synthetic, f"make_{name}")(count, size, seed, split)
            splits[split] = drawn
        mean, std = channel_mean_std(splits["train"].images)
        return DataSpec(
            name=name, task="segmentation", num_classes=len(class_names), in_chans=splits["train"].images.shape[1],
            class_names=list(class_names), image_size=size, mean=mean, std=std,
            train=InMemoryDataset(splits["train"].images, splits["train"].masks, splits["train"].weights),
            val=InMemoryDataset(splits["val"].images, splits["val"].masks, splits["val"].weights),
            source=f"built-in, seed {seed}", extra={"train_size": counts["train"], "val_size": counts["val"]},
        )

    return build


_BUILTIN = {
    "fashion-mnist": _fashion_mnist,
    "shapes": _synthetic("shapes", synthetic.SHAPE_CLASSES),
    "cells": _synthetic("cells", synthetic.CELL_CLASSES),
    "fashion-scenes": _synthetic("fashion-scenes", synthetic.FASHION_SCENE_CLASSES),
    "aerial": _synthetic("aerial", aerial.AERIAL_CLASSES),
}


def _find_folder(name: str, data_dir: str | os.PathLike | None) -> Path:
    path = Path(name).expanduser()
    candidates = [path]
    if data_dir is not None and not path.is_absolute():
        candidates.append(Path(data_dir).expanduser() / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    close = difflib.get_close_matches(name.lower().replace("_", "-"), DATASETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    looked = " or ".join(str(candidate) for candidate in candidates)
    raise ValueError(f"unknown data set {name!r}: it is not a built-in set ({', '.join(DATASETS)}) and no folder "
                     f"was found at {looked}.{hint}")


def _subset(total: int, count: int | None, seed: int, name: str, what: str) -> np.ndarray:
    """Indices of a seeded random subset of ``count`` of ``total`` items, in their order (all when None)."""
    if count is None:
        return np.arange(total)
    if count > total:
        raise ValueError(f"{name}={count} exceeds the {total} images of {what}")
    return np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))


def _check_image_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(side, bool) or int(side) != side or side < 1 for side in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return int(size[0]), int(size[1])


def _check_count(count: int | None, name: str) -> int | None:
    if count is not None and (isinstance(count, bool) or int(count) != count or count < 1):
        raise ValueError(f"{name} must be a positive int, got {count!r}")
    return None if count is None else int(count)
