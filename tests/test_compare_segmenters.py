"""Classical methods and trained segmenters scored side by side (engine/compare.py, the
`cnnzoo compare-segmenters` command)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnzoo.classical.metrics import score_segmentation
from cnnzoo.cli.main import main
from cnnzoo.data import build_data
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.engine.compare import evaluate_trained, evaluation_pairs, tune_classical
from cnnzoo.registry import create_model


def halves(noise_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 32x32 image, dark left half (50) and bright right half (200), with +-5 noise; its mask."""
    rng = np.random.default_rng(noise_seed)
    image = np.full((32, 32), 50.0)
    image[:, 16:] = 200
    image = (image + rng.uniform(-5, 5, image.shape)).astype(np.uint8)
    mask = np.zeros((32, 32), dtype=np.int64)
    mask[:, 16:] = 1
    return image, mask


def test_tuning_picks_the_threshold_with_the_best_hungarian_iou():
    pairs = [halves(seed) for seed in range(2)]
    # A threshold of 1 grey level splits the noisy halves into many regions (Hungarian
    # matching leaves most unmatched); 60 keeps each half whole; 255 merges both halves.
    grid = {"region_growing": [{"threshold": 1}, {"threshold": 60}, {"threshold": 255}]}
    assert tune_classical(pairs, num_classes=2, grid=grid) == {"region_growing": {"threshold": 60}}


def test_pairs_are_the_validation_images_in_8_bit():
    spec = build_data("shapes", train_size=2, val_size=3, image_size=32)
    pairs = evaluation_pairs(spec, 3)
    assert len(pairs) == 3
    image, mask = pairs[0]
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3) and mask.shape == (32, 32)
    np.testing.assert_array_equal(image, (spec.val[0]["image"] * 255).round().byte().permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="classification data set"):
        evaluation_pairs(_classification_spec(), 1)


def _classification_spec():
    spec = build_data("shapes", train_size=1, val_size=1, image_size=32)
    spec.task = "classification"
    spec.name = "toy"
    return spec


def test_a_trained_segmenter_is_scored_on_its_own_classes(tmp_path):
    # A random padded U-Net saved as a run: its scores must be those of its argmax computed
    # here directly (normalize, forward, argmax), with the same metric definitions.
    torch.manual_seed(0)
    spec = build_data("shapes", train_size=2, val_size=4, image_size=32)
    options = {"padding": True, "depth": 2, "base_width": 4}
    model = create_model("unet", num_classes=spec.num_classes, in_chans=3, **options).eval()
    meta = dict(model="unet", model_kwargs=options, task="segmentation", num_classes=spec.num_classes, in_chans=3,
                class_names=spec.class_names, mean=list(spec.mean), std=list(spec.std), image_size=[32, 32],
                ignore_index=None, data="shapes", epoch=1, metrics={})
    save_checkpoint(tmp_path / "best", model, meta)
    pairs = evaluation_pairs(spec, 4)
    row = evaluate_trained(tmp_path, pairs, spec.num_classes)

    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    expected = None
    for image, mask in pairs:
        x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - mean) / std
        with torch.no_grad():
            labels = model(x).argmax(1)[0].numpy()
        scores = score_segmentation(mask, labels, spec.num_classes)
        expected = scores if expected is None else expected + scores
    np.testing.assert_array_equal(row.scores.confusion, expected.confusion)
    assert row.scores.mean_iou == pytest.approx(expected.mean_iou, nan_ok=True)
    assert row.num_images == 4 and row.matching == "none (classes)"
    with pytest.raises(ValueError, match="trained for 5 classes; the data set has 2"):
        evaluate_trained(tmp_path, pairs, 2)


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "table.md"
    code = main(["compare-segmenters", "--data", "cells", "--images", "2", "--tune-images", "1",
                 "--matching", "hungarian", "--out", str(out)])
    assert code == 0
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| region growing", "| kmeans", "| split and merge"]
    assert all(" hungarian | 2 | " in row for row in rows)
    assert table.strip() in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["compare-segmenters", "--data", "no-such-set"]) == 2
    assert main(["compare-segmenters", "--data", "cells", "--tune-images", "0"]) == 2
    assert main(["compare-segmenters", "--data", "cells", "--run", str(tmp_path / "missing")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("cnnzoo compare-segmenters: error:") for line in errors)


@pytest.mark.parametrize("count", ["0", "-3"])
def test_images_below_one_names_the_flag(capsys, count):
    assert main(["compare-segmenters", "--data", "cells", "--images", count]) == 2
    err = capsys.readouterr().err
    assert err == f"cnnzoo compare-segmenters: error: --images must be at least 1, got {count}\n"
