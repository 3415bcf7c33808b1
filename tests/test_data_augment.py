"""Batch augmentation: masks and weight maps move with their images, labels stay labels."""

from __future__ import annotations

import pytest
import torch

from cnnzoo.data import build_augment
from cnnzoo.data.augment import LEVELS


def blocky_batch(count: int = 4, size: int = 48, seed: int = 0) -> dict:
    """Binary images of 6x6-pixel blocks, their mask (label 3 where the image is 1, else 0)
    and a weight map that is the image itself: each is a function of the others."""
    generator = torch.Generator().manual_seed(seed)
    blocks = (torch.rand(count, 1, size // 6, size // 6, generator=generator) > 0.5).float()
    binary = blocks.repeat_interleave(6, 2).repeat_interleave(6, 3)
    return {"image": binary.repeat(1, 3, 1, 1), "target": binary[:, 0].long() * 3, "weight": binary[:, 0] * 2.0,
            "name": "kept"}


def edge_pixels(mask: torch.Tensor) -> torch.Tensor:
    """Pixels with a differently labelled 8-neighbour (where interpolation may disagree)."""
    padded = torch.nn.functional.pad(mask[:, None].float(), (1, 1, 1, 1), mode="replicate")
    high = torch.nn.functional.max_pool2d(padded, 3, stride=1)[:, 0]
    low = -torch.nn.functional.max_pool2d(-padded, 3, stride=1)[:, 0]
    return high != low


@pytest.mark.parametrize("level", ["light", "default", "strong"])
def test_masks_follow_their_images(level):
    torch.manual_seed(0)
    batch = blocky_batch()
    out = build_augment("segmentation", (48, 48), level)(batch)
    image, mask, weight = out["image"], out["target"], out["weight"]
    assert image.shape == batch["image"].shape and image.dtype == torch.float32
    assert mask.shape == batch["target"].shape and mask.dtype == torch.int64
    assert weight.shape == batch["weight"].shape and weight.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0, 3}  # no label invented by interpolation
    assert set(weight.unique().tolist()) <= {0.0, 2.0}  # nearest neighbour for the weights too
    assert out["name"] == "kept"
    assert not torch.equal(mask, batch["target"])  # something happened
    seen = image[:, 0] > 0.5
    inner = ~edge_pixels(mask)
    # Away from block edges the image, its mask and its weights agree exactly.
    assert torch.equal(seen[inner], mask[inner] == 3)
    assert torch.equal(seen[inner], weight[inner] == 2.0)
    assert (seen == (mask == 3)).float().mean() > 0.97
    if level == "light":  # flips only: exact everywhere
        assert torch.equal(seen, mask == 3)


def test_photometric_changes_touch_the_image_only():
    torch.manual_seed(1)
    batch = blocky_batch(count=8)
    out = build_augment("segmentation", (48, 48), "default")(batch)
    ones = out["image"][:, 0][out["target"] == 3]
    assert ones.min() < 0.999  # brightness / contrast moved some white pixels
    assert 0 <= out["image"].min() and out["image"].max() <= 1


def test_ignore_label_survives():
    torch.manual_seed(2)
    batch = blocky_batch()
    batch["target"] = torch.where(batch["target"] == 3, torch.tensor(255), batch["target"])
    out = build_augment("segmentation", (48, 48), "strong")(batch)
    assert set(out["target"].unique().tolist()) <= {0, 255}


def test_same_seed_same_output():
    batch = blocky_batch()
    augment = build_augment("segmentation", (48, 48), "default")
    torch.manual_seed(7)
    first = augment(batch)
    torch.manual_seed(7)
    second = augment(batch)
    torch.manual_seed(8)
    third = augment(batch)
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["target"], second["target"])
    assert not torch.equal(first["image"], third["image"])


def test_none_is_identity():
    batch = blocky_batch()
    for task in ("classification", "segmentation"):
        out = build_augment(task, (48, 48), "none")(batch)
        assert out is batch or all(out[key] is batch[key] for key in batch)


def test_classification_crop_and_flip():
    torch.manual_seed(3)
    images = torch.rand(64, 1, 28, 28)
    labels = torch.arange(64)
    out = build_augment("classification", (28, 28))({"image": images, "target": labels})
    assert out["image"].shape == (64, 1, 28, 28) and torch.equal(out["target"], labels)
    # Each output is the input shifted by at most 1/8 of the side (4 px at 28, padded with
    # zeros), possibly mirrored: find the shift that explains it.
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    explained = 0
    for index in range(64):
        result = out["image"][index]
        for candidate in (padded[index], padded[index].flip(-1)):
            for dy in range(9):
                for dx in range(9):
                    if torch.allclose(candidate[:, dy:dy + 28, dx:dx + 28], result, atol=1e-5):
                        explained += 1
                        break
                else:
                    continue
                break
            else:
                continue
            break
    assert explained == 64


def test_works_on_the_batch_device_and_dtype():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in blocky_batch().items()}
    out = build_augment("segmentation", (48, 48))(batch)
    assert out["image"].device == batch["image"].device and out["target"].device == batch["target"].device
    assert out["weight"].device == batch["weight"].device


def test_non_square_images_keep_their_shape():
    torch.manual_seed(4)
    batch = blocky_batch(size=48)
    batch = {key: value[..., :30] if torch.is_tensor(value) else value for key, value in batch.items()}
    out = build_augment("segmentation", (48, 30), "strong")(batch)
    assert out["image"].shape == (4, 3, 48, 30) and out["target"].shape == (4, 48, 30)


def test_without_weights_and_bad_arguments():
    batch = blocky_batch()
    del batch["weight"]
    assert "weight" not in build_augment("segmentation", (48, 48))(batch)
    with pytest.raises(ValueError, match="level"):
        build_augment("segmentation", (48, 48), "extreme")
    with pytest.raises(ValueError, match="task"):
        build_augment("detection", (48, 48))
    with pytest.raises(ValueError, match="N x C x H x W"):
        build_augment("segmentation", (48, 48))({"image": torch.rand(3, 48, 48), "target": torch.zeros(48, 48)})
    assert LEVELS == ("none", "light", "default", "strong")
