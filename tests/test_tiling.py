"""Overlap-tile prediction: exact against whole-image prediction for valid-convolution nets,
exact away from tile edges and equal to a naive blending loop for padded nets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.engine.tiling import fit_tile_size, plan_tiles, predict_tiled, size_step
from cnnzoo.layers.spatial import center_crop


class TinyValidUNet(nn.Module):
    """A depth-2 U-Net with unpadded 3x3 convs (the paper's scheme, 4 channels).

    Side lengths for an input of T: conv T-2, pool (T-2)/2, conv (T-6)/2, pool (T-6)/4,
    conv (T-14)/4, up (T-14)/2, conv (T-18)/2, up T-18, conv T-20. Both pools need even
    sides: T - 2 even and (T - 6)/2 even, i.e. T = 2 (mod 4). Output T - 20.
    """

    min_input_size = 22

    def __init__(self, in_chans: int = 2, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(in_chans, width, 3)
        self.enc2 = nn.Conv2d(width, width, 3)
        self.bridge = nn.Conv2d(width, width, 3)
        self.up2 = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.dec2 = nn.Conv2d(2 * width, width, 3)
        self.up1 = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.dec1 = nn.Conv2d(2 * width, width, 3)
        self.head = nn.Conv2d(width, num_classes, 1)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height - 20, width - 20

    def check_size(self, height: int, width: int) -> None:
        for side in (height, width):
            if side % 4 != 2:
                raise ValueError(f"side {side} is not 2 more than a multiple of 4")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(*x.shape[-2:])
        level1 = F.relu(self.enc1(x))
        level2 = F.relu(self.enc2(F.max_pool2d(level1, 2)))
        y = F.relu(self.bridge(F.max_pool2d(level2, 2)))
        y = self.up2(y)
        y = F.relu(self.dec2(torch.cat([center_crop(level2, *y.shape[-2:]), y], 1)))
        y = self.up1(y)
        y = F.relu(self.dec1(torch.cat([center_crop(level1, *y.shape[-2:]), y], 1)))
        return self.head(y)


class TinyPaddedNet(nn.Module):
    """Padded 3x3 convs around one 2x2 pool and a nearest 2x upsampling: output = input size,
    even sides only.

    Receptive field at a tile edge, by hand: output row y reads upsampled rows y-1..y+1, i.e.
    coarse rows floor((y-1)/2)..floor((y+1)/2); the coarse conv widens that by 1 on each side;
    the pool reads fine rows 2c..2c+1 and the first conv one more on each side. All of them
    lie inside the tile (no zero padding reached) iff 5 <= y <= T - 6: the 5 rows nearest
    each tile edge see the tile's zero padding.
    """

    EDGE = 5

    def __init__(self, in_chans: int = 2, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, num_classes, 3, padding=1)

    def check_size(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"sides must be even, got {height}x{width}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(F.relu(self.conv1(x)), 2)
        y = F.interpolate(F.relu(self.conv2(y)), scale_factor=2, mode="nearest")
        return self.conv3(y)


def mirror_pad(images: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """NumPy's "reflect" padding (any width, the image repeated as often as needed)."""
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
    return torch.from_numpy(padded)


def whole_image_reference(model: nn.Module, images: torch.Tensor, tile: int, step: int) -> torch.Tensor:
    """The model on the whole image, mirror-padded like the tiles see it.

    Output tiles of O = T - 20 pixels start at 0, step, 2 step, ... and read input from 10
    pixels earlier, so the tiles together read rows -10 .. (n-1) step + T - 10 of the image.
    Pad the image to exactly that window, run the model once and keep the first H x W.
    """
    height, width = images.shape[-2:]
    output = model.output_size(tile, tile)[0]
    margin = (tile - output) // 2

    def padding(length: int) -> tuple[int, int]:
        count = 1 + math.ceil(max(length - output, 0) / step)
        return margin, (count - 1) * step + tile - margin - length

    padded = mirror_pad(images, *padding(height), *padding(width))
    with torch.no_grad():
        return model(padded)[..., :height, :width]


@pytest.fixture(scope="module")
def valid_net() -> TinyValidUNet:
    torch.manual_seed(0)
    return TinyValidUNet().eval()


@pytest.mark.parametrize("size, overlap", [((50, 61), None), ((50, 61), 8), ((9, 13), None)])
def test_valid_net_tiling_equals_whole_image(valid_net, size, overlap):
    # Why exact: every output pixel of a net without padding depends only on its receptive
    # field, and convolutions and 2x2 poolings commute with shifts by multiples of the total
    # stride (4 here). The tile step is a multiple of 4 (the planner rounds it to the model's
    # size step), so each tile is the corresponding window of one forward pass over the whole
    # mirror-padded image, with the same pooling grid: its logits are that pass's logits.
    images = torch.randn(2, 2, *size, generator=torch.Generator().manual_seed(1))
    tile = 46
    plan = plan_tiles(valid_net, size, tile, overlap)
    assert plan.rows.step % 4 == 0 and plan.cols.step % 4 == 0
    assert plan.rows.overlap >= (overlap or 0)
    reference = whole_image_reference(valid_net, images, tile, plan.rows.step)
    tiled = predict_tiled(valid_net, images, tile, overlap=overlap, batch_size=5)  # batches span both images
    assert tiled.shape == (2, 3, *size)
    torch.testing.assert_close(tiled, reference, atol=1e-5, rtol=0)
    labels = predict_tiled(valid_net, images, tile, overlap=overlap, return_labels=True)
    assert labels.shape == (2, *size) and labels.dtype == torch.uint8
    assert torch.equal(labels.long(), reference.argmax(dim=1))


def test_real_unet_tiling_equals_whole_image():
    cnnzoo = pytest.importorskip("cnnzoo")
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", num_classes=2, in_chans=1, base_width=4, depth=2).eval()
    # Depth 2, unpadded: valid sides 44 + 4k; 60 -> 20 (a 20-pixel context on each side).
    assert model.output_size(60, 60) == (20, 20)
    assert size_step(model, 60) == 4
    images = torch.rand(1, 1, 45, 38, generator=torch.Generator().manual_seed(2))
    plan = plan_tiles(model, (45, 38), 60)
    reference = whole_image_reference_general(model, images, plan)
    torch.testing.assert_close(predict_tiled(model, images, 60, batch_size=2), reference, atol=1e-5, rtol=0)


def whole_image_reference_general(model: nn.Module, images: torch.Tensor, plan) -> torch.Tensor:
    height, width = images.shape[-2:]
    pads = []
    for axis, length in ((plan.rows, height), (plan.cols, width)):
        pads += [axis.margin, (axis.count - 1) * axis.step + axis.tile - axis.margin - length]
    with torch.no_grad():
        return model(mirror_pad(images, *pads))[..., :height, :width]


def naive_cross_fade(model: nn.Module, images: torch.Tensor, tile: int, step: int) -> torch.Tensor:
    """The documented blending for a same-size net, written out naively on a full canvas:
    tiles at 0, step, 2 step, ... of the mirror-padded image; along each axis a tile's weight
    is min(1, (j + 0.5) / v) after a neighbour before it and min(1, (T - j - 0.5) / v) before
    a neighbour after it (v = T - step); the result is the weighted mean."""
    height, width = images.shape[-2:]
    overlap = tile - step
    counts = [1 + math.ceil(max(length - tile, 0) / step) for length in (height, width)]
    extents = [(count - 1) * step + tile for count in counts]
    padded = mirror_pad(images, 0, extents[0] - height, 0, extents[1] - width)

    def ramp(k: int, count: int) -> torch.Tensor:
        j = torch.arange(tile, dtype=torch.float64)
        weight = torch.ones(tile, dtype=torch.float64)
        if k > 0:
            weight = torch.minimum(weight, (j + 0.5) / overlap)
        if k < count - 1:
            weight = torch.minimum(weight, (tile - j - 0.5) / overlap)
        return weight

    total = torch.zeros(images.shape[0], 3, *extents, dtype=torch.float64)
    weights = torch.zeros(*extents, dtype=torch.float64)
    for k in range(counts[0]):
        for l in range(counts[1]):
            window = torch.outer(ramp(k, counts[0]), ramp(l, counts[1]))
            rows, cols = slice(k * step, k * step + tile), slice(l * step, l * step + tile)
            with torch.no_grad():
                total[..., rows, cols] += model(padded[..., rows, cols]).double() * window
            weights[rows, cols] += window
    return (total / weights)[..., :height, :width].float()


def test_padded_net_blending_matches_a_naive_loop_and_is_exact_away_from_tile_edges():
    torch.manual_seed(0)
    model = TinyPaddedNet().eval()
    # 2 x 3 tiles of 24 with step 16 (overlap 8) cover 40 x 56 exactly: no overhang, so the
    # image borders are zero-padded by the net just as in whole-image prediction.
    images = torch.randn(2, 2, 40, 56, generator=torch.Generator().manual_seed(3))
    plan = plan_tiles(model, (40, 56), 24, overlap=8)
    assert (plan.rows.step, plan.rows.count, plan.cols.count) == (16, 2, 3)
    tiled = predict_tiled(model, images, 24, overlap=8, batch_size=4)
    torch.testing.assert_close(tiled, naive_cross_fade(model, images, 24, 16), atol=1e-5, rtol=0)

    with torch.no_grad():
        whole = model(images)
    # A pixel is exact when no tile that weighs it sees its zero padding there: it is at
    # least EDGE = 5 pixels inside every such tile edge that is not an image border.
    exact = torch.ones(40, 56, dtype=torch.bool)
    for axis, length, count in ((0, 40, 2), (1, 56, 3)):
        near_inner_edge = torch.zeros(length, dtype=torch.bool)
        for k in range(count):
            start, stop = 16 * k, 16 * k + 24
            if k > 0:
                near_inner_edge[start : start + TinyPaddedNet.EDGE] = True
            if k < count - 1:
                near_inner_edge[stop - TinyPaddedNet.EDGE : stop] = True
        exact &= ~near_inner_edge.view(-1, 1) if axis == 0 else ~near_inner_edge.view(1, -1)
    assert exact.float().mean() > 0.5
    error = (tiled - whole).abs().amax(dim=(0, 1))
    assert error[exact].max() < 1e-5
    assert error[~exact].max() > 1e-4  # the zero padding does show near the seams...
    # ...but the cross-fade weighs a tile's edge pixels least: a plain average of the
    # overlapping tiles (equal weights) is worse at the seams.
    assert error.max() < 0.5 * (naive_average(model, images) - whole).abs().max()


def naive_average(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The 24-pixel tiles at step 16 averaged with equal weights (no cross-fade)."""
    total = torch.zeros(images.shape[0], 3, 40, 56)
    count = torch.zeros(40, 56)
    for top in (0, 16):
        for left in (0, 16, 32):
            with torch.no_grad():
                total[..., top : top + 24, left : left + 24] += model(images[..., top : top + 24, left : left + 24])
            count[top : top + 24, left : left + 24] += 1
    return total / count


def test_model_without_size_methods_is_taken_as_same_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1)).eval()
    images = torch.randn(1, 1, 30, 21)
    plan = plan_tiles(model, (30, 21), 16)
    assert plan.rows.overlap == 4 and plan.rows.step == 12  # default overlap: a quarter of the tile
    tiled = predict_tiled(model, images, 16)
    assert tiled.shape == (1, 2, 30, 21)
    with torch.no_grad():
        whole = model(images)
    # Two padded 3x3 convs: a pixel 2 or more inside every inner tile edge is exact. Rows:
    # tiles at 0 and 12 (edges at 12 and 16) and 24 (edges at 24 and 28, the last overhangs
    # the 30-row image by 10 mirrored rows, so rows 28, 29 see mirrored instead of zero rows).
    interior = tiled[..., 2:10, 2:10]
    torch.testing.assert_close(interior, whole[..., 2:10, 2:10], atol=1e-5, rtol=0)


class ShapeRecorder(nn.Module):
    """Wraps a model and records the shape of every batch it is given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.shapes: list[tuple[int, ...]] = []

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.model.output_size(height, width)

    def check_size(self, height: int, width: int) -> None:
        self.model.check_size(height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def test_the_model_only_ever_sees_tiles(valid_net):
    recorder = ShapeRecorder(valid_net)
    images = torch.randn(3, 2, 70, 90)
    plan = plan_tiles(recorder, (70, 90), 46)
    assert plan.num_tiles == 3 * 4  # output tiles of 26 at step 24
    predict_tiled(recorder, images, 46, batch_size=5)  # 36 tiles: batches span images
    assert all(shape[0] <= 5 and shape[1:] == (2, 46, 46) for shape in recorder.shapes)
    assert sum(shape[0] for shape in recorder.shapes) == 3 * plan.num_tiles


def test_size_step_and_fit_tile_size(valid_net):
    assert size_step(valid_net, 46) == 4
    assert fit_tile_size(valid_net, 48) == 46  # 46 = 2 (mod 4); 47 and 48 are not
    assert fit_tile_size(valid_net, 46) == 46
    model = nn.Conv2d(1, 2, 3, padding=1)
    assert size_step(model, 32) == 1 and fit_tile_size(model, 33) == 33
    with pytest.raises(ValueError, match="no tile size"):
        fit_tile_size(valid_net, 21)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 45), r"tile_size 45 does not suit.*multiple of 4"),
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 18), "below .* minimum input size 22"),
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 46, overlap=26), "overlap 26 must be smaller"),
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 46, overlap=-1), "overlap must be"),
        (lambda m: predict_tiled(m, torch.rand(2, 40, 40), 46), "N x C x H x W"),
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 46, batch_size=0), "batch_size"),
        (lambda m: predict_tiled(m, torch.rand(1, 2, 40, 40), 0), "tile_size must be a positive integer"),
    ],
)
def test_bad_arguments_raise_value_error(valid_net, call, message):
    with pytest.raises(ValueError, match=message):
        call(valid_net)


def test_step_rounding_that_leaves_no_step_is_an_error():
    # Output tiles of 26 with offsets in multiples of 4: an overlap of 23 would leave a step
    # of 3, rounded down to 0.
    with pytest.raises(ValueError, match="leaves no step"):
        plan_tiles(TinyValidUNet(), (40, 40), 46, overlap=23)
