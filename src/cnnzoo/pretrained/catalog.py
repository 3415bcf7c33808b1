"""torchvision's published ImageNet-1k weights for the architectures cnnzoo shares with it:
where each file is, how its images were prepared, and what it scored.

The facts are in :mod:`cnnzoo.pretrained.catalog_data` (read from torchvision's weights
enums); the ImageNet-1k class names in ``imagenet_classes.txt`` beside this file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from cnnzoo.pretrained.catalog_data import DEFAULT, WEIGHTS

__all__ = [
    "BUILD_OPTIONS", "IMAGENET_MEAN", "IMAGENET_STD", "PublishedWeights", "imagenet_classes", "is_weights_name", "published_models",
    "published_weights",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Builder options torchvision sets when it loads these files: GoogLeNet and Inception v3 were
# trained (by Google) on inputs scaled to [-1, 1]; ``transform_input`` turns ImageNet-normalized
# inputs into those inside the model, so the published preprocessing stays ImageNet's.
BUILD_OPTIONS = {"googlenet": {"transform_input": True}, "inception_v3": {"transform_input": True}}
_NAME = re.compile(r"^(DEFAULT|[A-Z0-9]+(_[A-Z0-9]+)+)$")  # IMAGENET1K_V2, DEFAULT


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file of one architecture, with its metadata."""

    model: str
    name: str  # IMAGENET1K_V1, ...
    url: str
    resize_size: int
    crop_size: int
    interpolation: str
    acc1: float | None
    acc5: float | None
    num_params: int | None
    recipe: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def file_name(self) -> str:
        """The file name torch.hub stores it under: the URL's last part (``resnet50-0676ba61.pth``)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The SHA-256 prefix in the file name, as torch.hub checks it (``0676ba61``)."""
        match = re.search(r"-([a-f0-9]+)\.", self.file_name)
        return match.group(1) if match else ""

    @property
    def source(self) -> str:
        accuracy = f"top-1 {self.acc1} %, top-5 {self.acc5} % on ImageNet-1k val" if self.acc1 is not None else ""
        return f"torchvision {self.model} {self.name}: {accuracy} ({self.recipe})".replace(":  (", ": (")


def is_weights_name(text: str) -> bool:
    """Whether ``text`` reads as the name of published weights (``IMAGENET1K_V1``, ``DEFAULT``)
    rather than a path."""
    return bool(_NAME.match(text))


def published_weights(model: str) -> dict[str, PublishedWeights]:
    """The published weights of registered model ``model`` by name (``DEFAULT`` included,
    as torchvision aliases it); empty for an architecture torchvision does not publish."""
    entries = {name: PublishedWeights(model, name, **_fields(values)) for name, values in WEIGHTS.get(model, {}).items()}
    if model in DEFAULT and DEFAULT[model] in entries:
        entries["DEFAULT"] = entries[DEFAULT[model]]
    return entries


def published_models() -> list[str]:
    """The registered models torchvision publishes weights for, sorted."""
    return sorted(WEIGHTS)


def _fields(values: dict) -> dict:
    fields = {key: values.get(key) for key in ("url", "resize_size", "crop_size", "interpolation", "acc1", "acc5",
                                               "num_params")}
    fields["recipe"] = values.get("recipe", "")
    for key in ("mean", "std"):
        if key in values:
            fields[key] = tuple(values[key])
    return fields


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in class-index order (as torchvision lists them)."""
    text = resources.files("cnnzoo.pretrained").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)
