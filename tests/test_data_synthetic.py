"""The built-in drawn sets: reproducible, and their masks are what was drawn (checked independently)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.draw import polygon2mask

from cnnzoo.data import build_data
from cnnzoo.data import fashion_mnist as fm
from cnnzoo.data import synthetic
from cnnzoo.data.synthetic import make_cells, make_fashion_scenes, make_shapes, make_shapes_scene
from test_data_fashion_mnist import write_split


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test draws its sets itself, so "same seed, same set" compares two real draws."""
    synthetic._cached.cache_clear()
    yield
    synthetic._cached.cache_clear()


@pytest.mark.parametrize("make", [make_shapes, make_cells])
def test_same_seed_same_set_other_seed_other_set(make):
    first = make(20, (32, 32), seed=5)
    synthetic._cached.cache_clear()
    again = make(20, (32, 32), seed=5)
    assert first is not again
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    other = make(20, (32, 32), seed=6)
    assert not torch.equal(first.images, other.images)
    val = make(20, (32, 32), seed=5, split="val")
    assert not torch.equal(first.images, val.images)


@pytest.mark.parametrize("make", [make_shapes, make_cells])
def test_a_smaller_set_is_the_start_of_a_larger_one(make):
    small, large = make(10, (24, 24), seed=1), make(synthetic.CHUNK + 6, (24, 24), seed=1)
    assert torch.equal(small.images, large.images[:10]) and torch.equal(small.masks, large.masks[:10])


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        make_shapes(3, (4, 64))
    with pytest.raises(ValueError, match="positive"):
        make_shapes(0)
    with pytest.raises(ValueError, match="split"):
        make_cells(3, split="test")


# ----------------------------------------------------------------------------- shapes


def test_shapes_arrays():
    drawn = make_shapes(12, (40, 56), seed=2)
    assert drawn.images.shape == (12, 3, 40, 56) and drawn.images.dtype == torch.uint8
    assert drawn.masks.shape == (12, 40, 56) and drawn.masks.dtype == torch.uint8
    assert int(drawn.masks.max()) <= 4
    assert set(np.unique(drawn.params["kind"])) <= {0, 1, 2, 3, 4}
    # Every image holds at least one shape, and the four classes all occur.
    assert all((drawn.params["kind"][i] > 0).any() for i in range(12))
    assert set(drawn.masks.unique().tolist()) == {0, 1, 2, 3, 4}


def polygon_vertices(kind: int, cy: float, cx: float, size: float, angle: float) -> list[np.ndarray]:
    """The shape as polygons of (row, col) vertices, from its corners (not from its inequalities)."""

    def turn(points):  # (x, y) offsets turned by angle, then placed at the centre, as (row, col)
        points = np.asarray(points, dtype=float)
        x = points[:, 0] * math.cos(angle) - points[:, 1] * math.sin(angle)
        y = points[:, 0] * math.sin(angle) + points[:, 1] * math.cos(angle)
        return np.stack([cy + y, cx + x], axis=1)

    if kind == 2:
        return [turn([(-size, -size), (size, -size), (size, size), (-size, size)])]
    if kind == 3:
        return [turn([(size * math.cos(2 * math.pi * k / 3), size * math.sin(2 * math.pi * k / 3)) for k in range(3)])]
    arm = size / 3
    return [turn([(-size, -arm), (size, -arm), (size, arm), (-size, arm)]),
            turn([(-arm, -size), (arm, -size), (arm, size), (-arm, size)])]


