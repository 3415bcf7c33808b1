"""Image and label-map files, and the ``segment-classic`` command."""

import argparse
import io

import numpy as np
import pytest
from PIL import Image

from cnnzoo.classical import kmeans_segmentation, region_growing, split_and_merge
from cnnzoo.images.read import read_array, read_label_map
from cnnzoo.images.write import class_palette, display_rgb, label_palette, write_label_map, write_overlay, write_png
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


def test_read_array_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_array(tmp_path / "rgb.png"), rgb)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_array(tmp_path / "rgba.png"), rgb)  # alpha dropped
    deep = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = read_array(tmp_path / "deep.png")
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, deep)
    Image.frombytes("I;16B", (2, 2), deep.astype(">u2").tobytes()).save(tmp_path / "big-endian.tif")
    loaded = read_array(tmp_path / "big-endian.tif")
    assert loaded.dtype == np.uint16  # native byte order: 16-bit defaults and display apply
    np.testing.assert_array_equal(loaded, deep)


def test_read_array_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        read_array(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        read_array(tmp_path / "text.png")
    with pytest.raises(ValueError, match="folder"):
        read_array(tmp_path)
    (tmp_path / "truncated.png").write_bytes(_png_bytes()[:60])  # a header and half a chunk
    with pytest.raises(ValueError, match="cannot read"):
        read_array(tmp_path / "truncated.png")


def _png_bytes() -> bytes:
    stream = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(stream, "PNG")
    return stream.getvalue()


def test_image_too_large_for_pillow_is_a_clear_error(tmp_path, monkeypatch):
    # Pillow refuses images past twice its MAX_IMAGE_PIXELS (a decompression-bomb guard) with
    # an exception that is neither an OSError nor a ValueError.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (16, 16)).save(tmp_path / "big.png")  # 256 > 2 x 100 pixels
    with pytest.raises(ValueError, match="cannot read .*big.png as an image: Image size"):
        read_array(tmp_path / "big.png")


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


def test_display_rgb_scales_each_kind_of_image_to_0_255():
    np.testing.assert_array_equal(display_rgb(np.array([[10, 200]], dtype=np.uint8)), [[[10] * 3, [200] * 3]])
    np.testing.assert_array_equal(display_rgb(np.array([[257, 65535]], dtype=np.uint16)), [[[1] * 3, [255] * 3]])
    np.testing.assert_array_equal(display_rgb(np.array([[0.0, 0.5]])), [[[0] * 3, [127.5] * 3]])  # [0, 1]
    np.testing.assert_array_equal(display_rgb(np.array([[-1.0, 3.0]])), [[[0] * 3, [255] * 3]])  # stretched
    np.testing.assert_array_equal(display_rgb(np.full((1, 1, 4), 9, dtype=np.uint8)), [[[9, 9, 9]]])  # alpha dropped
    np.testing.assert_array_equal(display_rgb(np.array([[[0, 6]]], dtype=np.uint8)), [[[3, 3, 3]]])  # 2 channels: gray


def test_palette_colours_are_distinct():
    assert len(np.unique(label_palette(256), axis=0)) == 256


def test_class_palette_is_black_background_then_tab20():
    palette = class_palette(22)
    assert palette.shape == (22, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette[0], [0, 0, 0])
    # tab20's first two colours are #1f77b4 and #aec7e8 (matplotlib's _cm.py); it repeats after 20.
    np.testing.assert_array_equal(palette[1:3], [[0x1F, 0x77, 0xB4], [0xAE, 0xC7, 0xE8]])
    np.testing.assert_array_equal(palette[21], palette[1])


def test_write_png_takes_gray_and_rgb_uint8(tmp_path):
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_png(tmp_path / "g.png", gray[..., None])
    rgb = np.stack([gray, gray + 10, gray + 20], axis=2)
    write_png(tmp_path / "c.png", rgb)
    with Image.open(tmp_path / "g.png") as g, Image.open(tmp_path / "c.png") as c:
        assert g.mode == "L" and c.mode == "RGB"
        np.testing.assert_array_equal(np.array(g), gray)
        np.testing.assert_array_equal(np.array(c), rgb)
    with pytest.raises(ValueError, match="uint8 H x W"):
        write_png(tmp_path / "f.png", rgb.astype(np.float32))


def test_label_maps_and_overlays_take_a_palette(tmp_path):
    labels = np.array([[0, 1], [2, 2]])
    write_label_map(tmp_path / "mask.png", labels, class_palette(3))
    with Image.open(tmp_path / "mask.png") as mask:
        colours = np.array(mask.getpalette()[:9]).reshape(3, 3)
        np.testing.assert_array_equal(np.array(mask), labels)
    np.testing.assert_array_equal(colours, class_palette(3))
    write_overlay(tmp_path / "over.png", np.full((2, 2, 3), 200, dtype=np.uint8), labels, alpha=0.5,
                  boundaries=False, palette=class_palette(3))
    overlay = np.array(Image.open(tmp_path / "over.png"))
    np.testing.assert_array_equal(overlay[0, 0], [100, 100, 100])  # half of 200, half black
    with pytest.raises(ValueError, match=r"\(N, 3\) array"):
        write_label_map(tmp_path / "bad.png", labels, np.zeros((3, 4), dtype=np.uint8))


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


LEFT_HALF = np.repeat((np.arange(20) < 10)[None, :], 16, axis=0).astype(int)  # the picture's left half


@pytest.mark.parametrize(
    ("argv", "expected", "known"),
    [
        # the seed is on the right: the right half is region 0
        (["region-growing", "--threshold", "30", "--seed", "0,19"], lambda im: region_growing(im, [(0, 19)], 30),
         LEFT_HALF),
        (["kmeans", "--k", "2", "--texture", "none", "--window", "1"],
         lambda im: kmeans_segmentation(im, 2, window=1, texture=None), 1 - LEFT_HALF),
        (["split-merge", "--min-block", "2"], lambda im: split_and_merge(im, min_block=2), 1 - LEFT_HALF),
    ],
)
def test_command_writes_the_library_result(picture, tmp_path, capsys, argv, expected, known):
    path, image = picture
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    args = parse(["segment-classic", argv[0], str(path), "--out", str(out), "--overlay", str(overlay), *argv[1:]])
    assert args.run(args) == 0
    np.testing.assert_array_equal(read_label_map(out), known)  # the answer by construction
    np.testing.assert_array_equal(read_label_map(out), expected(image))
    assert read_array(overlay).shape == (16, 20, 3)
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
        # output paths are checked before the image is even read
        (["kmeans", "MISSING", "--k", "2", "--out", "FOLDER"], ValueError, "it is a folder"),
        (["kmeans", "MISSING", "--k", "2", "--overlay", "NOWHERE"], FileNotFoundError, "output folder does not exist"),
    ],
)
def test_command_user_errors(picture, tmp_path, argv, error, message):
    path, _ = picture
    stand_ins = {"PICTURE": path, "MISSING": tmp_path / "missing.png", "FOLDER": tmp_path,
                 "NOWHERE": tmp_path / "no" / "overlay.png"}
    argv = [str(stand_ins.get(a, a)) for a in argv]
    args = parse(["segment-classic", *argv])
    with pytest.raises(error, match=message):
        segment_classic.run(args)


def test_malformed_seed_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["segment-classic", "region-growing", "x.png", "--seed", "3;4"])
    assert exit_info.value.code == 2
    assert "malformed seed" in capsys.readouterr().err
