"""A user's own images, read from a folder: classification by class folders, segmentation by masks.

Layouts (``root`` is the path given to :func:`load_folder` / ``build_data``):

Classification::

    root/<class>/*.png|jpg|...                  one folder per class (sorted names = class order)
    root/train/<class>/...  root/val/<class>/... already split

Segmentation::

    root/images/NAME.png|jpg|...  root/masks/NAME.png      a mask per image, same stem
    root/train/{images,masks}/... root/val/{images,masks}/...
    root/classes.txt (optional)                              one class name per line

How the layout is told apart: ``root`` is split when it holds both ``train/`` and ``val/``
(one without the other is an error); a (split) folder holding both ``images/`` and
``masks/`` is a segmentation set, anything else a classification set whose subfolders are
the classes. Without ``train/`` / ``val/``, a seeded fraction (``val_fraction``, 0.2) of the
images becomes the validation split, the same fraction of every class (stratified).

Images: every image is converted to one channel count, 3 when any image of the set is in
colour, else 1 (see :mod:`cnnzoo.images.read` for the file kinds), and resized to one
``image_size``: the one given, else the most common size among the training images (the
first one met on a tie), bilinear (antialiased) for images, nearest for masks.

Masks hold the class index of each pixel (palette PNGs are read as their indices); 255
marks unlabelled pixels (``ignore_index``). The number of classes is the number of lines of
``root/classes.txt`` when it exists (a mask label at or above it is an error), else the
largest label found in the masks + 1, the names then being ``class0``, ``class1``, ...

Errors surface when the set is built, each naming its file: an empty folder, a file that
is not a readable image (headers and checksums are checked: Pillow's ``verify``), an image
without its mask, a mask whose size differs from its image's. When the decoded set fits in
``preload_bytes`` (2 GiB by default) it is decoded and resized once, at build time, and held
in memory, so any decoding error is found then; a larger set is read from disk sample by
sample, after the header checks.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnzoo.data.in_memory import InMemoryDataset, channel_mean_std, resize_image, resize_mask
from cnnzoo.data.spec import DataSpec
from cnnzoo.images.read import IMAGE_SUFFIXES, MASK_SUFFIXES, image_header, read_image, read_mask

__all__ = ["IGNORE_INDEX", "PRELOAD_BYTES", "VAL_FRACTION", "FolderDataset", "load_folder"]

VAL_FRACTION = 0.2
IGNORE_INDEX = 255
MASKS_SAMPLED = 32  # masks read at build time of a large set with classes.txt (the rest when read)
PRELOAD_BYTES = 2 * 2**30
# Images sampled (seeded) to estimate mean and std when the set is read from disk.
STATS_SAMPLE = 500


@dataclass
class _Item:
    image: Path
    target: int | Path  # class index, or the mask file
    size: tuple[int, int] = (0, 0)
    channels: int = 1
    wide: bool = False  # more than 8 bits per value (16-bit or float)


def load_folder(root: str | os.PathLike, *, image_size: int | tuple[int, int] | None = None,
                train_size: int | None = None, val_size: int | None = None, seed: int = 0,
                val_fraction: float = VAL_FRACTION, preload_bytes: int = PRELOAD_BYTES) -> DataSpec:
    """The data set in folder ``root`` (layouts in the module docstring) as a :class:`DataSpec`.

    ``train_size`` / ``val_size`` keep a seeded random subset of that many images of each
    split; ``seed`` also draws the validation split when ``root`` is not already split.
    """
    root = _check_root(root)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    layout = _read_layout(root)
    train, val = layout.train, layout.val
    if val is None:
        train, val = _split(train, val_fraction, seed, stratify=not layout.segmentation)
    rng = np.random.default_rng(seed)
    train, val = _subset(train, train_size, rng, "train_size"), _subset(val, val_size, rng, "val_size")
    if not val:
        raise ValueError(f"{root / 'val'} holds no images")
    for item in train + val:
        _check_item(item)
    channels = 3 if any(item.channels == 3 for item in train + val) else 1
    size = _image_size(image_size, train)
    wide = any(item.wide for item in train + val)
    bytes_per_sample = size[0] * size[1] * (channels * (4 if wide else 1) + (8 if layout.segmentation else 0))
    in_memory = (len(train) + len(val)) * bytes_per_sample <= preload_bytes
    build = _in_memory_splits if in_memory else _on_disk_splits
    train_set, val_set, class_names = build(layout, train, val, channels, size, wide)
    mean, std = (channel_mean_std(train_set.images) if in_memory else _sampled_mean_std(train_set, seed))
    segmentation = layout.segmentation
    return DataSpec(
        name=root.resolve().name, task="segmentation" if segmentation else "classification",
        num_classes=len(class_names), in_chans=channels, class_names=list(class_names), image_size=size,
        mean=mean, std=std, train=train_set, val=val_set, ignore_index=IGNORE_INDEX if segmentation else None,
        source=str(root.resolve()),
        extra={"layout": "train/val" if layout.val is not None else f"split: val_fraction={val_fraction}, seed={seed}",
               "in_memory": in_memory, "train_files": len(train), "val_files": len(val)},
    )


@dataclass
class _Layout:
    root: Path
    segmentation: bool
    class_names: list[str] | None  # classification: the folders; segmentation: classes.txt or None
    train: list[_Item]
    val: list[_Item] | None  # None: not split on disk


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data folder not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{root} is a file; give a folder of images (see docs/data.md for the layouts)")
    return root


def _read_layout(root: Path) -> _Layout:
    train_dir, val_dir = _split_dirs(root)
    segmentation = _is_segmentation(train_dir)
    if val_dir is not None and _is_segmentation(val_dir) != segmentation:
        raise ValueError(f"{train_dir} and {val_dir} have different layouts: both need images/ and masks/ "
                         "(segmentation) or both class folders (classification)")
    if segmentation:
        train = _segmentation_items(train_dir)
        val = _segmentation_items(val_dir) if val_dir is not None else None
        return _Layout(root, True, _read_class_names(root), train, val)
    class_names = _class_folders(train_dir)
    train = _classification_items(train_dir, class_names, every_class=True)
    val = _classification_items(val_dir, class_names, every_class=False) if val_dir is not None else None
    return _Layout(root, False, class_names, train, val)


def _in_memory_splits(layout: _Layout, train: list[_Item], val: list[_Item], channels: int,
                      size: tuple[int, int], wide: bool) -> tuple[InMemoryDataset, InMemoryDataset, list[str]]:
    """Every file decoded and resized now (so a bad file is found now), held in memory."""
    train_set = _decode(train, channels, size, wide, layout.segmentation)
    val_set = _decode(val, channels, size, wide, layout.segmentation)
    if not layout.segmentation:
        return train_set, val_set, layout.class_names
    masks = [(mask, item.target) for dataset, items in ((train_set, train), (val_set, val))
             for mask, item in zip(dataset.targets, items)]
    return train_set, val_set, _segmentation_class_names(layout.class_names, _mask_labels(masks), layout.root)


def _on_disk_splits(layout: _Layout, train: list[_Item], val: list[_Item], channels: int,
                    size: tuple[int, int], wide: bool) -> tuple[FolderDataset, FolderDataset, list[str]]:
    """Samples read from disk when asked for. Without classes.txt the number of classes needs
    every mask read once now (their labels are checked then); with it, each mask is checked
    when it is read."""
    class_names = layout.class_names
    if layout.segmentation and class_names is None:
        masks = ((read_mask(item.target), item.target) for item in train + val)
        class_names = _segmentation_class_names(None, _mask_labels(masks), layout.root)
    elif layout.segmentation:  # each mask is checked when read; a few now, for black-and-white masks
        items = train + val
        sample = items[:: max(1, len(items) // MASKS_SAMPLED)]
        _check_not_0_255(_mask_labels((read_mask(item.target), item.target) for item in sample), layout.root)
    num_classes = len(class_names) if layout.segmentation else None
    return (FolderDataset(train, channels, size, num_classes), FolderDataset(val, channels, size, num_classes),
            class_names)


class FolderDataset(Dataset):
    """Samples read from disk one by one, for sets too large to hold decoded in memory.

    Every file was header-checked when the set was built; a file that still fails to
    decode raises a ``ValueError`` naming it.
    """

    def __init__(self, items: list[_Item], channels: int, image_size: tuple[int, int],
                 num_classes: int | None = None) -> None:
        self.items = items
        self.channels = channels
        self.image_size = image_size
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        image = resize_image(read_image(item.image, channels=self.channels), self.image_size)
        if isinstance(item.target, int):
            return {"image": image, "target": torch.tensor(item.target, dtype=torch.int64)}
        mask = read_mask(item.target)
        _check_mask_labels(mask, self.num_classes, item.target)
        return {"image": image, "target": resize_mask(mask, self.image_size)}


def _split_dirs(root: Path) -> tuple[Path, Path | None]:
    train, val = root / "train", root / "val"
    if train.is_dir() and val.is_dir():
        return train, val
    if train.is_dir() or val.is_dir():
        have, missing = (train, val) if train.is_dir() else (val, train)
        raise ValueError(f"{root} has {have.name}/ but no {missing.name}/: give both train/ and val/, or neither "
                         f"(then a fraction of the images becomes the validation split)")
    return root, None


def _is_segmentation(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def _class_folders(folder: Path) -> list[str]:
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ValueError(f"{folder} holds no class folders: a classification set is root/<class>/<images> "
                         "(a segmentation set root/images/ + root/masks/); see docs/data.md")
    return names


def _image_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in suffixes)


def _classification_items(folder: Path, class_names: list[str], every_class: bool) -> list[_Item]:
    """(file, class index) of every image under ``folder/<class>/``; ``every_class``: each class needs an image."""
    unknown = sorted(set(_class_folders(folder)) - set(class_names))
    if unknown:
        raise ValueError(f"{folder} has class folders {unknown} that the training split does not have")
    items = []
    for index, name in enumerate(class_names):
        files = _image_files(folder / name) if (folder / name).is_dir() else []
        if not files and every_class:
            raise ValueError(f"class folder {folder / name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        items += [_Item(path, index) for path in files]
    return items


def _segmentation_items(folder: Path) -> list[_Item]:
    images = _image_files(folder / "images")
    if not images:
        raise ValueError(f"{folder / 'images'} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    _refuse_duplicate_stems(images, folder / "images")
    masks: dict[str, Path] = {}
    for path in _image_files(folder / "masks"):  # lossless files first, so a lossy one is kept only when alone
        if path.stem not in masks or _lossless_rank(path) < _lossless_rank(masks[path.stem]):
            masks[path.stem] = path
    items = []
    for image in images:
        mask = masks.get(image.stem)
        if mask is None:
            raise ValueError(f"image {image} has no mask: expected {folder / 'masks' / image.stem}.png")
        if mask.suffix.lower() not in MASK_SUFFIXES:
            raise ValueError(f"mask {mask} (for {image}) is in a lossy format; save masks as PNG "
                             f"({', '.join(MASK_SUFFIXES)})")
        items.append(_Item(image, mask))
    return items


def _lossless_rank(path: Path) -> int:
    suffix = path.suffix.lower()
    return MASK_SUFFIXES.index(suffix) if suffix in MASK_SUFFIXES else len(MASK_SUFFIXES)


def _refuse_duplicate_stems(files: list[Path], folder: Path) -> None:
    stems = Counter(path.stem for path in files)
    twice = sorted(stem for stem, count in stems.items() if count > 1)
    if twice:
        raise ValueError(f"{folder} has several images named {twice[0]!r} (different suffixes): "
                         "each image needs a unique name to find its mask")


def _split(items: list[_Item], fraction: float, seed: int, stratify: bool) -> tuple[list[_Item], list[_Item]]:
    """(train, val): ``fraction`` of each class (of all items without ``stratify``) drawn for val, seeded."""
    if len(items) < 2:
        raise ValueError(f"cannot split {len(items)} image(s) into a training and a validation split; "
                         "add images, or give train/ and val/ folders")
    rng = np.random.default_rng(seed)
    groups: dict[int, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(item.target if stratify else 0, []).append(position)
    chosen: set[int] = set()
    for members in groups.values():
        count = min(int(round(fraction * len(members))), len(members) - 1)
        chosen.update(rng.permutation(members)[:count].tolist())
    if not chosen:  # tiny sets: still keep one validation image, from the largest group
        largest = max(groups.values(), key=len)
        chosen.add(int(rng.choice(largest)))
    train = [item for position, item in enumerate(items) if position not in chosen]
    val = [item for position, item in enumerate(items) if position in chosen]
    return train, val


def _subset(items: list[_Item], size: int | None, rng: np.random.Generator, name: str) -> list[_Item]:
    if size is None:
        return items
    if size < 1:
        raise ValueError(f"{name} must be at least 1, got {size}")
    if size >= len(items):
        return items
    keep = np.sort(rng.choice(len(items), size=size, replace=False))
    return [items[position] for position in keep]


def _check_item(item: _Item) -> None:
    item.size, item.channels, mode = image_header(item.image)
    item.wide = mode.startswith("I") or mode == "F"
    if isinstance(item.target, Path):
        mask_size, _, _ = image_header(item.target)
        if mask_size != item.size:
            raise ValueError(f"mask {item.target} is {mask_size[1]}x{mask_size[0]} (WxH) but its image {item.image} "
                             f"is {item.size[1]}x{item.size[0]}: a mask must have its image's size")


def _image_size(image_size: int | tuple[int, int] | None, train: list[_Item]) -> tuple[int, int]:
    if image_size is None:
        return Counter(item.size for item in train).most_common(1)[0][0]
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(int(side) != side or side < 1 for side in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size}")
    return int(size[0]), int(size[1])


def _decode(items: list[_Item], channels: int, size: tuple[int, int], wide: bool,
            segmentation: bool) -> InMemoryDataset:
    """Every image (and mask) decoded, resized and stacked: uint8 images unless some file is 16-bit or float."""
    images = torch.empty(len(items), channels, *size, dtype=torch.float32 if wide else torch.uint8)
    targets = torch.empty((len(items), *size) if segmentation else (len(items),), dtype=torch.int64)
    for position, item in enumerate(items):
        image = resize_image(read_image(item.image, channels=channels), size)
        # + 0.5 then truncation rounds these non-negative values (torch's round_ is oddly
        # slow on a busy machine, tens of ms per image, through its thread pool).
        images[position] = image if wide else image.mul(255.0).add_(0.5).to(torch.uint8)
        targets[position] = resize_mask(read_mask(item.target), size) if segmentation else item.target
    if segmentation and len(items) and int(targets.max()) < 256:
        targets = targets.to(torch.uint8)  # an eighth of the memory; the dataset hands out int64
    return InMemoryDataset(images, targets)


def _mask_labels(masks) -> dict[int, Path]:
    """Each label found in the (mask, file) pairs (255 included) -> the first file holding it."""
    found: dict[int, Path] = {}
    for mask, path in masks:
        for label in torch.unique(mask).tolist():
            found.setdefault(int(label), path)
    return found


def _check_not_0_255(labels: dict[int, Path], root: Path) -> None:
    """Refuse masks that hold only 0 and 255: saved as black and white, every foreground
    pixel would be the ignore label and the run would learn nothing from it."""
    if IGNORE_INDEX in labels and set(labels) == {0, IGNORE_INDEX}:
        raise ValueError(f"the masks under {root} hold only 0 and 255 (e.g. {labels[IGNORE_INDEX]}): 255 is the "
                         "ignore label, so every foreground pixel would be ignored; save the foreground as 1 "
                         "(a black-and-white mask divided by 255), classes 0..N-1, and 255 only where unlabelled")


def _read_class_names(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while names and not names[-1]:
        names.pop()
    if len(names) < 2 or not all(names):
        raise ValueError(f"{path} must list at least two class names, one per line (line i = class i), "
                         "with no blank lines between them")
    return names


def _segmentation_class_names(class_names: list[str] | None, labels: dict[int, Path], root: Path) -> list[str]:
    _check_not_0_255(labels, root)
    labels = {label: path for label, path in labels.items() if label != IGNORE_INDEX}
    if class_names is not None:
        too_high = sorted(label for label in labels if label >= len(class_names))
        if too_high:
            raise ValueError(f"mask {labels[too_high[0]]} holds label {too_high[0]} but {root / 'classes.txt'} "
                             f"names only {len(class_names)} classes (0..{len(class_names) - 1}; 255 = ignore)")
        return class_names
    num_classes = max(labels, default=0) + 1
    if num_classes < 2:
        raise ValueError(f"the masks under {root} hold only label 0 (and 255 = ignore): a segmentation set "
                         "needs at least two classes; list them in classes.txt")
    return [f"class{index}" for index in range(num_classes)]


def _check_mask_labels(mask: torch.Tensor, num_classes: int | None, path: Path) -> None:
    if num_classes is None:
        return
    bad = mask[(mask >= num_classes) & (mask != IGNORE_INDEX)]
    if len(bad):
        raise ValueError(f"mask {path} holds label {int(bad.max())} but the set has {num_classes} classes "
                         f"(0..{num_classes - 1}; 255 = ignore)")


def _sampled_mean_std(dataset: FolderDataset, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    rng = np.random.default_rng(seed)
    count = min(len(dataset), STATS_SAMPLE)
    picks = np.sort(rng.choice(len(dataset), size=count, replace=False))
    items = [dataset.items[int(index)] for index in picks]
    return channel_mean_std(torch.stack([resize_image(read_image(item.image, channels=dataset.channels),
                                                      dataset.image_size) for item in items]))