def expected_shape_mask(params: dict, sample: int, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    mask = np.zeros(shape, dtype=np.uint8)
    for slot in range(params["kind"].shape[1]):
        kind = int(params["kind"][sample, slot])
        if kind == 0:
            continue
        cy, cx, size, angle = (float(params[key][sample, slot]) for key in ("cy", "cx", "size", "angle"))
        if kind == 1:
            inside = np.hypot(rows - cy, cols - cx) <= size
        else:
            inside = np.zeros(shape, dtype=bool)
            for polygon in polygon_vertices(kind, cy, cx, size, angle):
                inside |= polygon2mask(shape, polygon)
        mask[inside] = kind
    return mask


def test_shape_masks_are_the_drawn_geometry():
    drawn = make_shapes(24, (48, 48), seed=3)
    masks = drawn.masks.numpy()
    for sample in range(24):
        expected = expected_shape_mask(drawn.params, sample, (48, 48))
        wrong = expected != masks[sample]
        # Only pixels on an edge may differ (a point on a polygon's side is either side's).
        assert wrong.mean() < 0.02
        for row, col in zip(*np.nonzero(wrong)):
            around = expected[max(0, row - 1):row + 2, max(0, col - 1):col + 2]
            assert masks[sample, row, col] in around


def test_circle_pixels_lie_within_a_circle():
    drawn = make_shapes(32, (40, 40), seed=4)
    params = drawn.params
    for sample in range(32):
        circles = [(params["cy"][sample, k], params["cx"][sample, k], params["size"][sample, k])
                   for k in range(params["kind"].shape[1]) if params["kind"][sample, k] == 1]
        rows, cols = np.nonzero(drawn.masks[sample].numpy() == 1)
        for row, col in zip(rows, cols):
            assert any(math.hypot(row - cy, col - cx) <= r + 1e-4 for cy, cx, r in circles)


def test_the_last_shape_is_on_top():
    drawn = make_shapes(40, (32, 32), seed=9)
    checked = 0
    for sample in range(40):
        kinds = drawn.params["kind"][sample]
        last = int(np.nonzero(kinds)[0].max())
        cy, cx = (int(round(float(drawn.params[key][sample, last]))) for key in ("cy", "cx"))
        if kinds[last] in (1, 2, 4) and 0 <= cy < 32 and 0 <= cx < 32:  # these hold their centre
            assert drawn.masks[sample, cy, cx] == kinds[last]
            checked += 1
    assert checked > 10


def test_shapes_differ_from_their_background():
    drawn = make_shapes(16, (48, 48), seed=0)
    images, masks = drawn.images.float(), drawn.masks
    for sample in range(16):
        inside, outside = masks[sample] > 0, masks[sample] == 0
        if inside.sum() > 20 and outside.sum() > 20:
            gap = (images[sample][:, inside].mean(1) - images[sample][:, outside].mean(1)).norm()
            assert gap > 20  # 0..255 units: colours at least 0.3 apart, less texture and noise


def test_a_shapes_scene_looks_like_shapes_images_at_their_scale():
    image, mask = make_shapes_scene((160, 224), scale=32, seed=5)
    assert image.shape == (3, 160, 224) and image.dtype == np.uint8 and mask.shape == (160, 224)
    assert set(np.unique(mask)) == {0, 1, 2, 3, 4}
    again_image, again_mask = make_shapes_scene((160, 224), scale=32, seed=5)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert (make_shapes_scene((160, 224), scale=32, seed=6)[1] != mask).any()
    # Shapes as large as on a 32-pixel image: the typical shape (median connected region)
    # covers about as many pixels as one in 32 x 32 shapes images, not (224/32)^2 times more.
    from skimage.measure import label

    def region_sizes(masks):
        return np.concatenate([np.bincount(label(m > 0).ravel())[1:] for m in masks])

    ratio = np.median(region_sizes([mask])) / np.median(region_sizes(make_shapes(64, 32).masks.numpy()))
    assert 0.3 < ratio < 3
    # Its background is one colour (plus texture): no edges between tiles of different images.
    background = image[:, mask == 0].astype(float)
    assert background.std(axis=1).max() < 30


def test_a_shapes_scene_refuses_a_bad_scale():
    with pytest.raises(ValueError, match="scale must be an int of at least 8"):
        make_shapes_scene(64, scale=4)


# ------------------------------------------------------------------------------ cells


def test_cells_masks_instances_and_gaps():
    drawn = make_cells(16, (48, 40), seed=1)
    assert drawn.images.shape == (16, 1, 48, 40) and drawn.images.dtype == torch.uint8
    masks, instances = drawn.masks.numpy(), drawn.instances.numpy()
    assert set(np.unique(masks)) == {0, 1}
    np.testing.assert_array_equal(instances > 0, masks == 1)
    touching_gaps = 0
    for sample in range(16):
        ids = np.unique(instances[sample])
        np.testing.assert_array_equal(ids, np.arange(len(ids)))  # 0, then 1..n
        assert len(ids) > 3
        padded = np.pad(instances[sample], 1)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                neighbour = padded[1 + dy:49 + dy, 1 + dx:41 + dx]
                # No two cells touch, not even at a corner.
                clash = (instances[sample] > 0) & (neighbour > 0) & (neighbour != instances[sample])
                assert not clash.any()
        # Thin gaps: background pixels with different cells on opposite sides.
        left, right = padded[1:-1, :-2], padded[1:-1, 2:]
        touching_gaps += ((instances[sample] == 0) & (left > 0) & (right > 0) & (left != right)).sum()
    assert touching_gaps > 50


def test_cells_weight_maps_weigh_the_gaps():
    drawn = make_cells(8, (40, 40), seed=2)
    weights, instances = drawn.weights.numpy(), drawn.instances.numpy()
    assert weights.shape == (8, 40, 40) and weights.dtype == np.float32
    found = 0
    for sample in range(8):
        cells = instances[sample]
        background_weight = cells.size / (2 * (cells == 0).sum())  # w_c: both classes carry half the weight
        padded = np.pad(cells, 1)
        left, right = padded[1:-1, :-2], padded[1:-1, 2:]
        gap = (cells == 0) & (left > 0) & (right > 0) & (left != right)
        # U-Net eq. 2 with d1 = d2 = 1 (a cell on each side): w_c + 10 exp(-(1 + 1)^2 / (2 * 5^2)).
        expected = background_weight + 10 * math.exp(-4 / 50)
        np.testing.assert_allclose(weights[sample][gap], expected, rtol=1e-5)
        found += gap.sum()
    assert found > 20


def test_cells_look_like_their_masks():
    drawn = make_cells(8, (48, 48), seed=3)
    images, masks = drawn.images.float(), drawn.masks.bool()
    assert images[:, 0][masks].mean() > images[:, 0][~masks].mean() + 60  # bright cells, dark gaps and background


# --------------------------------------------------------------------- fashion-scenes


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """Ten fake garments per split: a block of value (100 + 10 * label) with a faint rim, train and test told apart."""
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "none")
    for prefix, offset in (("train", 0), ("t10k", 5)):
        labels = np.arange(10, dtype=np.uint8)
        garments = np.zeros((10, 28, 28), dtype=np.uint8)
        for label in labels:
            garments[label, 4:24, 6:22] = 100 + 10 * label + offset
            garments[label, 3, 6:22] = 10  # below the foreground level: transparent
        write_split(tmp_path / "fm", prefix, garments, labels)
    return tmp_path / "fm"


