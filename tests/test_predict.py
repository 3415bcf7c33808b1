"""Prediction from a trained run: every expected value is computed here another way (the
image read with Pillow and NumPy, fed to the model directly; the whole image mirror-padded
with NumPy for the tiled path)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.segmentation import find_boundaries

import cnnzoo
from cnnzoo.images.write import class_palette
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.engine.predict import classify_images, find_images, predict, prepare_image, write_class_predictions
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.engine.tiling import segment_image

MEAN, STD = 0.4, 0.2


def make_run(folder, name, task, num_classes, in_chans, image_size, **kwargs):
    """A run directory with a ``best`` checkpoint of a seeded, untrained model."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs).eval()
    meta = {
        "model": name, "model_kwargs": kwargs, "task": task, "num_classes": num_classes, "in_chans": in_chans,
        "class_names": [f"class{i}" for i in range(num_classes)], "mean": [MEAN] * in_chans,
        "std": [STD] * in_chans, "image_size": list(image_size), "ignore_index": None, "data": "test",
        "epoch": 0, "metrics": {},
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best", model, meta)
    return model, RunMeta.from_dict(meta)


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def model_probabilities(model, pixels_hwc_uint8):
    x = (torch.from_numpy(pixels_hwc_uint8.astype(np.float32) / 255).permute(2, 0, 1)[None] - MEAN) / STD
    with torch.no_grad():
        return model(x).softmax(dim=1)[0].numpy()


@pytest.fixture()
def classifier_run(tmp_path):
    model, meta = make_run(tmp_path / "classifier", "resnet20", "classification", 4, 3, (16, 16))
    return tmp_path / "classifier", model, meta


# ------------------------------------------------------------------------ classification

def test_top_k_matches_the_model_on_the_same_pixels(classifier_run, tmp_path):
    run, model, _ = classifier_run
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = save_png(tmp_path / "in" / "a.png", pixels)
    result = predict(run, [image], top_k=3)
    (prediction,) = result.predictions
    expected = model_probabilities(model, pixels)
    order = np.argsort(-expected)[:3]
    assert prediction.indices == order.tolist()
    assert prediction.classes == [f"class{i}" for i in order]
    np.testing.assert_allclose(prediction.probabilities, expected[order], rtol=1e-5)
    assert result.files == []  # nothing written without --out


def test_gray_images_are_repeated_to_rgb_and_resized_to_the_training_size(classifier_run, tmp_path):
    run, model, _ = classifier_run
    # A constant gray image stays constant when resized (32 -> 16) and repeated to RGB.
    gray = save_png(tmp_path / "gray.png", np.full((32, 32), 150, dtype=np.uint8))
    (prediction,) = predict(run, [gray], top_k=4).predictions
    expected = model_probabilities(model, np.full((16, 16, 3), 150, dtype=np.uint8))
    np.testing.assert_allclose(np.array(prediction.probabilities), np.sort(expected)[::-1], rtol=1e-4)


def test_rgb_images_become_luma_for_a_gray_model(tmp_path):
    model, meta = make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (8, 8))
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 1] = 200  # pure green: luma = 0.587 * 200 (ITU-R 601)
    image = save_png(tmp_path / "green.png", colour)
    (prediction,) = classify_images(model, meta, [image], top_k=3)
    x = ((torch.full((1, 1, 8, 8), 0.587 * 200 / 255)) - MEAN) / STD
    with torch.no_grad():
        expected = model(x).softmax(dim=1)[0].numpy()
    np.testing.assert_allclose(prediction.probabilities, np.sort(expected)[::-1], rtol=1e-4)


def test_top_k_is_capped_at_the_number_of_classes(classifier_run, tmp_path):
    run, _, _ = classifier_run
    image = save_png(tmp_path / "a.png", np.zeros((16, 16, 3), dtype=np.uint8))
    (prediction,) = predict(run, [image], top_k=10).predictions
    assert sorted(prediction.indices) == [0, 1, 2, 3]
    assert sum(prediction.probabilities) == pytest.approx(1, abs=1e-5)


def test_json_and_csv_files_hold_the_predictions(classifier_run, tmp_path):
    run, _, _ = classifier_run
    rng = np.random.default_rng(1)
    for name in ("b.png", "a.png", "sub/c.jpg"):
        save_png(tmp_path / "in" / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    result = predict(run, [tmp_path / "in"], out=tmp_path / "out", top_k=2)
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())["predictions"]
    assert [p["image"] for p in saved] == [str(tmp_path / "in" / n) for n in ("a.png", "b.png", "sub/c.jpg")]
    for record, prediction in zip(saved, result.predictions):
        assert [t["class_index"] for t in record["top"]] == prediction.indices
        assert [t["probability"] for t in record["top"]] == pytest.approx(prediction.probabilities)
    write_class_predictions(result.predictions, tmp_path / "p.csv", "csv")
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 6 and rows[1]["rank"] == "2" and rows[1]["image"] == saved[0]["image"]
    assert rows[0]["class_name"] == saved[0]["top"][0]["class_name"]
    assert float(rows[0]["probability"]) == pytest.approx(saved[0]["top"][0]["probability"], rel=1e-5)


