"""Image files and folders of images: every kind of file, both layouts, and every user error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.data import IMAGE_SUFFIXES, build_data, read_image, read_mask
from cnnzoo.data.folders import load_folder
from cnnzoo.images.read import check_image_file

RNG = np.random.default_rng(0)


def save(path: Path, array: np.ndarray, mode: str | None = None, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette is not None:
        picture.putpalette(palette)
    picture.save(path)
    return path


def colour_palette(entries: int) -> list[int]:
    return RNG.integers(0, 256, (entries, 3)).ravel().tolist()


# ----------------------------------------------------------------------------- files


def test_suffixes_cover_the_common_formats():
    for suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        assert suffix in IMAGE_SUFFIXES


def test_gray_and_rgb_are_divided_by_255(tmp_path):
    gray = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = read_image(save(tmp_path / "g.png", gray))
    assert image.dtype == torch.float32 and image.shape == (1, 5, 7)
    np.testing.assert_allclose(image[0].numpy(), gray / 255.0, rtol=0, atol=1e-7)
    image = read_image(save(tmp_path / "c.png", rgb))
    assert image.shape == (3, 5, 7)
    np.testing.assert_allclose(image.numpy(), rgb.transpose(2, 0, 1) / 255.0, rtol=0, atol=1e-7)


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgba = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent: the stored colour is still what is read
    image = read_image(save(tmp_path / "a.png", rgba, "RGBA"))
    np.testing.assert_allclose(image.numpy(), rgba[..., :3].transpose(2, 0, 1) / 255.0, atol=1e-7)


def test_sixteen_bit_is_divided_by_65535(tmp_path):
    values = np.array([[0, 1, 257], [32768, 65534, 65535]], dtype=np.uint16)
    image = read_image(save(tmp_path / "deep.png", values))
    assert image.shape == (1, 2, 3)
    np.testing.assert_allclose(image[0].numpy(), values / 65535.0, rtol=1e-6)


def test_palette_images_give_their_colours(tmp_path):
    indices = RNG.integers(0, 4, (5, 5), dtype=np.uint8)
    palette = colour_palette(4)
    image = read_image(save(tmp_path / "p.png", indices, "P", palette))
    expected = np.asarray(palette, dtype=np.float64).reshape(4, 3)[indices] / 255.0
    assert image.shape == (3, 5, 5)
    np.testing.assert_allclose(image.numpy(), expected.transpose(2, 0, 1), atol=1e-7)


def test_a_palette_of_grays_is_one_channel(tmp_path):
    indices = RNG.integers(0, 3, (4, 4), dtype=np.uint8)
    levels = [10, 128, 250]
    image = read_image(save(tmp_path / "pg.png", indices, "P", [v for level in levels for v in (level,) * 3]))
    assert image.shape == (1, 4, 4)
    np.testing.assert_allclose(image[0].numpy(), np.array(levels)[indices] / 255.0, atol=1e-7)


def test_one_bit_images(tmp_path):
    bits = np.eye(4, dtype=bool)
    image = read_image(save(tmp_path / "b.png", bits))
    np.testing.assert_array_equal(image[0].numpy(), bits.astype(np.float32))


def test_channel_conversion(tmp_path):
    gray = RNG.integers(0, 256, (3, 3), dtype=np.uint8)
    three = read_image(save(tmp_path / "g.png", gray), channels=3)
    assert three.shape == (3, 3, 3) and torch.equal(three[0], three[2])
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    # ITU-R 601 luma of pure red: 0.299.
    assert read_image(save(tmp_path / "r.png", rgb), channels=1)[0, 0, 0].item() == pytest.approx(0.299, abs=1e-6)


def test_jpeg_is_read_approximately(tmp_path):
    flat = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    image = read_image(save(tmp_path / "j.jpg", flat))
    np.testing.assert_allclose(image.mean(dim=(1, 2)).numpy(), np.array([200, 40, 90]) / 255.0, atol=0.02)


def test_masks_are_indices_not_colours(tmp_path):
    labels = RNG.integers(0, 3, (6, 6), dtype=np.uint8)
    labels[0, 0] = 255
    mask = read_mask(save(tmp_path / "m.png", labels, "P", colour_palette(256)))
    assert mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), labels)
    np.testing.assert_array_equal(read_mask(save(tmp_path / "l.png", labels)).numpy(), labels)
    deep = np.array([[0, 300], [1000, 2]], dtype=np.uint16)
    np.testing.assert_array_equal(read_mask(save(tmp_path / "d.png", deep)).numpy(), deep)


def test_colour_masks_are_refused(tmp_path):
    path = save(tmp_path / "m.png", np.zeros((3, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="not a class mask") as error:
        read_mask(path)
    assert str(path) in str(error.value)


def truncated_png(path: Path) -> Path:
    save(path, RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_unreadable_files_name_themselves(tmp_path):
    broken = truncated_png(tmp_path / "broken.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path in (broken, text):
        for read in (read_image, read_mask, check_image_file):
            with pytest.raises(ValueError) as error:
                read(path)
            assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_truncated_jpeg_is_found_by_the_header_check(tmp_path):
    path = save(tmp_path / "j.jpg", RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert check_image_file(path) == ((32, 32), 3)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="truncated") as error:
        check_image_file(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- classification folders


def class_folder(root: Path, per_class: int = 5, classes=("cat", "dog", "emu"), size=(6, 8)) -> Path:
    """Images whose gray value encodes their class (class index * 60 + 20), so a sample shows its label."""
    for index, name in enumerate(classes):
        for number in range(per_class):
            save(root / name / f"{number}.png", np.full(size, index * 60 + 20, dtype=np.uint8))
    return root


def image_class(image: torch.Tensor) -> int:
    return round((image.mean().item() * 255 - 20) / 60)


def test_classification_folder_split_by_fraction(tmp_path):
    spec = load_folder(class_folder(tmp_path / "set", per_class=10), seed=3)
    assert spec.task == "classification" and spec.class_names == ["cat", "dog", "emu"]
    assert spec.num_classes == 3 and spec.in_chans == 1 and spec.image_size == (6, 8)
    assert (len(spec.train), len(spec.val)) == (24, 6)
    val_labels = [int(spec.val[i]["target"]) for i in range(len(spec.val))]
    assert sorted(val_labels) == [0, 0, 1, 1, 2, 2]  # stratified: 20 % of each class
    for dataset in (spec.train, spec.val):
        for i in range(len(dataset)):
            sample = dataset[i]
            assert sample["image"].dtype == torch.float32 and sample["target"].dtype == torch.int64
            assert image_class(sample["image"]) == int(sample["target"])
    assert spec.ignore_index is None


def test_split_is_seeded(tmp_path):
    root = tmp_path / "set"
    for index in range(20):  # distinct images, so a split shows which files it holds
        save(root / "a" / f"{index}.png", np.full((4, 4), index * 10, dtype=np.uint8))
        save(root / "b" / f"{index}.png", np.full((4, 4), index * 10 + 5, dtype=np.uint8))

    def val_values(seed):
        spec = load_folder(root, seed=seed)
        return sorted(round(spec.val[i]["image"][0, 0, 0].item() * 255) for i in range(len(spec.val)))

    assert val_values(0) == val_values(0)
    assert val_values(0) != val_values(1)


def test_train_val_layout_is_used_as_is(tmp_path):
    root = tmp_path / "set"
    class_folder(root / "train", per_class=3)
    class_folder(root / "val", per_class=2, classes=("cat", "emu"))  # a class may lack val images
    spec = build_data(str(root))
    assert (len(spec.train), len(spec.val)) == (9, 4)
    assert sorted(int(spec.val[i]["target"]) for i in range(4)) == [0, 0, 2, 2]
    assert spec.extra["layout"] == "train/val"


def test_val_class_unknown_to_train_is_an_error(tmp_path):
    root = tmp_path / "set"
    class_folder(root / "train", classes=("cat",))
    class_folder(root / "val", classes=("cat", "dog"))
    with pytest.raises(ValueError, match="dog"):
        load_folder(root)


def test_train_without_val_is_an_error(tmp_path):
    class_folder(tmp_path / "set" / "train")
    with pytest.raises(ValueError, match="no val/"):
        load_folder(tmp_path / "set")


def test_mixed_channels_become_rgb_and_sizes_the_most_common(tmp_path):
    root = tmp_path / "set"
    save(root / "a" / "0.png", np.full((6, 6), 100, dtype=np.uint8))
    save(root / "a" / "1.png", np.full((6, 6), 100, dtype=np.uint8))
    save(root / "b" / "0.png", np.full((6, 6, 3), (255, 0, 0), dtype=np.uint8))
    save(root / "b" / "1.png", np.full((12, 10, 3), (0, 255, 0), dtype=np.uint8))
    save(root / "b" / "2.png", np.full((6, 6, 4), (0, 0, 255, 0), dtype=np.uint8), "RGBA")
    spec = load_folder(root, val_fraction=0.5)
    assert spec.in_chans == 3 and spec.image_size == (6, 6)
    colours = {tuple(np.round(s["image"][:, 0, 0].numpy() * 255).astype(int)) for s in
               [spec.train[i] for i in range(len(spec.train))] + [spec.val[i] for i in range(len(spec.val))]}
    assert colours == {(100, 100, 100), (255, 0, 0), (0, 255, 0), (0, 0, 255)}
    for dataset in (spec.train, spec.val):
        assert all(dataset[i]["image"].shape == (3, 6, 6) for i in range(len(dataset)))


def test_given_image_size_resizes_bilinear(tmp_path):
    root = tmp_path / "set"
    ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))  # 8x8, columns 0..224
    for name in ("a", "b"):
        save(root / name / "0.png", ramp)
        save(root / name / "1.png", ramp)
    spec = load_folder(root, image_size=(4, 4))
    image = spec.train[0]["image"][0]
    assert image.shape == (4, 4)
    # Pillow's antialiased bilinear (a triangle filter stretched by the scale factor):
    # interior pixels are the ramp at their centre, 80 and 144.
    expected = np.asarray(Image.fromarray(ramp).resize((4, 4), Image.BILINEAR), dtype=np.float64)
    np.testing.assert_allclose(image.numpy() * 255, expected, atol=1.0)
    np.testing.assert_allclose(image[0, 1:3].numpy() * 255, [80, 144], atol=0.5)


def test_sixteen_bit_folder_keeps_its_precision(tmp_path):
    root = tmp_path / "set"
    values = np.array([[1, 65535], [257, 30000]], dtype=np.uint16)
    for name in ("a", "b"):
        save(root / name / "0.png", values)
        save(root / name / "1.png", values)
    spec = load_folder(root)
    np.testing.assert_allclose(spec.train[0]["image"][0].numpy(), values / 65535.0, rtol=1e-6)


def test_mean_and_std_are_the_training_pixels(tmp_path):
    root = tmp_path / "set"
    for name, level in (("a", 0), ("b", 255)):
        for index in range(5):
            save(root / name / f"{index}.png", np.full((2, 2), level, dtype=np.uint8))
    spec = load_folder(root)
    pixels = np.concatenate([spec.train[i]["image"].numpy().ravel() for i in range(len(spec.train))])
    assert len(spec.train) == 8 and pixels.size == 32
    assert spec.mean[0] == pytest.approx(pixels.mean()) and spec.mean[0] == pytest.approx(0.5)
    assert spec.std[0] == pytest.approx(pixels.std()) and spec.std[0] == pytest.approx(0.5)


def test_train_and_val_sizes_keep_subsets(tmp_path):
    spec = load_folder(class_folder(tmp_path / "set", per_class=10), train_size=5, val_size=2)
    assert (len(spec.train), len(spec.val)) == (5, 2)
    with pytest.raises(ValueError, match="train_size"):
        load_folder(tmp_path / "set", train_size=0)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        load_folder(tmp_path / "empty")
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images") as error:
        load_folder(tmp_path / "hollow")
    assert str(tmp_path / "hollow" / "a") in str(error.value)
    with pytest.raises(FileNotFoundError):
        load_folder(tmp_path / "nowhere")


def test_a_bad_file_is_found_at_build_time(tmp_path):
    root = class_folder(tmp_path / "set")
    broken = truncated_png(root / "dog" / "9.png")
    for preload_bytes in (0, 2**30):  # read from disk later, or decoded now
        with pytest.raises(ValueError) as error:
            load_folder(root, preload_bytes=preload_bytes)
        assert str(broken) in str(error.value)


def test_disk_and_memory_give_the_same_samples(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b"):
        for index in range(4):
            save(root / name / f"{index}.png", RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    save(root / "a" / "big.png", RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8))
    in_memory = load_folder(root, seed=1)
    on_disk = load_folder(root, seed=1, preload_bytes=0)
    assert in_memory.extra["in_memory"] and not on_disk.extra["in_memory"]
    for first, second in ((in_memory.train, on_disk.train), (in_memory.val, on_disk.val)):
        assert len(first) == len(second)
        for i in range(len(first)):
            # Held in memory as 8 bits: equal to the float read up to the rounding.
            assert torch.allclose(first[i]["image"], second[i]["image"], atol=0.5 / 255 + 1e-6)
            assert first[i]["target"] == second[i]["target"]


# ----------------------------------------------------------------- segmentation folders


def seg_folder(root: Path, count: int = 5, size=(8, 10), labels=(0, 1, 2), palette=True) -> Path:
    """Images whose red channel is (label * 50 + 30): each image shows its own mask."""
    for index in range(count):
        mask = RNG.choice(labels, size=size).astype(np.uint8)
        image = np.zeros((*size, 3), dtype=np.uint8)
        image[..., 0] = np.where(mask == 255, 0, mask * 50 + 30)
        save(root / "images" / f"img{index}.png", image)
        if palette:
            save(root / "masks" / f"img{index}.png", mask, "P", colour_palette(256))
        else:
            save(root / "masks" / f"img{index}.png", mask)
    return root


def test_segmentation_folder(tmp_path):
    root = seg_folder(tmp_path / "seg", count=10, labels=(0, 1, 2, 255))
    spec = load_folder(root)
    assert spec.task == "segmentation" and spec.ignore_index == 255
    assert spec.num_classes == 3 and spec.class_names == ["class0", "class1", "class2"]  # max label + 1
    assert (len(spec.train), len(spec.val)) == (8, 2) and spec.in_chans == 3
    for dataset in (spec.train, spec.val):
        for i in range(len(dataset)):
            sample = dataset[i]
            mask = sample["target"]
            assert mask.dtype == torch.int64 and mask.shape == (8, 10)
            red = sample["image"][0] * 255
            labelled = mask != 255
            assert torch.equal(red[labelled].round(), (mask[labelled] * 50 + 30).float())


def test_jpeg_images_pair_with_png_masks(tmp_path):
    root = seg_folder(tmp_path / "seg", count=3)
    image = read_image(root / "images" / "img0.png")
    (root / "images" / "img0.png").unlink()
    save(root / "images" / "img0.jpg", np.round(image.numpy().transpose(1, 2, 0) * 255).astype(np.uint8))
    spec = load_folder(root)
    assert len(spec.train) + len(spec.val) == 3


def test_segmentation_train_val_layout_and_classes_file(tmp_path):
    root = tmp_path / "seg"
    seg_folder(root / "train", palette=False)
    seg_folder(root / "val", count=2, palette=False)
    (root / "classes.txt").write_text("sky\nroad\ncar\ntree\n")
    spec = build_data(str(root))
    assert spec.class_names == ["sky", "road", "car", "tree"] and spec.num_classes == 4
    assert (len(spec.train), len(spec.val)) == (5, 2)


def test_label_beyond_classes_file_names_the_mask(tmp_path):
    root = seg_folder(tmp_path / "seg", labels=(0, 1, 5))
    (root / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match="label 5") as error:
        load_folder(root)
    assert "masks" in str(error.value) and "classes.txt" in str(error.value)
    spec = load_folder(root, preload_bytes=0)  # from disk: found when the mask is read
    with pytest.raises(ValueError, match="label 5"):
        for i in range(len(spec.train)):
            spec.train[i]
        for i in range(len(spec.val)):
            spec.val[i]


@pytest.mark.parametrize("preload_bytes", [None, 0])
@pytest.mark.parametrize("classes_file", [True, False])
def test_black_and_white_masks_are_explained(tmp_path, preload_bytes, classes_file):
    root = seg_folder(tmp_path / "seg", labels=(0, 255), palette=False)  # foreground saved as 255
    if classes_file:
        (root / "classes.txt").write_text("background\nobject\n")
    options = {} if preload_bytes is None else {"preload_bytes": preload_bytes}
    with pytest.raises(ValueError, match=r"hold only 0 and 255 \(e.g. .*img\d.png\): 255 is the ignore label, so "
                                         r"every foreground pixel would be ignored; save the foreground as 1"):
        load_folder(root, **options)


def test_masks_with_classes_and_some_255_are_fine(tmp_path):
    spec = load_folder(seg_folder(tmp_path / "seg", labels=(0, 1, 255)))
    assert spec.num_classes == 2


def test_image_without_mask_names_both(tmp_path):
    root = seg_folder(tmp_path / "seg")
    (root / "masks" / "img3.png").unlink()
    with pytest.raises(ValueError, match="no mask") as error:
        load_folder(root)
    assert str(root / "images" / "img3.png") in str(error.value)
    assert str(root / "masks" / "img3") in str(error.value)


def test_mask_of_another_size_names_both(tmp_path):
    root = seg_folder(tmp_path / "seg")
    save(root / "masks" / "img2.png", np.zeros((8, 9), dtype=np.uint8))
    with pytest.raises(ValueError, match="size") as error:
        load_folder(root)
    assert str(root / "masks" / "img2.png") in str(error.value)
    assert str(root / "images" / "img2.png") in str(error.value)


def test_lossy_masks_and_ambiguous_names_are_refused(tmp_path):
    root = seg_folder(tmp_path / "seg", count=3)
    (root / "masks" / "img1.png").unlink()
    save(root / "masks" / "img1.jpg", np.zeros((8, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="lossy") as error:
        load_folder(root)
    assert str(root / "masks" / "img1.jpg") in str(error.value)
    root = seg_folder(tmp_path / "seg2", count=3)
    save(root / "images" / "img2.bmp", np.zeros((8, 10, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="img2"):
        load_folder(root)


def test_suffixes_are_matched_in_any_case(tmp_path):
    root = class_folder(tmp_path / "set", per_class=2)
    (root / "cat" / "0.png").rename(root / "cat" / "0.PNG")
    (root / "cat" / "notes.txt").write_text("not an image, not counted")
    spec = load_folder(root)
    assert len(spec.train) + len(spec.val) == 6


def test_only_background_needs_a_classes_file(tmp_path):
    with pytest.raises(ValueError, match="classes.txt"):
        load_folder(seg_folder(tmp_path / "seg", labels=(0,)))


def test_empty_images_folder(tmp_path):
    (tmp_path / "seg" / "images").mkdir(parents=True)
    (tmp_path / "seg" / "masks").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_folder(tmp_path / "seg")


def test_segmentation_resize_is_nearest_for_masks(tmp_path):
    root = seg_folder(tmp_path / "seg", count=4, size=(9, 13), labels=(0, 3, 7, 255))
    spec = load_folder(root, image_size=(20, 16))
    on_disk = load_folder(root, image_size=(20, 16), preload_bytes=0)
    for dataset in (spec.train, on_disk.train):
        for i in range(len(dataset)):
            mask = dataset[i]["target"]
            assert mask.shape == (20, 16) and set(mask.unique().tolist()) <= {0, 3, 7, 255}
    assert spec.num_classes == 8 and on_disk.num_classes == 8
    original = read_mask(root / "masks" / "img1.png")
    # Nearest neighbour at pixel centres: output (r, c) takes input (floor((r + .5) * 9 / 20), ...).
    rows = np.floor((np.arange(20) + 0.5) * 9 / 20).astype(int)
    cols = np.floor((np.arange(16) + 0.5) * 13 / 16).astype(int)
    from cnnzoo.data.in_memory import resize_mask
    np.testing.assert_array_equal(resize_mask(original, (20, 16)).numpy(), original.numpy()[np.ix_(rows, cols)])


def test_unknown_name_lists_the_builtins(tmp_path):
    with pytest.raises(ValueError) as error:
        build_data(str(tmp_path / "no-such-set"))
    message = str(error.value)
    for name in ("fashion-mnist", "shapes", "cells", "fashion-scenes", "no-such-set"):
        assert name in message
    with pytest.raises(ValueError, match="fashion-mnist"):
        build_data("fashion_mnist")


def test_relative_path_under_data_dir(tmp_path):
    class_folder(tmp_path / "sets" / "animals")
    assert build_data("animals", data_dir=tmp_path / "sets").class_names == ["cat", "dog", "emu"]