def test_fashion_scene_masks_follow_the_paste_order(tiny_fashion):
    drawn = make_fashion_scenes(20, (48, 64), seed=0, data_dir=tiny_fashion)
    garments, labels = fm.load_fashion_mnist("train", tiny_fashion)
    params, masks, images = drawn.params, drawn.masks.numpy(), drawn.images.numpy()
    assert images.shape == (20, 1, 48, 64) and masks.max() <= 10
    for sample in range(20):
        expected = np.zeros((48, 64), dtype=np.int64)
        for slot in range(params["index"].shape[1]):
            index = params["index"][sample, slot]
            if index < 0:
                continue
            top, left = params["top"][sample, slot], params["left"][sample, slot]
            window = expected[top:top + 28, left:left + 28]
            window[garments[index] >= synthetic.FOREGROUND_LEVEL] = labels[index] + 1
        np.testing.assert_array_equal(masks[sample], expected)
        labelled = masks[sample] > 0
        # Pasted pixels are the garment's own values: 100 + 10 * (class - 1).
        np.testing.assert_array_equal(images[sample, 0][labelled], 100 + 10 * (masks[sample][labelled] - 1))


def test_fashion_scene_val_comes_from_t10k(tiny_fashion):
    drawn = make_fashion_scenes(6, (32, 32), seed=0, split="val", data_dir=tiny_fashion)
    labelled = drawn.masks > 0
    values = drawn.images[:, 0][labelled].long()
    assert torch.equal(values, 105 + 10 * (drawn.masks[labelled].long() - 1))