# -------------------------------------------------------------------------- segmentation

@pytest.fixture()
def segmenter_run(tmp_path):
    model, meta = make_run(tmp_path / "segmenter", "unet", "segmentation", 3, 3, (32, 32),
                           base_width=4, depth=2, padding=True, batch_norm=True)
    return tmp_path / "segmenter", model, meta


def model_labels(model, pixels_hwc_uint8):
    x = (torch.from_numpy(pixels_hwc_uint8.astype(np.float32) / 255).permute(2, 0, 1)[None] - MEAN) / STD
    with torch.no_grad():
        return model(x).argmax(dim=1)[0].numpy()


def test_masks_are_palette_pngs_of_the_model_argmax(segmenter_run, tmp_path):
    run, model, _ = segmenter_run
    pixels = np.random.default_rng(2).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    image = save_png(tmp_path / "in" / "scan.png", pixels)
    result = predict(run, [image], out=tmp_path / "out", overlay=True)
    (prediction,) = result.predictions
    with Image.open(tmp_path / "out" / "scan_mask.png") as mask:
        assert mask.mode == "P"
        labels = np.array(mask)
    np.testing.assert_array_equal(labels, model_labels(model, pixels))  # 24x36: the padded U-Net takes it whole
    assert not prediction.tiled and prediction.size == (24, 36)
    shares = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert prediction.class_fractions == {f"class{i}": pytest.approx(s) for i, s in enumerate(shares) if s}
    with Image.open(tmp_path / "out" / "scan_overlay.png") as overlay:
        assert overlay.size == (36, 24) and overlay.mode == "RGB"
        tinted = np.array(overlay).astype(float)
    # Region outlines are white; every other pixel is 0.55 * image + 0.45 * its class colour.
    outline = find_boundaries(labels, mode="inner", background=-1)
    blend = 0.55 * pixels + 0.45 * class_palette(3)[labels]  # the run's plots' colours: background black
    assert (tinted[outline] == 255).all()
    np.testing.assert_allclose(tinted[~outline], blend[~outline], atol=0.51)


def test_large_images_go_through_tiles(segmenter_run, tmp_path):
    run, _, _ = segmenter_run
    image = save_png(tmp_path / "big.png", np.zeros((40, 40, 3), dtype=np.uint8))
    result = predict(run, [image], out=tmp_path / "out", tile_size=16)
    assert result.predictions[0].tiled
    with Image.open(result.predictions[0].mask) as mask:
        assert mask.size == (40, 40)


def test_images_over_the_pixel_limit_are_tiled_without_being_asked(segmenter_run):
    _, model, _ = segmenter_run
    image = torch.randn(1, 3, 20, 24)
    assert segment_image(model, image)[1] is False  # 480 pixels, under the default limit
    labels, tiled = segment_image(model, image, max_pixels=20 * 24 - 1)
    assert tiled and labels.shape == (20, 24)


def test_tiled_prediction_of_a_valid_unet_equals_the_whole_mirrored_image():
    # The unpadded U-Net of depth 2 loses 20 pixels on each side (44 -> 4); predicted
    # tile by tile it must equal one pass over the whole image mirror-padded by 20 (NumPy's
    # "reflect", as the paper extrapolates the border) and padded to a size it takes.
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", num_classes=3, in_chans=1, base_width=4, depth=2).eval()
    image = torch.randn(1, 1, 30, 37)
    labels, tiled = segment_image(model, image, tile_size=52)  # 52 -> 12-pixel output tiles
    assert tiled and labels.shape == (30, 37)
    # Sides 20 + 30 + 22 = 72 (-> 32 output) and 20 + 37 + 23 = 80 (-> 40) are valid.
    padded = np.pad(image[0, 0].numpy(), ((20, 22), (20, 23)), mode="reflect")
    with torch.no_grad():
        logits = model(torch.from_numpy(padded)[None, None])
    np.testing.assert_array_equal(labels.numpy(), logits.argmax(dim=1)[0, :30, :37].numpy())


