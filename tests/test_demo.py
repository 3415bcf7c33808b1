"""The demo's pieces at a tiny budget (the real demo trains for about three minutes)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import demo
from cnnzoo.engine.tiling import WHOLE_IMAGE_MAX_PIXELS
from cnnzoo.images.write import class_palette
from cnnzoo.utils.cpu import has_native_bf16


def test_plan_budget_by_hand():
    # 0.25 s per training image, 100 of them and 30 validation images (a third each):
    # 25 + 2.5 + 2 s overhead = 29.5 s per epoch; 120 s hold 4 epochs.
    assert demo.plan_budget(120, 0.25, 100, 30) == (4, 100)
    # 20 s hold no epoch of 100: one epoch of (20 - 2) / 0.25 - 10 = 62 images.
    assert demo.plan_budget(20, 0.25, 100, 30) == (1, 62)
    # Less than the overhead: the smallest training set still trains.
    assert demo.plan_budget(1, 0.25, 100, 30) == (1, 32)


def test_measure_training_picks_a_thread_count_and_precision():
    before = torch.get_num_threads()
    try:
        per_image, threads, amp = demo.measure_training("resnet20", {}, (1, 8, 8), 10, batch_size=4,
                                                        task="classification")
        assert threads in (1, os.cpu_count()) and torch.get_num_threads() == threads  # left set for the run
    finally:
        torch.set_num_threads(before)
    assert 0 < per_image < 5
    assert amp == ("bf16" if has_native_bf16() else "none")


def test_the_scene_score_by_hand():
    from cnnzoo.classical.metrics import score_segmentation  # what the demo scores its scene with

    truth = np.array([[0, 0, 1, 1]])
    predicted = np.array([[0, 1, 1, 1]])
    # class 0: 1 pixel in both, 2 in either; class 1: 2 in both, 3 in either; class 2 in neither.
    ious = list(score_segmentation(truth, predicted, 3).iou)
    assert ious[:2] == [0.5, pytest.approx(2 / 3)] and np.isnan(ious[2])


def test_side_by_side_shows_image_truth_and_prediction():
    image = np.full((2, 3, 3), 7, dtype=np.uint8)
    truth, predicted = np.zeros((2, 3), dtype=int), np.ones((2, 3), dtype=int)
    picture = demo.side_by_side(image, truth, predicted, 2, gap=1)
    assert picture.shape == (2, 11, 3)
    np.testing.assert_array_equal(picture[:, :3], image)
    np.testing.assert_array_equal(picture[:, 3], 255)
    np.testing.assert_array_equal(picture[0, 4], [0, 0, 0])  # background black
    np.testing.assert_array_equal(picture[0, 8], class_palette(2)[1])


class Images(torch.utils.data.Dataset):
    def __init__(self, count):
        self.images = [torch.full((3, 4, 4), i / 10) for i in range(count)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index]}


def test_write_sample_images(tmp_path):
    folder = demo.write_sample_images(Images(3), tmp_path / "imgs", count=2)
    assert sorted(p.name for p in folder.iterdir()) == ["sample0.png", "sample1.png"]
    np.testing.assert_array_equal(np.array(Image.open(folder / "sample1.png")), np.full((4, 4, 3), 26))  # 0.1 * 255


def test_the_scene_goes_through_tiles():
    assert demo.SCENE_SIZE[0] * demo.SCENE_SIZE[1] > WHOLE_IMAGE_MAX_PIXELS


@pytest.mark.slow
def test_segmentation_demo_trains_evaluates_and_predicts(tmp_path, capsys):
    run_dir = demo.segmentation_demo(tmp_path, seconds=1, train_size=32, val_size=8, image_size=32,
                                     scene_size=(544, 512))
    out = capsys.readouterr().out
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "plots" / "curves.png").is_file()
    assert "$ cnnzoo train unet --data shapes" in out and "$ cnnzoo evaluate" in out and "miou" in out
    predictions = tmp_path / "unet-predictions"
    names = sorted(p.name for p in predictions.iterdir())
    assert names == sorted([f"{name}_{kind}.png" for name in ("sample0", "sample1", "sample2", "sample3", "scene")
                            for kind in ("mask", "overlay")])
    with Image.open(predictions / "scene_mask.png") as mask:
        assert mask.size == (512, 544) and mask.mode == "P"
    scene_row = next(line for line in out.splitlines() if "scene.png" in line)
    assert "tiles" in scene_row  # larger than the whole-image limit
    assert "the scene against its drawn truth: background IoU" in out
    with Image.open(tmp_path / "scene-truth-vs-prediction.png") as comparison:
        assert comparison.size == (3 * 512 + 16, 544)


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
