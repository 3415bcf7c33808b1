"""Image and mask files in: one decoder for the networks, the classical methods and masks.

What each kind of file becomes as a network's input (:func:`read_image`, float32
``C x H x W`` in [0, 1]):

- grayscale (``L``), 1-bit (``1``): one channel, 8-bit values divided by 255;
- 16-bit grayscale (``I;16``; 32-bit ``I`` files holding 16-bit values): one channel,
  divided by 65535; a 32-bit integer file with values outside 0..65535 is refused;
- 32-bit float (``F``, e.g. float TIFF): one channel, taken as is when within [0, 1];
- RGB and the other colour modes (CMYK, YCbCr, ...): three channels;
- RGBA, LA, PA: the alpha channel is dropped (not composited onto a background): the
  colour under a transparent pixel is kept as it was stored;
- palette (``P``): the palette's colours, as one channel when every palette entry is a gray
  (R = G = B), else as three.

The classical methods take the stored values themselves (:func:`read_array`: uint8,
uint16, int32 or float32 NumPy arrays, HxW or HxWx3), since their thresholds are in the
image's units. Masks and label maps (:func:`read_mask`, :func:`read_label_map`) are the
stored values too: a palette PNG gives its indices (not its colours), an 8- or 16-bit
grayscale PNG its gray values; a colour (RGB) file is refused.

Any file Pillow cannot decode (not an image, truncated, corrupt, a decompression bomb)
raises one ``ValueError`` naming it; a missing file ``FileNotFoundError``.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "check_image_file",
    "image_channels",
    "image_header",
    "open_image",
    "read_array",
    "read_image",
    "read_label_map",
    "read_mask",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# Lossless formats only: a JPEG mask would hold labels blurred by compression.
MASK_SUFFIXES = (".png", ".bmp", ".gif", ".tif", ".tiff", ".pgm")

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_LABEL_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error,
                  Image.DecompressionBombError)


def open_image(path: str | os.PathLike) -> Image.Image:
    """The decoded Pillow image in ``path``; ``FileNotFoundError`` for a missing file and
    ``ValueError`` naming the file for a folder or anything Pillow cannot decode."""
    path = Path(path)
    _check_is_file(path)
    try:
        picture = Image.open(path)
        picture.load()
    except _DECODE_ERRORS as err:
        raise ValueError(f"cannot read {path} as an image: {err or type(err).__name__}") from None
    return picture


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """The image in ``path`` as a float32 ``C x H x W`` tensor in [0, 1] (see the module docstring).

    ``channels`` (1 or 3) converts: gray is repeated to three channels, colour becomes its
    luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B).
    """
    with open_image(path) as picture:
        values = _unit_values(picture, path)
    if channels is not None:
        values = _to_channels(values, channels)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))


def read_array(path: str | os.PathLike) -> np.ndarray:
    """The image in ``path`` as its stored values: an HxW (grayscale) or HxWx3 (colour) array.

    8-bit files give uint8, 16-bit grayscale uint16, 32-bit integer int32 and float files
    float32. Alpha is dropped and palette images are expanded to RGB.
    """
    with open_image(path) as picture:
        mode = picture.mode
        if mode in ("1", "LA"):
            picture = picture.convert("L")
        elif mode in ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            picture = picture.convert("RGB")
        values = np.array(picture)
    # Big-endian files (16-bit TIFF "I;16B") give ">u2": native order makes it the uint16 it is.
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def read_mask(path: str | os.PathLike) -> torch.Tensor:
    """The class map in ``path`` (palette indices or gray values) as an int64 ``H x W`` tensor."""
    return torch.from_numpy(_read_labels(path, "a class mask", "the class indices (255 = ignore)"))


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """A label map or class mask (palette, 8-bit or 16-bit grayscale PNG) as an HxW int64 array."""
    return _read_labels(path, "a label map", "the labels")


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


def _read_labels(path: str | os.PathLike, what: str, values: str) -> np.ndarray:
    """The stored values of a palette or grayscale file as int64; ``what`` and ``values``
    name the file's role in the message for a colour file."""
    with open_image(path) as picture:
        if picture.mode not in _LABEL_MODES:
            raise ValueError(f"{path} is a {picture.mode} image, not {what}: save it as a palette or grayscale "
                             f"PNG whose pixel values are {values}")
        return np.array(picture).astype(np.int64)


def _check_is_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file")


def _unit_values(picture: Image.Image, path: str | os.PathLike) -> np.ndarray:
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
