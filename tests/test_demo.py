"""The demo's pieces at a tiny budget (the real demo trains for about three minutes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import demo
from cnnzoo.engine.tiling import WHOLE_IMAGE_MAX_PIXELS


def test_plan_budget_by_hand():
    # 0.25 s per training image, 100 of them and 30 validation images (a third each):
    # 25 + 2.5 + 2 s overhead = 29.5 s per epoch; 120 s hold 4 epochs.
    assert demo.plan_budget(120, 0.25, 100, 30) == (4, 100)
    # 20 s hold no epoch of 100: one epoch of (20 - 2) / 0.25 - 10 = 62 images.
    assert demo.plan_budget(20, 0.25, 100, 30) == (1, 62)
    # Less than the overhead: the smallest training set still trains.
    assert demo.plan_budget(1, 0.25, 100, 30) == (1, 32)


def test_seconds_per_image_is_measured():
    seconds = demo.seconds_per_image("resnet20", {}, (1, 8, 8), 10, batch_size=4, task="classification", steps=1)
    assert 0 < seconds < 5


class Images(torch.utils.data.Dataset):
    def __init__(self, count):
        self.images = [torch.full((3, 4, 4), i / 10) for i in range(count)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index]}


def test_write_sample_images_and_their_mosaic(tmp_path):
    folder = demo.write_sample_images(Images(3), tmp_path / "imgs", count=2, mosaic=2)
    assert sorted(p.name for p in folder.iterdir()) == ["mosaic.png", "sample0.png", "sample1.png"]
    np.testing.assert_array_equal(np.array(Image.open(folder / "sample1.png")), np.full((4, 4, 3), 26))  # 0.1 * 255
    mosaic = np.array(Image.open(folder / "mosaic.png"))
    assert mosaic.shape == (8, 8, 3)
    # Row-major, images 0, 1 / 2, 0 (the three images repeat): top-right is image 1, bottom-left image 2.
    assert mosaic[0, 4, 0] == 26 and mosaic[4, 0, 0] == 51 and mosaic[4, 4, 0] == 0


@pytest.mark.slow
def test_segmentation_demo_trains_evaluates_and_predicts(tmp_path, capsys):
    run_dir = demo.segmentation_demo(tmp_path, seconds=1, train_size=32, val_size=8, image_size=32)
    out = capsys.readouterr().out
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "plots" / "curves.png").is_file()
    assert "$ cnnzoo train unet --data shapes" in out and "$ cnnzoo evaluate" in out and "miou" in out
    predictions = tmp_path / "unet-predictions"
    names = sorted(p.name for p in predictions.iterdir())
    assert names == sorted([f"sample{i}_{kind}.png" for i in range(4) for kind in ("mask", "overlay")]
                           + ["mosaic_mask.png", "mosaic_overlay.png"])
    side = (int(WHOLE_IMAGE_MAX_PIXELS ** 0.5) // 32 + 1) * 32
    with Image.open(predictions / "mosaic_mask.png") as mask:
        assert mask.size == (side, side) and mask.mode == "P"
    mosaic_row = next(line for line in out.splitlines() if "mosaic.png" in line)
    assert "tiles" in mosaic_row  # larger than the whole-image limit


@pytest.mark.slow
@pytest.mark.realdata
def test_classification_demo_when_fashion_mnist_is_present(tmp_path, capsys):
    missing = demo.fashion_mnist_missing()
    if missing:
        pytest.skip(missing)
    run_dir = demo.classification_demo(tmp_path, seconds=1, train_size=64, val_size=32)
    out = capsys.readouterr().out
    assert (run_dir / "best.safetensors").is_file()
    assert (tmp_path / "resnet20-fashion-mnist.onnx").is_file() and "onnxruntime agrees" in out
    assert (tmp_path / "resnet20-predictions" / "predictions.json").is_file()
