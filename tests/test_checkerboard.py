"""Transposed-convolution overlap: the exact tap counts, an independent count by a
transposed convolution of ones, and the experiment end to end on a tiny budget."""

from __future__ import annotations

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
    transposed_tap_counts,
)
from cnnzoo.cli.main import main
from cnnzoo.engine.checkerboard import phase_contrast, run_checkerboard


def ones_transposed(size_in: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """The count by PyTorch: a transposed conv with all-ones weights on an all-ones input
    adds 1 for every tap that reaches an output pixel."""
    out = F.conv_transpose2d(torch.ones(1, 1, size_in, size_in, dtype=torch.float64),
                             torch.ones(1, 1, kernel, kernel, dtype=torch.float64), stride=stride, padding=padding)
    return out[0, 0].numpy().astype(np.int64)


def ones_resize_conv(size_in: int, kernel: int, factor: int) -> np.ndarray:
    image = torch.ones(1, 1, size_in, size_in, dtype=torch.float64)
    resized = F.interpolate(image, scale_factor=factor, mode="nearest")
    out = F.conv2d(resized, torch.ones(1, 1, kernel, kernel, dtype=torch.float64), padding=kernel // 2)
    return out[0, 0].numpy().astype(np.int64)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 0), (3, 2, 1), (4, 2, 1), (5, 2, 2), (3, 3, 0), (2, 2, 0)])
def test_the_counts_equal_a_transposed_convolution_of_ones(kernel, stride, padding):
    assert np.array_equal(transposed_tap_counts(6, kernel, stride, padding), ones_transposed(6, kernel, stride, padding))


def test_kernel_3_stride_2_alternates_1_2_per_axis_so_1_2_4_in_two_dimensions():
    # Output o gets the taps t = o - 2i in 0..2: an even o has t = 0 and t = 2 (two
    # inputs), an odd o has t = 1 (one): 2, 1, 2, 1, ... along each axis away from the border.
    counts = interior(transposed_tap_counts(8, 3, 2), 2)
    assert set(np.unique(counts)) == {1, 2, 4}
    assert list(transposed_tap_counts(8, 3, 2)[4, 2:8]) == [4, 2, 4, 2, 4, 2]
    # A 2x2 period holds 4, 2, 2, 1: mean 9/4, so (max - min) / mean = 3 / (9/4) = 4/3 on
    # whole periods (the 13x13 interior adds a part period, hence approx).
    assert checkerboard_strength(counts) == pytest.approx((4 - 1) / counts.mean())
    assert abs(checkerboard_strength(counts) - 4 / 3) < 0.1


def test_kernel_4_stride_2_overlaps_evenly():
    # t = o - 2i in 0..3 has exactly two solutions for every o: 2 per axis, 4 in 2-D.
    counts = interior(transposed_tap_counts(8, 4, 2, padding=1), 2)
    assert np.all(counts == 4) and checkerboard_strength(counts) == 0.0


def test_resize_then_convolve_is_uniform_inside():
    counts = resize_conv_tap_counts(6, 3, 2)
    assert np.array_equal(counts, ones_resize_conv(6, 3, 2))
    assert np.all(interior(counts, 1) == 9) and checkerboard_strength(interior(counts, 1)) == 0.0


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="kernel"):
        transposed_tap_counts(4, 0, 2)
    with pytest.raises(ValueError, match="kernel"):
        resize_conv_tap_counts(4, 3, 0)


def test_phase_contrast_sees_a_checkerboard_and_not_a_ramp():
    board = torch.zeros(1, 1, 8, 8)
    board[..., ::2, ::2] = 1.0
    assert phase_contrast(board) == pytest.approx(1.0)
    ramp = torch.linspace(0, 1, 8).repeat(8, 1)[None, None]
    # The four phases of a ramp differ only by one step of it (1/7): the means of the odd
    # and even columns.
    assert phase_contrast(ramp) == pytest.approx(1 / 7, abs=1e-6)
    assert phase_contrast(torch.full((1, 1, 8, 8), 0.3)) == pytest.approx(0.0)


def test_the_experiment_writes_its_picture_and_numbers(tmp_path):
    result = run_checkerboard(tmp_path / "cb", steps=3, seed=0)
    assert [row.name for row in result.rows] == ["transposed k3", "transposed k4", "resize-conv"]
    assert result.tap_strength["transposed k3"] > 1 and result.tap_strength["resize-conv"] == 0.0
    with Image.open(result.figure) as picture:
        assert picture.format == "PNG" and picture.width > 500
    numbers = json.loads(result.numbers.read_text())
    assert numbers["steps"] == 3 and len(numbers["decoders"]) == 3
    assert numbers["tap_counts"]["transposed k4"] == np.full((12, 12), 4).tolist()
    # 3x3 ConvTranspose 1->16 (144 + 16), 1x1 conv 16->1 (16 + 1)
    assert result.rows[0].params == 144 + 16 + 16 + 1
    assert result.table in (tmp_path / "cb" / "checkerboard.md").read_text()


def test_the_command_refuses_options_it_does_not_take(tmp_path, capsys):
    assert main(["experiment", "checkerboard", "--epochs", "2", "--out", str(tmp_path / "x")]) == 2
    assert "takes only --out, --seed and --steps" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["experiment", "checkerboard", "--steps", "2", "--out", str(tmp_path / "y")]) == 0
    assert (tmp_path / "y" / "checkerboard.png").is_file()
    assert main(["experiment", "checkerboard", "--steps", "2", "--out", str(tmp_path / "y")]) == 2
