"""Transposed-convolution overlap: the exact tap counts (hand-derived values), an
independent count by PyTorch's own transposed convolution of ones, and the experiment end
to end on a tiny budget."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnzoo.analysis.checkerboard import (
    checkerboard_strength,
    interior,
    resize_conv_tap_counts,
    tap_stats,
    transposed_interior,
    transposed_tap_counts,
    upsampling_padding,
)
from cnnzoo.cli.main import main
from cnnzoo.engine.checkerboard import build_decoders, phase_contrast, run_checkerboard


def ones_transposed(size_in: int, kernel: int, stride: int, padding: int, output_padding: int = 0) -> np.ndarray:
    """The count by PyTorch: a transposed conv with all-ones weights on an all-ones input
    adds 1 for every tap that reaches an output pixel."""
    out = F.conv_transpose2d(torch.ones(1, 1, size_in, size_in, dtype=torch.float64),
                             torch.ones(1, 1, kernel, kernel, dtype=torch.float64), stride=stride, padding=padding,
                             output_padding=output_padding)
    return out[0, 0].numpy().astype(np.int64)


def ones_resize_conv(size_in: int, kernel: int, factor: int, mode: str) -> np.ndarray:
    image = torch.ones(1, 1, size_in, size_in, dtype=torch.float64)
    resized = F.interpolate(image, scale_factor=factor, mode=mode, **({} if mode == "nearest" else
                                                                     {"align_corners": False}))
    out = F.conv2d(resized, torch.ones(1, 1, kernel, kernel, dtype=torch.float64), padding=kernel // 2)
    return np.rint(out[0, 0].numpy()).astype(np.int64)


@pytest.mark.parametrize("kernel,stride,padding,output_padding",
                         [(3, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (5, 2, 2, 1), (3, 3, 0, 2), (2, 2, 0, 0),
                          (1, 2, 0, 1), (7, 4, 2, 3)])
def test_the_counts_equal_a_transposed_convolution_of_ones(kernel, stride, padding, output_padding):
    assert np.array_equal(transposed_tap_counts(6, kernel, stride, padding, output_padding),
                          ones_transposed(6, kernel, stride, padding, output_padding))


def test_kernel_3_stride_2_alternates_1_2_per_axis_so_1_2_4_in_two_dimensions():
    # Output o gets the taps t = o - 2i in 0..2 (padding 0): an even o has t = 0 and t = 2
    # (two inputs), an odd o has t = 1 (one): 2, 1, 2, 1, ... along each axis; at the border
    # o = 0 has only t = 0 (i = 0), so the first row reads 1, 1, 2, 1, 2, ...
    counts = transposed_tap_counts(8, 3, 2)
    assert counts.shape == (17, 17)  # (8 - 1) * 2 + 3
    assert list(counts[4, 2:8]) == [4, 2, 4, 2, 4, 2]
    assert list(counts[0, :5]) == [1, 1, 2, 1, 2]
    # A 2x2 period holds 4, 2, 2, 1: min 1, max 4, mean 9/4, so (max - min) / mean = 4/3.
    stats = tap_stats(transposed_interior(8, 3, 2))
    assert (stats.minimum, stats.maximum, stats.period) == (1, 4, (2, 2))
    assert stats.strength == pytest.approx(4 / 3)


def test_kernel_4_stride_2_overlaps_evenly():
    # t = o + 1 - 2i in 0..3 has exactly two solutions for every o: 2 per axis, 4 in 2-D.
    counts = transposed_interior(8, 4, 2, padding=1)
    assert counts.shape == (12, 12)  # 16 outputs less k - 1 - p = 2 at each end
    assert np.all(counts == 4)
    assert tap_stats(counts) == tap_stats(np.full((3, 3), 4)) and tap_stats(counts).strength == 0.0
    assert tap_stats(counts).period == (1, 1)


def test_other_kernels_and_strides_follow_ceil_and_floor_of_k_over_s():
    # k=4, s=3: per axis 2, 1, 1 (ceil(4/3), floor(4/3), floor): 2-D min 1, max 4, period 3,
    # mean (4/3)^2 = 16/9, strength 3 / (16/9) = 27/16.
    stats = tap_stats(transposed_interior(9, 4, 3, *upsampling_padding(4, 3)))
    assert (stats.minimum, stats.maximum, stats.period) == (1, 4, (3, 3))
    assert stats.strength == pytest.approx(27 / 16)
    # k=1, s=2: every other output receives nothing (holes, not overlap): 0 and 1, mean 1/4.
    holes = tap_stats(transposed_interior(6, 1, 2, *upsampling_padding(1, 2)))
    assert (holes.minimum, holes.maximum, holes.strength) == (0, 1, pytest.approx(4.0))


@pytest.mark.parametrize("kernel,stride,expected", [(3, 2, (1, 1)), (4, 2, (1, 0)), (1, 2, (0, 1)), (5, 3, (1, 0))])
def test_the_decoders_padding_upsamples_by_exactly_the_stride(kernel, stride, expected):
    # (n-1)s - 2p + k + op = sn: p = ceil((k-s)/2) and op = s + 2p - k (5, 3: p 1, op 0).
    padding, output_padding = upsampling_padding(kernel, stride)
    assert (padding, output_padding) == expected
    layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride, padding=padding, output_padding=output_padding)
    assert layer(torch.zeros(1, 1, 5, 7)).shape[-2:] == (5 * stride, 7 * stride)


def test_resize_then_convolve_is_uniform_inside():
    counts = resize_conv_tap_counts(6, 3, 2)
    # Nearest and bilinear resizes of ones are ones: the conv of ones then counts its taps.
    assert np.array_equal(counts, ones_resize_conv(6, 3, 2, "nearest"))
    assert np.array_equal(counts, ones_resize_conv(6, 3, 2, "bilinear"))
    assert counts[0, 0] == 4 and counts[0, 5] == 6  # a corner sees 2x2 taps, an edge 2x3
    assert np.all(interior(counts, 1) == 9) and checkerboard_strength(interior(counts, 1)) == 0.0


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="kernel=0"):
        transposed_tap_counts(4, 0, 2)
    with pytest.raises(ValueError, match="output_padding"):
        transposed_tap_counts(4, 3, 2, output_padding=2)
    with pytest.raises(ValueError, match="factor=0"):
        resize_conv_tap_counts(4, 3, 0)
    with pytest.raises(ValueError, match="no padding"):
        upsampling_padding(4, 1)  # stride 1 with an even kernel cannot keep the size
    with pytest.raises(ValueError, match="leave nothing"):
        interior(np.ones((4, 4)), 2)


def test_phase_contrast_sees_a_checkerboard_and_not_a_ramp():
    board = torch.zeros(1, 1, 8, 8)
    board[..., ::2, ::2] = 1.0
    assert phase_contrast(board) == pytest.approx(1.0)
    ramp = torch.linspace(0, 1, 8).repeat(8, 1)[None, None]
    # The four phases of a ramp differ only by one step of it (1/7): the means of the odd
    # and even columns.
    assert phase_contrast(ramp) == pytest.approx(1 / 7, abs=1e-6)
    assert phase_contrast(torch.full((1, 1, 8, 8), 0.3)) == pytest.approx(0.0)
    every_third = torch.zeros(1, 1, 9, 9)
    every_third[..., 1::3, :] = 3.0  # rows 1, 4, 7: phases (1, c) have mean 3, the rest 0
    assert phase_contrast(every_third, 3) == pytest.approx(3.0) and phase_contrast(every_third, 1) == 0.0


def test_the_decoders_upsample_by_the_stride():
    for stride in (2, 3):
        for name, model in build_decoders((3, 4), stride, "bilinear").items():
            assert model(torch.zeros(1, 1, 14, 14)).shape[-2:] == (14 * stride, 14 * stride), name


def test_the_experiment_writes_its_picture_and_numbers(tmp_path):
    result = run_checkerboard(tmp_path / "cb", steps=3, seed=0)
    names = [row.name for row in result.rows]
    assert names == ["transposed k3", "transposed k4", "resize-conv (nearest)"]
    k3, k4, resize = result.rows
    assert (k3.taps.minimum, k3.taps.maximum, k3.taps.period) == (1, 4, (2, 2))
    assert k4.taps.strength == 0.0 and resize.taps.strength == 0.0
    # A flat input resized and convolved gives a flat interior whatever the weights; the
    # kernel-3 decoder's uneven overlap shows after 3 steps.
    assert resize.flat_contrast == pytest.approx(0.0, abs=1e-6) and k3.flat_contrast > 1e-3
    # 3x3 ConvTranspose 1->16 (144 + 16), 1x1 conv 16->1 (16 + 1)
    assert k3.params == 144 + 16 + 16 + 1
    with Image.open(result.figure) as picture:
        assert picture.format == "PNG" and picture.width > 1000
    numbers = json.loads(result.numbers.read_text())
    assert numbers["steps"] == 3 and numbers["stride"] == 2 and len(numbers["decoders"]) == 3
    assert numbers["tap_counts"]["transposed k4"] == np.full((12, 12), 4).tolist()
    with open(result.csv, newline="") as stream:
        table = list(csv.DictReader(stream))
    assert [row["decoder"] for row in table] == names and table[0]["taps_max"] == "4"
    assert result.table in result.markdown.read_text()


def test_the_command_takes_its_options_and_refuses_others(tmp_path, capsys):
    assert main(["experiment", "checkerboard", "--epochs", "2", "--out", str(tmp_path / "x")]) == 2
    message = capsys.readouterr().err
    assert "takes only --out, --seed, --steps" in message and message.count("\n") == 1
    assert main(["experiment", "checkerboard", "--stride", "5", "--out", str(tmp_path / "x")]) == 2
    assert "stride must be 2, 3 or 4" in capsys.readouterr().err
    assert main(["experiment", "degradation", "--kernel", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--kernel: options of the checkerboard experiment only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    out = tmp_path / "y"
    assert main(["experiment", "checkerboard", "--steps", "2", "--kernel", "5", "--stride", "3",
                 "--upsample", "bilinear", "--out", str(out)]) == 0
    numbers = json.loads((out / "checkerboard.json").read_text())
    assert (numbers["kernels"], numbers["stride"], numbers["upsample"]) == ([5], 3, "bilinear")
    assert [row["name"] for row in numbers["decoders"]] == ["transposed k5", "resize-conv (bilinear)"]
    capsys.readouterr()
    assert main(["experiment", "checkerboard", "--steps", "2", "--out", str(out)]) == 2
    assert "is not empty; choose another --out" in capsys.readouterr().err
