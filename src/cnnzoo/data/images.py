"""Image and mask files in, tensors out; a dataset over decoded images held in memory.

What each kind of file becomes (:func:`read_image`, float32 ``C x H x W`` in [0, 1]):

- grayscale (``L``), 1-bit (``1``): one channel, 8-bit values divided by 255;
- 16-bit grayscale (``I;16``; 32-bit ``I`` files holding 16-bit values): one channel,
  divided by 65535; a 32-bit integer file with values outside 0..65535 is refused;
- 32-bit float (``F``, e.g. float TIFF): one channel, taken as is when within [0, 1];
- RGB and the other colour modes (CMYK, YCbCr, ...): three channels;
- RGBA, LA, PA: the alpha channel is dropped (not composited onto a background): the
  colour under a transparent pixel is kept as it was stored;
- palette (``P``): the palette's colours, as one channel when every palette entry is a gray
  (R = G = B), else as three.

Masks (:func:`read_mask`, int64 ``H x W``) are the stored values themselves: a palette
PNG gives its indices (not its colours), an 8- or 16-bit grayscale PNG its gray values. A
colour (RGB) mask is refused: class maps must be saved as palette or grayscale images.

Any file Pillow cannot decode (not an image, truncated, corrupt) raises a ``ValueError``
naming it.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "InMemoryDataset",
    "channel_mean_std",
    "check_image_file",
    "image_header",
    "image_channels",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Lossless formats only: a JPEG mask would hold labels blurred by compression.
MASK_SUFFIXES = (".png", ".bmp", ".gif", ".tif", ".tiff", ".pgm")

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error,
                  Image.DecompressionBombError)


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """The image in ``path`` as a float32 ``C x H x W`` tensor in [0, 1] (see the module docstring).

    ``channels`` (1 or 3) converts: gray is repeated to three channels, colour becomes its
    luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B).
    """
    with _open(path) as picture:
        values = _image_values(picture, path)
    if channels is not None:
        values = _to_channels(values, channels)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """The class map in ``path`` (palette indices or gray values) as an int64 ``H x W`` tensor."""
    with _open(path) as picture:
        if picture.mode not in _MASK_MODES:
            raise ValueError(f"{path} is a {picture.mode} image, not a class mask: save masks as palette or "
                             "grayscale PNGs whose pixel values are the class indices (255 = ignore)")
        values = np.array(picture)
    return torch.from_numpy(values.astype(np.int64))


def image_channels(picture: Image.Image) -> int:
    """1 for a grayscale image (or a palette of grays), 3 for colour; from the header (and palette)."""
    if picture.mode in _GRAY_MODES:
        return 1
    if picture.mode in ("P", "PA"):
        palette = np.asarray(picture.getpalette("RGB") or [0, 0, 0]).reshape(-1, 3)
        return 1 if (palette == palette[:, :1]).all() else 3
    return 3


def check_image_file(path: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """``((height, width), channels)`` of an image file, after checking it without decoding it.

    Pillow's ``verify`` checks a PNG's chunk checksums (which finds truncated and corrupt
    files); a JPEG must end in its end-of-image marker. Raises ``ValueError`` naming the file.
    """
    size, channels, _ = image_header(path)
    return size, channels


def image_header(path: str | os.PathLike) -> tuple[tuple[int, int], int, str]:
    """``((height, width), channels, Pillow mode)`` of a checked image file (see :func:`check_image_file`)."""
    path = Path(path)
    _check_is_file(path)
    try:
        with Image.open(path) as picture:
            picture.verify()
        with Image.open(path) as picture:  # verify() leaves the file unusable: open again
            size = (picture.height, picture.width)
            channels = image_channels(picture)
            image_format, mode = picture.format, picture.mode
    except _DECODE_ERRORS as err:
        raise ValueError(f"cannot read {path} as an image: {err or type(err).__name__}") from None
    if image_format == "JPEG" and not _has_jpeg_end(path):
        raise ValueError(f"cannot read {path} as an image: the JPEG file is truncated (no end-of-image marker)")
    return size, channels, mode


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


def _open(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    _check_is_file(path)
    try:
        picture = Image.open(path)
        picture.load()
    except _DECODE_ERRORS as err:
        raise ValueError(f"cannot read {path} as an image: {err or type(err).__name__}") from None
    return picture


def _check_is_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file")


def _image_values(picture: Image.Image, path: str | os.PathLike) -> np.ndarray:
    """H x W x C float32 in [0, 1]."""
    mode = picture.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.array(picture).astype(np.float32)
        if mode == "I" and len(values) and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{path} is a 32-bit integer image with values {values.min():.0f}..{values.max():.0f}; "
                             "only 16-bit values (0..65535) can be scaled to [0, 1]")
        return (values / 65535.0)[..., None]
    if mode == "F":
        values = np.array(picture, dtype=np.float32)
        if len(values) and (values.min() < 0 or values.max() > 1):
            raise ValueError(f"{path} is a float image with values {values.min():g}..{values.max():g}; "
                             "float images must hold values in [0, 1]")
        return values[..., None]
    gray = image_channels(picture) == 1
    picture = picture.convert("L" if gray else "RGB")  # drops alpha, expands palettes
    values = np.asarray(picture, dtype=np.float32) / 255.0
    return values[..., None] if gray else values


def _to_channels(values: np.ndarray, channels: int) -> np.ndarray:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if values.shape[2] == channels:
        return values
    if channels == 3:
        return np.repeat(values, 3, axis=2)
    return (values @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def _has_jpeg_end(path: Path, tail: int = 4096) -> bool:
    """Whether the last bytes hold the JPEG end-of-image marker (some writers pad after it)."""
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - tail))
        return b"\xff\xd9" in stream.read()



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
