"""Fashion-MNIST: the IDX reader, the search for the files, and the real files when installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnzoo.data import fashion_mnist as fm
from cnnzoo.data import load_fashion_mnist

# The IDX type codes of the format's description (yann.lecun.com/exdb/mnist).
TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand: magic (0, 0, type, ndim), big-endian sizes, big-endian values."""
    code = TYPE_CODES[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


def small_set(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Neither $CNNZOO_DATA nor the system folder: only what a test puts there is found."""
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    return tmp_path


@pytest.mark.parametrize("dtype", list(TYPE_CODES))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 8
    values = fm.read_idx(write_idx(tmp_path / f"a-idx3-ubyte{suffix}", array))
    assert values.dtype == np.dtype(dtype) and values.dtype.isnative
    np.testing.assert_array_equal(values, array)


def test_read_idx_one_dimension(tmp_path):
    labels = np.array([9, 0, 0, 3, 0, 2], dtype=np.uint8)
    np.testing.assert_array_equal(fm.read_idx(write_idx(tmp_path / "l-idx1-ubyte", labels)), labels)


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"\x01\x00" + data[2:], "magic number"),          # not starting with two zero bytes
    (lambda data: data[:2] + b"\x07" + data[3:], "magic number"),   # unknown type code
    (lambda data: data[:3] + b"\x00" + data[4:], "magic number"),   # zero dimensions
    (lambda data: data[:10], "truncated"),                          # header cut
    (lambda data: data[:-5], "truncated"),                          # values cut
    (lambda data: data + b"\x00", "longer than its header"),
    (lambda data: data[:2], "only 2 bytes"),
])
def test_read_idx_rejects_malformed_files(tmp_path, damage, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(damage(idx_bytes(small_set(3)[0])))
    with pytest.raises(ValueError, match=message) as error:
        fm.read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_rejects_a_broken_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(small_set(3)[0]))[:-30])
    with pytest.raises(ValueError, match="gzip") as error:
        fm.read_idx(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("gz", [True, False])
def test_load_reads_both_splits(no_system_data, gz):
    folder = no_system_data / "fm"
    train, test = small_set(7, seed=1), small_set(4, seed=2)
    write_split(folder, "train", *train, gz=gz)
    write_split(folder, "t10k", *test, gz=gz)
    for split, (images, labels) in (("train", train), ("test", test), ("val", test)):
        got_images, got_labels = load_fashion_mnist(split, folder)
        assert got_images.dtype == np.uint8 and got_images.shape == (len(images), 28, 28)
        assert got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)


def test_search_order_data_dir_then_env_then_system(no_system_data, monkeypatch):
    sizes = {"given": 3, "env": 4, "system": 5}
    for name, count in sizes.items():
        write_split(no_system_data / name, "train", *small_set(count))
    write_split(no_system_data / "system", "train", *small_set(sizes["system"]))
    monkeypatch.setenv("CNNZOO_DATA", str(no_system_data / "env"))
    assert len(load_fashion_mnist("train", no_system_data / "given")[0]) == 3
    assert len(load_fashion_mnist("train")[0]) == 4
    # A data_dir without the files: the search goes on to the next place.
    assert len(load_fashion_mnist("train", no_system_data / "empty")[0]) == 4
    monkeypatch.delenv("CNNZOO_DATA")
    assert len(load_fashion_mnist("train")[0]) == 5


def test_fashion_mnist_subfolder_is_searched(no_system_data, monkeypatch):
    write_split(no_system_data / "root" / "fashion-mnist", "t10k", *small_set(6), gz=False)
    assert len(load_fashion_mnist("test", no_system_data / "root")[0]) == 6
    monkeypatch.setenv("CNNZOO_DATA", str(no_system_data / "root"))
    assert len(load_fashion_mnist("test")[0]) == 6


def test_missing_data_is_one_clear_error(no_system_data, monkeypatch):
    monkeypatch.setenv("CNNZOO_DATA", str(no_system_data / "env"))
    with pytest.raises(FileNotFoundError) as error:
        load_fashion_mnist("train", no_system_data / "given")
    message = str(error.value)
    for folder in ("given", "given/fashion-mnist", "env", "env/fashion-mnist", "system"):
        assert str(no_system_data / folder) in message
    for advice in ("apt install dataset-fashion-mnist", "github.com/zalandoresearch/fashion-mnist", "--data-dir",
                   "CNNZOO_DATA", "train-images-idx3-ubyte"):
        assert advice in message


def test_only_one_split_present_is_missing_data(no_system_data):
    write_split(no_system_data / "fm", "train", *small_set(3))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_fashion_mnist("test", no_system_data / "fm")


def test_inconsistent_files_are_refused(no_system_data):
    folder = no_system_data / "fm"
    images, labels = small_set(5)
    write_split(folder, "train", images, labels[:4])
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_fashion_mnist("train", folder)
    write_split(folder, "train", images, np.array([0, 1, 2, 3, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="label 10"):
        load_fashion_mnist("train", folder)
    write_split(folder, "train", images[:, :27], labels)
    with pytest.raises(ValueError, match="28x28"):
        load_fashion_mnist("train", folder)


def test_unknown_split(no_system_data):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


def test_class_names_are_zalandos():
    # github.com/zalandoresearch/fashion-mnist README, "Labels" table, labels 0-9.
    assert fm.CLASS_NAMES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _real_data_or_skip() -> None:
    try:
        fm.find_fashion_mnist("train")
        fm.find_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt install dataset-fashion-mnist)")


@pytest.mark.realdata
def test_real_files_counts_and_class_balance():
    _real_data_or_skip()
    train_images, train_labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    # Xiao et al. 2017 / the Zalando README: 60,000 training and 10,000 test images, 28x28,
    # 10 classes of 7,000 images each (6,000 train + 1,000 test).
    assert train_images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_labels, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(np.concatenate([train_labels, test_labels])), [7000] * 10)


@pytest.mark.realdata
def test_real_training_statistics_match_the_quoted_ones():
    _real_data_or_skip()
    # From the histogram of the 8-bit values: exact, and far faster than float arrays.
    counts = np.bincount(load_fashion_mnist("train")[0].ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    # The commonly quoted normalization of Fashion-MNIST: mean 0.2860, std 0.3530.
    assert mean == pytest.approx(0.2860, abs=5e-5)
    assert std == pytest.approx(0.3530, abs=5e-5)
    assert (fm.MEAN, fm.STD) == (0.2860, 0.3530)
