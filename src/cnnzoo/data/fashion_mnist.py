"""Fashion-MNIST, read from its four IDX files (Xiao, Rasul and Vollgraf 2017).

Fashion-MNIST: 70,000 grayscale 28x28 images of Zalando articles in 10 classes, 60,000 for
training (6,000 per class) and 10,000 for testing, stored in the IDX format of MNIST:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each possibly gzipped (``.gz``).

Where the files are looked for, in this order (the first folder holding both files of the
requested split wins):

1. the ``data_dir`` argument (the CLI's ``--data-dir``), itself or its ``fashion-mnist``
   subfolder;
2. ``$CNNZOO_DATA``, itself or its ``fashion-mnist`` subfolder;
3. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package).

The IDX format (Y. LeCun, http://yann.lecun.com/exdb/mnist/): a 4-byte magic number (two
zero bytes, a type code, the number of dimensions), one big-endian 32-bit size per
dimension, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "MEAN",
    "STD",
    "SYSTEM_DIR",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "read_idx",
]

# The label order of the Zalando README (github.com/zalandoresearch/fashion-mnist, "Labels").
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# Pixel statistics of the 60,000 training images scaled to [0, 1]: the commonly quoted
# 0.2860 / 0.3530, which tests/test_data_fashion_mnist.py recomputes from the real files
# (0.28604 and 0.35302).
MEAN = 0.2860
STD = 0.3530

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "CNNZOO_DATA"
SUBDIR = "fashion-mnist"

_SPLIT_PREFIX = {"train": "train", "val": "t10k", "test": "t10k", "t10k": "t10k"}

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_HOW_TO_GET = (
    "To get it: `apt install dataset-fashion-mnist` (Debian/Ubuntu, installs into "
    f"{SYSTEM_DIR}), or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
    "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion) into one folder "
    f"and pass it as --data-dir (data_dir=...) or set ${ENV_VAR} to it."
)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in one IDX file (gzipped when its name ends in ``.gz``), in native byte order.

    Raises ``ValueError`` naming the file when its header is malformed or its data does not
    match the sizes the header announces (a truncated download, an HTML error page).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path} is not an IDX file: it holds only {len(data)} bytes")
    zero1, zero2, type_code, ndim = data[:4]
    if zero1 != 0 or zero2 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path} is not an IDX file: its magic number is 0x{data[:4].hex()} (expected 0x0000TTDD "
                         f"with type code TT one of {', '.join(f'{c:02x}' for c in _IDX_DTYPES)} and DD dimensions)")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{path} is truncated: its header announces {ndim} dimensions but the file ends first")
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise ValueError(f"{path} is {problem}: shape {shape} of {dtype.name} needs {expected} bytes of data, "
                         f"found {found}")
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def find_fashion_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The (images, labels) files of ``split``, from the first folder of the search order holding both.

    Raises one ``FileNotFoundError`` listing every folder looked in and how to get the data.
    """
    prefix = _split_prefix(split)
    looked = []
    for folder in _search_folders(data_dir):
        looked.append(folder)
        images = _find_file(folder, f"{prefix}-images-idx3-ubyte")
        labels = _find_file(folder, f"{prefix}-labels-idx1-ubyte")
        if images is not None and labels is not None:
            return images, labels
    places = "\n".join(f"  - {folder}" for folder in looked)
    raise FileNotFoundError(
        f"Fashion-MNIST ({prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]) was not found. "
        f"Looked in:\n{places}\n{_HOW_TO_GET}"
    )


def load_fashion_mnist(split: str = "train",
                       data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The images (uint8, N x 28 x 28) and labels (int64, N) of ``split``: "train" or "test" (alias "val", "t10k").

    The files are found as :func:`find_fashion_mnist` says; both are checked (IDX header,
    sizes, 28x28 unsigned bytes, labels 0-9, as many labels as images).
    """
    images_path, labels_path = find_fashion_mnist(split, data_dir)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path} does not hold 28x28 unsigned-byte images: shape {images.shape}, "
                         f"dtype {images.dtype}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path} does not hold one unsigned-byte label per image: shape {labels.shape}, "
                         f"dtype {labels.dtype}")
    if len(labels) != len(images):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{labels_path} holds label {labels.max()}; Fashion-MNIST labels are 0-9")
    return images, labels.astype(np.int64)


def _split_prefix(split: str) -> str:
    try:
        return _SPLIT_PREFIX[split]
    except KeyError:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}: use 'train' or 'test' ('val')") from None


def _search_folders(data_dir: str | os.PathLike | None) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    folders = [folder for root in roots for folder in (root, root / SUBDIR)]
    folders.append(SYSTEM_DIR)
    return folders


def _find_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``; the uncompressed one first (faster to read).

    MNIST's own mirrors also spell the name with a dot (``train-images.idx3-ubyte``).
    """
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an IDX file") from None
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is not a valid gzip file ({err}); download it again") from None