def test_fashion_scenes_need_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        build_data("fashion-scenes", train_size=2, val_size=2)
    with pytest.raises(ValueError, match="28x28"):
        make_fashion_scenes(2, (20, 40), data_dir=tmp_path)


# -------------------------------------------------------------------------- build_data


@pytest.mark.parametrize("name, classes, channels", [("shapes", 5, 3), ("cells", 2, 1)])
def test_build_data_drawn_sets(name, classes, channels):
    spec = build_data(name, image_size=(32, 40), train_size=10, val_size=4, seed=3)
    assert spec.task == "segmentation" and spec.num_classes == classes == len(spec.class_names)
    assert spec.in_chans == channels and spec.image_size == (32, 40)
    assert (len(spec.train), len(spec.val)) == (10, 4)
    images = torch.stack([spec.train[i]["image"] for i in range(10)]).double()
    assert spec.mean == pytest.approx(images.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert spec.std == pytest.approx(images.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-6)
    sample = spec.val[0]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (channels, 32, 40)
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    assert sample["target"].dtype == torch.int64 and sample["target"].shape == (32, 40)
    assert ("weight" in sample) == (name == "cells")
    assert spec.source == "built-in, seed 3"


def test_build_data_fashion_scenes(tiny_fashion):
    spec = build_data("fashion-scenes", data_dir=str(tiny_fashion), train_size=5, val_size=3)
    assert spec.num_classes == 11 and spec.class_names[0] == "background"
    assert spec.class_names[1:] == list(fm.CLASS_NAMES)
    assert spec.train[0]["target"].max() <= 10


def test_build_data_fashion_mnist(tiny_fashion):
    spec = build_data("fashion-mnist", data_dir=tiny_fashion, train_size=4, val_size=3, seed=1)
    assert spec.task == "classification" and spec.num_classes == 10 and spec.in_chans == 1
    assert (len(spec.train), len(spec.val)) == (4, 3) and spec.image_size == (28, 28)
    assert spec.mean == (0.2860,) and spec.std == (0.3530,)
    for i in range(4):
        sample = spec.train[i]
        assert sample["image"].shape == (1, 28, 28) and sample["target"].dtype == torch.int64
        # The fake garment of label k has value 100 + 10 k in its block.
        assert round(sample["image"][0, 10, 10].item() * 255) == 100 + 10 * int(sample["target"])
    resized = build_data("fashion-mnist", data_dir=tiny_fashion, image_size=56, train_size=2, val_size=2)
    assert resized.train[0]["image"].shape == (1, 56, 56) and resized.image_size == (56, 56)
    with pytest.raises(ValueError, match="exceeds"):
        build_data("fashion-mnist", data_dir=tiny_fashion, train_size=11)


@pytest.mark.realdata
def test_fashion_scenes_on_the_real_files():
    try:
        fm.find_fashion_mnist("train")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    spec = build_data("fashion-scenes", train_size=64, val_size=16)
    masks = torch.stack([spec.train[i]["target"] for i in range(64)])
    assert masks.max() <= 10 and len(masks.unique()) > 5


def test_cells_compare_only_nearby_seeds_and_lose_nothing():
    # Brute force: every seed of the grid against every pixel, deepest ellipse wins.
    rng = np.random.default_rng(0)
    size = (37, 53)  # not a multiple of the seed spacing
    seeds = synthetic._cell_seeds(rng, 6, size)
    owner, distance = synthetic._cell_owners(seeds, size)
    rows, cols = np.mgrid[:size[0], :size[1]].astype(np.float32)
    flat = {key: value.reshape(6, -1)[:, :, None, None] for key, value in seeds.items()}
    every = synthetic.ellipse_distance(flat, rows, cols)  # 6 x seeds x H x W
    deepest = every.min(axis=1)
    expected = np.where(deepest < 1, every.argmin(axis=1) + 1, 0)
    np.testing.assert_array_equal(owner, expected)
    np.testing.assert_allclose(distance[owner > 0], deepest[owner > 0], rtol=1e-6)
