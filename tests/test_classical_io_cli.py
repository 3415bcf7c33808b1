"""Image and label-map files, and the ``segment-classic`` command."""

import argparse

import numpy as np
import pytest
from PIL import Image

from cnnzoo.classical import kmeans_segmentation, region_growing, split_and_merge
from cnnzoo.classical.io import label_palette, read_image, read_label_map, write_label_map, write_overlay
from cnnzoo.cli import segment_classic

# Files --------------------------------------------------------------------------------------


def test_label_map_round_trip_as_palette_png(tmp_path):
    labels = np.arange(12).reshape(3, 4) * 20  # up to 220: fits a palette
    path = tmp_path / "labels.png"
    write_label_map(path, labels)
    with Image.open(path) as saved:
        assert saved.mode == "P"
    np.testing.assert_array_equal(read_label_map(path), labels)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.png"]  # no temporary file left behind


def test_label_map_round_trip_as_16_bit_png(tmp_path):
    labels = np.array([[0, 300], [65535, 7]])
    write_label_map(tmp_path / "many.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "many.png"), labels)


def test_label_map_errors(tmp_path):
    with pytest.raises(ValueError, match="at most 65536 labels"):
        write_label_map(tmp_path / "x.png", np.array([[65536]]))
    with pytest.raises(ValueError, match=">= 0"):
        write_label_map(tmp_path / "x.png", np.array([[-1]]))
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_label_map(tmp_path / "missing" / "x.png", np.zeros((2, 2), dtype=int))
    Image.new("RGB", (2, 2)).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match="not a label map"):
        read_label_map(tmp_path / "colour.png")


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)  # alpha dropped
    deep = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = read_image(tmp_path / "deep.png")
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, deep)


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        read_image(tmp_path / "text.png")
    with pytest.raises(ValueError, match="folder"):
        read_image(tmp_path)


def test_overlay_tints_regions_and_outlines_them(tmp_path):
    image = np.full((6, 6), 100, dtype=np.uint8)
    labels = np.zeros((6, 6), dtype=int)
    write_overlay(tmp_path / "one.png", image, labels, alpha=0.5)
    overlay = np.array(Image.open(tmp_path / "one.png"))
    assert overlay.shape == (6, 6, 3)
    # One region has no boundary: every pixel is half gray 100, half the palette colour of label 0.
    np.testing.assert_array_equal(overlay[0, 0], np.round(0.5 * 100 + 0.5 * label_palette(1)[0]))
    labels[:, 3:] = 1
    write_overlay(tmp_path / "two.png", image, labels)
    overlay = np.array(Image.open(tmp_path / "two.png"))
    np.testing.assert_array_equal(overlay[:, 2], 255)  # the last column of region 0 touches region 1
    np.testing.assert_array_equal(overlay[:, 3], 255)
    assert (overlay[:, 0] != 255).any()


def test_palette_colours_are_distinct():
    assert len(np.unique(label_palette(256), axis=0)) == 256


# The command --------------------------------------------------------------------------------


def parse(argv):
    parser = argparse.ArgumentParser(prog="cnnzoo")
    segment_classic.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def picture(tmp_path):
    image = np.zeros((16, 20, 3), dtype=np.uint8)
    image[:, 10:] = (200, 40, 40)
    path = tmp_path / "picture.png"
    Image.fromarray(image).save(path)
    return path, image


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["region-growing", "--threshold", "30", "--seed", "0,19"], lambda im: region_growing(im, [(0, 19)], 30)),
        (["kmeans", "--k", "2", "--texture", "none", "--window", "1"],
         lambda im: kmeans_segmentation(im, 2, window=1, texture=None)),
        (["split-merge", "--min-block", "2"], lambda im: split_and_merge(im, min_block=2)),
    ],
)
def test_command_writes_the_library_result(picture, tmp_path, capsys, argv, expected):
    path, image = picture
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    args = parse(["segment-classic", argv[0], str(path), "--out", str(out), "--overlay", str(overlay), *argv[1:]])
    assert args.run(args) == 0
    np.testing.assert_array_equal(read_label_map(out), expected(image))
    assert read_image(overlay).shape == (16, 20, 3)
    assert "2 regions" in capsys.readouterr().out


def test_command_predicate_option(picture, tmp_path):
    path, image = picture
    out = tmp_path / "mask.png"
    args = parse(["segment-classic", "split-merge", str(path), "--predicate", "max-range", "--threshold", "250",
                  "--out", str(out)])
    segment_classic.run(args)
    np.testing.assert_array_equal(read_label_map(out), np.zeros((16, 20)))


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["region-growing", "MISSING"], FileNotFoundError, "image file not found"),
        (["region-growing", "PICTURE", "--seed", "99,0"], ValueError, r"seed \(99, 0\) lies outside"),
        (["region-growing", "PICTURE", "--k", "3"], ValueError, "--k applies only to kmeans"),
        (["kmeans", "PICTURE"], ValueError, "--k K"),
        (["kmeans", "PICTURE", "--k", "1000"], ValueError, "larger than the number of pixels"),
        (["split-merge", "PICTURE", "--predicate", "max-range"], ValueError, "needs --threshold"),
        (["split-merge", "PICTURE", "--min-block", "3"], ValueError, "power of two"),
        (["kmeans", "PICTURE", "--k", "2", "--threshold", "3"], ValueError, "needs --predicate"),
    ],
)
def test_command_user_errors(picture, tmp_path, argv, error, message):
    path, _ = picture
    argv = [str(path) if a == "PICTURE" else str(tmp_path / "missing.png") if a == "MISSING" else a for a in argv]
    args = parse(["segment-classic", *argv])
    with pytest.raises(error, match=message):
        segment_classic.run(args)


def test_malformed_seed_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["segment-classic", "region-growing", "x.png", "--seed", "3;4"])
    assert exit_info.value.code == 2
    assert "malformed seed" in capsys.readouterr().err
