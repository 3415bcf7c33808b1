"""The built-in aerial scenes (cnnzoo.data.aerial, build_data("aerial"))."""

from __future__ import annotations

import pytest
import torch

from cnnzoo.data import DATASETS, build_data
from cnnzoo.data import aerial
from cnnzoo.data.aerial import AERIAL_CLASSES, make_aerial


def test_the_isprs_classes():
    # ISPRS 2D semantic labeling benchmark (Vaihingen / Potsdam), in its order.
    assert AERIAL_CLASSES == ("impervious surfaces", "building", "low vegetation", "tree", "car", "clutter")
    assert "aerial" in DATASETS


def test_deterministic_per_seed_and_split():
    first = make_aerial(6, 40, seed=3)
    fresh = aerial._cached.__wrapped__(6, (40, 40), 3, "train")  # drawn again, not from the cache
    assert torch.equal(first.images, fresh.images) and torch.equal(first.masks, fresh.masks)
    assert not torch.equal(first.images, make_aerial(6, 40, seed=4).images)
    assert not torch.equal(first.images, make_aerial(6, 40, seed=3, split="val").images)


def test_all_six_classes_in_a_small_draw_and_masks_in_range():
    drawn = make_aerial(8, 64, seed=0)
    assert drawn.images.shape == (8, 3, 64, 64) and drawn.images.dtype == torch.uint8
    assert drawn.masks.shape == (8, 64, 64) and int(drawn.masks.max()) < len(AERIAL_CLASSES)
    assert set(drawn.masks.unique().tolist()) == set(range(6))


def test_build_data_default_size_and_spec():
    spec = build_data("aerial", train_size=4, val_size=2, seed=0)
    sample = spec.val[1]
    assert spec.num_classes == 6 and spec.in_chans == 3 and spec.class_names == list(AERIAL_CLASSES)
    assert sample["image"].shape == (3, 128, 128) and sample["target"].shape == (128, 128)
    assert build_data("aerial", train_size=2, val_size=2, image_size=(32, 40)).train[0]["image"].shape == (3, 32, 40)


def test_too_small_a_canvas_is_refused():
    with pytest.raises(ValueError, match="at least 32x32"):
        make_aerial(2, 16)