def test_a_size_the_model_cannot_take_is_mirror_padded_not_refused():
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", num_classes=2, in_chans=1, base_width=4, depth=2).eval()
    image = torch.randn(1, 1, 9, 13)  # far below the valid U-Net's 44-pixel minimum
    labels, tiled = segment_image(model, image)
    assert labels.shape == (9, 13) and not tiled


def test_output_names_keep_sub_folders_and_never_collide(segmenter_run, tmp_path):
    run, _, _ = segmenter_run
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    save_png(tmp_path / "in" / "x.png", pixels)
    save_png(tmp_path / "in" / "deep" / "x.png", pixels)
    loose = save_png(tmp_path / "other" / "x.png", pixels)
    predict(run, [tmp_path / "in", loose], out=tmp_path / "out")
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["deep/x_mask.png", "x-2_mask.png", "x_mask.png"]


# ------------------------------------------------------------------------------ bad input

def test_find_images_recurses_and_reports_what_is_missing(tmp_path):
    save_png(tmp_path / "f" / "b.PNG", np.zeros((4, 4), dtype=np.uint8))
    save_png(tmp_path / "f" / "s" / "a.jpg", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "f" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    assert find_images([tmp_path / "f"]) == [tmp_path / "f" / "b.PNG", tmp_path / "f" / "s" / "a.jpg"]
    with pytest.raises(ValueError, match=r"no images .* found in folder .*empty"):
        find_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="no such image file or folder: .*nothing"):
        find_images([tmp_path / "nothing"])


def test_an_unreadable_image_is_named_and_nothing_is_written(segmenter_run, tmp_path):
    run, _, _ = segmenter_run
    good = save_png(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    bad = tmp_path / "in" / "b.png"
    bad.write_bytes(good.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match="b.png"):
        predict(run, [tmp_path / "in"], out=tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.png"))


def test_options_that_do_not_fit_the_task_are_refused(classifier_run, segmenter_run, tmp_path):
    image = save_png(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    classifier, segmenter = classifier_run[0], segmenter_run[0]
    with pytest.raises(ValueError, match="tile size applies only to segmentation"):
        predict(classifier, [image], tile_size=64)
    with pytest.raises(ValueError, match="overlays apply only to segmentation"):
        predict(classifier, [image], overlay=True)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        predict(classifier, [image], top_k=0)
    with pytest.raises(ValueError, match="applies only to classifiers"):
        predict(segmenter, [image], format="csv", out=tmp_path / "o")
    out_file = tmp_path / "taken"
    out_file.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        predict(segmenter, [image], out=out_file)
    with pytest.raises(FileNotFoundError):
        predict(tmp_path / "no-run", [image])


def test_prepare_image_normalizes_with_the_run_statistics():
    meta = RunMeta(model="resnet20", task="classification", num_classes=2, in_chans=3, class_names=["a", "b"],
                   mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), image_size=(2, 2), ignore_index=None, data="test",
                   epoch=0, metrics={})
    image = torch.tensor([1.0, 0.5, 0.25]).view(3, 1, 1).expand(3, 4, 4)
    x = prepare_image(image, meta, resize=True)
    assert x.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [1.0, 1.0, 0.25])


# ------------------------------------------------------------- resizing as the run says
# Expected inputs are computed with Pillow (float "F" images, one channel at a time, which
# PyTorch's antialiased bilinear and bicubic reproduce to float rounding) and a NumPy slice.

PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def pil_resize(image_chw: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    channels = [np.asarray(Image.fromarray(c, mode="F").resize((width, height), PIL_FILTERS[interpolation]))
                for c in image_chw]
    return np.clip(np.stack(channels), 0, 1)


def classifier_meta(image_size, resize_size=None, interpolation="bilinear", in_chans=3):
    return RunMeta(model="resnet20", task="classification", num_classes=4, in_chans=in_chans,
                   class_names=[f"class{i}" for i in range(4)], mean=(MEAN,) * in_chans, std=(STD,) * in_chans,
                   image_size=image_size, ignore_index=None, data="test", epoch=0, metrics={},
                   resize_size=resize_size, interpolation=interpolation)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_a_run_with_a_resize_size_resizes_the_shorter_side_and_crops_the_centre(interpolation):
    image = np.random.default_rng(3).random((3, 40, 60), dtype=np.float32)  # H 40 < W 60
    meta = classifier_meta((24, 24), resize_size=32, interpolation=interpolation)
    x = prepare_image(torch.from_numpy(image), meta, resize=True)
    # Shorter side 40 -> 32, the longer 60 -> 48 (aspect kept); centre 24x24: rows 4..28, columns 12..36.
    expected = pil_resize(image, 32, 48, interpolation)[:, 4:28, 12:36]
    np.testing.assert_allclose(x[0].numpy(), (expected - MEAN) / STD, atol=1e-5)


def test_nearest_interpolation_samples_each_pixel_centre():
    image = np.random.default_rng(4).random((1, 30, 20), dtype=np.float32)  # W 20 the shorter side
    meta = classifier_meta((16, 16), resize_size=16, interpolation="nearest", in_chans=1)
    x = prepare_image(torch.from_numpy(image), meta, resize=True)
    # 30x20 -> 24x16; source index floor((i + 0.5) * 30 / 24) per row, floor((j + 0.5) * 20 / 16) per column.
    rows = np.floor((np.arange(24) + 0.5) * 30 / 24).astype(int)
    cols = np.floor((np.arange(16) + 0.5) * 20 / 16).astype(int)
    expected = image[:, rows][:, :, cols][:, 4:20, :]  # centre 16 of the 24 rows
    np.testing.assert_array_equal(x[0].numpy(), (expected - MEAN) / STD)


def test_without_a_resize_size_images_are_squashed_unless_the_aspect_is_kept():
    image = np.random.default_rng(5).random((3, 30, 50), dtype=np.float32)
    meta = classifier_meta((20, 20))
    squashed = prepare_image(torch.from_numpy(image), meta, resize=True)
    np.testing.assert_allclose(squashed[0].numpy(), (pil_resize(image, 20, 20, "bilinear") - MEAN) / STD, atol=1e-5)
    kept = prepare_image(torch.from_numpy(image), meta, resize=True, keep_aspect=True)
    # Covering 20x20 with the aspect 30:50: 20x33 (50 * 20 // 30); centre columns 6..26 (round(13 / 2) = 6).
    expected = pil_resize(image, 20, 33, "bilinear")[:, :, 6:26]
    np.testing.assert_allclose(kept[0].numpy(), (expected - MEAN) / STD, atol=1e-5)


def test_predict_feeds_the_model_the_cropped_image(tmp_path):
    model, _ = make_run(tmp_path / "run", "resnet20", "classification", 4, 3, (16, 16))
    sidecar = tmp_path / "run" / "best.json"
    values = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**values, "resize_size": 20, "interpolation": "bicubic"}))
    pixels = np.random.default_rng(6).integers(0, 256, (30, 24, 3), dtype=np.uint8)
    image = save_png(tmp_path / "a.png", pixels)
    (prediction,) = predict(tmp_path / "run", [image], top_k=4).predictions
    # 30x24 -> 25x20 (shorter side 20), centre 16x16: rows round(9 / 2) = 4 .. 20, columns 2..18.
    chw = pixels.transpose(2, 0, 1).astype(np.float32) / 255
    x = (torch.from_numpy(pil_resize(chw, 25, 20, "bicubic")[:, 4:20, 2:18])[None] - MEAN) / STD
    with torch.no_grad():
        expected = model(x.float()).softmax(dim=1)[0].numpy()
    np.testing.assert_allclose(prediction.probabilities, np.sort(expected)[::-1], atol=1e-5)


