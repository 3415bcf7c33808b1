"""What a data set hands to the engine: its task, its classes, its splits.

Every data set, built-in or read from disk, is described by one :class:`DataSpec`. Its
``train`` and ``val`` datasets yield dicts:

- ``"image"``: float32 tensor ``C x H x W`` with values in [0, 1] (not yet normalized:
  the engine normalizes with ``mean`` / ``std`` on the training device);
- ``"target"``: int64 class index (scalar tensor) for classification, int64 ``H x W``
  class map for segmentation (``ignore_index`` marks unlabelled pixels), the image itself
  (float32 ``C x H x W``) for reconstruction (:mod:`cnnzoo.data.reconstruction`);
- ``"weight"`` (segmentation sets that have instance maps, e.g. ``cells``): float32
  ``H x W`` per-pixel loss weights (the U-Net weight map).

Every sample of one split has the same size, so the default collate stacks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch.utils.data import Dataset

__all__ = ["DENSE_TASKS", "SPLITS", "DataSpec", "Task"]

Task = Literal["classification", "segmentation", "reconstruction"]
# The tasks whose target is a map at the image's size (a class per pixel, or the image
# itself), from networks that take any size from their minimum: segmenters and auto-encoders.
DENSE_TASKS = ("segmentation", "reconstruction")
SPLITS = ("val", "train")  # the two splits of every data set, validation first (what is scored by default)


@dataclass
class DataSpec:
    """A data set ready for training: two splits and what the model needs to know."""

    name: str
    task: Task
    num_classes: int
    in_chans: int
    class_names: list[str]
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: Dataset
    val: Dataset
    ignore_index: int | None = None
    # Where the data came from (a path, or "built-in, seed 0"), for the run's config.
    source: str = ""
    extra: dict = field(default_factory=dict)