def test_centre_crops_split_odd_margins_as_torchvision():
    # torchvision's CenterCrop: top = int(round((H - h) / 2)), Python's round (half to even).
    from cnnzoo.data.in_memory import center_crop_image, cover_size, shorter_side_size

    rows = torch.arange(10.0).view(1, 10, 1)
    assert center_crop_image(rows, (7, 1)).flatten().tolist() == [2, 3, 4, 5, 6, 7, 8]  # margin 3: 2 above
    assert center_crop_image(rows, (5, 1)).flatten().tolist() == [2, 3, 4, 5, 6]  # margin 5: round(2.5) = 2
    assert shorter_side_size(480, 640, 256) == (256, 341) and shorter_side_size(640, 480, 256) == (341, 256)
    assert cover_size(30, 50, (20, 40)) == (24, 40)  # the width binds: 40 / 50 > 20 / 30
    with pytest.raises(ValueError, match="cannot crop a 10x1 image to a larger 12x1"):
        center_crop_image(rows, (12, 1))


def test_keep_aspect_is_for_classifiers_and_unknown_interpolations_are_named(segmenter_run, tmp_path):
    image = save_png(tmp_path / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="aspect ratio applies only to classifiers"):
        predict(segmenter_run[0], [image], keep_aspect=True)
    with pytest.raises(ValueError, match="unknown interpolation 'lanczos'; choose one of bilinear, bicubic, nearest"):
        prepare_image(torch.zeros(3, 8, 8), classifier_meta((4, 4), interpolation="lanczos"), resize=True)
