"""Overlap-tile prediction of images of any size (Ronneberger et al. 2015, section 2, Fig. 2).

"This strategy allows the seamless segmentation of arbitrarily large images by an
overlap-tile strategy. To predict the pixels in the border region of the image, the
missing context is extrapolated by mirroring the input image."

How it works, per axis (rows and columns alike). Let ``T`` be the input tile size, ``O``
the output size the model gives for it (``model.output_size(T, T)``: ``T - 184`` for the
paper's valid U-Net at 572, ``T`` for a padded net) and ``m`` the context the model eats on
the leading side (``(T - O) // 2``, as :func:`~cnnzoo.layers.spatial.center_crop`):

1. Output tiles of ``O`` pixels start at ``0, s, 2s, ...`` with step ``s = O - overlap``,
   until they cover the image (the last one may overhang the far border).
2. The input tile for the output tile at ``y`` is the image window ``[y - m, y - m + T)``;
   pixels outside the image are mirrored (reflection without repeating the edge pixel,
   NumPy's ``"reflect"``; :func:`~cnnzoo.layers.spatial.mirror_positions`), so the border pixels get context and the tiles can overhang.
   Tiles are gathered by index from the image: no padded copy of the image is made.
3. Where output tiles overlap, they are blended with a linear cross-fade: along each axis
   a tile's weight ramps ``0.5/v, 1.5/v, ..., (v-0.5)/v`` over the ``v = overlap`` pixels
   it shares with a neighbour (1 elsewhere, and on sides with no neighbour); the 2-D window
   is the product of the two ramps and the result is the weighted mean. A tile's edge
   pixels, the least reliable in a padded net (zero padding), so weigh least; two
   neighbours' ramps sum to 1.

The step ``s`` is rounded down (``overlap`` up) to a multiple of the model's size step, the
gap between consecutive input sizes its ``check_size`` accepts (16 for a depth-4 U-Net,
1 for a model that takes every size). That keeps every tile on the pooling grid of the
whole image, which is what makes tiling exact for valid-convolution nets: each output
pixel of a valid net depends only on its receptive field, and convolutions and poolings
commute with shifts by multiples of the total stride, so a tile's output is exactly the
matching window of the model's output on the whole mirror-padded image.

For a padded net (output = input size) tiling is exact only for pixels whose receptive
field (radius ``r``) stays inside every tile that weighs them; within ``r`` of an inner
tile edge the tile sees zero padding where the whole image has pixels. The cross-fade
makes such pixels count little (an error at most ``r / overlap`` of the tile's), so an
``overlap`` of a few ``r`` hides the seams; the default is a quarter of the tile.

Memory is bounded by the tile: the model sees ``batch_size`` tiles at a time and the
blending buffer holds one row of tiles (``K x O x W`` plus weights, on the output's
device). Beyond that there is the result: ``N x K x H x W`` logits, or with
``return_labels=True`` only the ``N x H x W`` argmax labels (finished row strips are
reduced to labels as they complete).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnzoo.layers.spatial import mirror_positions

__all__ = [
    "DEFAULT_TILE_SIZE", "PAPER_TILE_SIZE", "WHOLE_IMAGE_MAX_PIXELS", "AxisPlan", "TilePlan", "accepts_size",
    "default_tile_size", "fit_tile_size", "model_device", "output_size", "plan_tiles", "predict_tiled",
    "segment_image", "size_step",
]

# Larger segmentation inputs go through tiles: a padded U-Net of width 64 needs about 2 GB
# of activations at 512 x 512, which is as much as a laptop should be asked for.
WHOLE_IMAGE_MAX_PIXELS = 512 * 512
# Tile side for same-size nets; a valid-convolution net (output smaller than its input)
# loses a wide border per tile, so it gets the paper's 572-pixel tile (388 kept of it).
DEFAULT_TILE_SIZE = 256
PAPER_TILE_SIZE = 572
# How far sizes are probed (check_size) for the model's size step, a fitting tile size and
# a tile covering a whole image.
_MAX_PROBE = 1024


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis: output tiles ``[k*step, k*step + output)`` for ``k < count``,
    each read from the input window starting ``margin`` pixels earlier."""

    length: int  # image size along the axis
    tile: int  # input tile size
    output: int  # output tile size
    margin: int  # context lost on the leading side (valid convolutions)
    overlap: int
    step: int
    count: int

    def input_start(self, k: int) -> int:
        return k * self.step - self.margin

    def output_start(self, k: int) -> int:
        return k * self.step

    def window(self, k: int) -> Tensor:
        """The cross-fade weights of tile ``k`` (length ``output``, all > 0)."""
        weight = torch.ones(self.output, dtype=torch.float64)
        if self.overlap == 0:
            return weight
        ramp = (torch.arange(self.output, dtype=torch.float64) + 0.5) / self.overlap
        if k > 0:
            weight = torch.minimum(weight, ramp)
        if k < self.count - 1:
            weight = torch.minimum(weight, ramp.flip(0))
        return weight


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go on an image: one :class:`AxisPlan` per axis."""

    rows: AxisPlan
    cols: AxisPlan

    @property
    def num_tiles(self) -> int:
        return self.rows.count * self.cols.count


def plan_tiles(model: nn.Module, image_size: tuple[int, int], tile_size: int, overlap: int | None = None) -> TilePlan:
    """Check ``tile_size`` against the model and lay out the tiles of an image.

    ``overlap`` (output pixels shared by neighbouring tiles) defaults to 0 for a model
    whose output is smaller than its input (valid U-Net: output tiles abut, as in the
    paper) and to ``tile_size // 4`` otherwise; either way it is rounded up so the tile
    step is a multiple of :func:`size_step`.
    """
    tile = _check_tile_size(model, tile_size)
    height, width = image_size
    if height < 1 or width < 1:
        raise ValueError(f"image size must be at least 1x1, got {height}x{width}")
    out_h, out_w = _tile_output_size(model, tile)
    step = size_step(model, tile)
    same_size = (out_h, out_w) == (tile, tile)
    if overlap is None:
        overlap = tile // 4 if same_size else 0
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be an integer >= 0, got {overlap!r}")
    return TilePlan(_plan_axis(height, tile, out_h, overlap, step), _plan_axis(width, tile, out_w, overlap, step))


@torch.no_grad()
def predict_tiled(
    model: nn.Module,
    images: Tensor,
    tile_size: int,
    overlap: int | None = None,
    batch_size: int = 4,
    *,
    return_labels: bool = False,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Logits ``N x K x H x W`` of ``images`` (``N x C x H x W``, already normalized) at
    their full size, predicted tile by tile (see the module docstring).

    ``tile_size``: the model's input tile (square; must be a size the model takes, see
    :func:`fit_tile_size`). ``overlap``: see :func:`plan_tiles`. ``batch_size``: tiles per
    forward pass. ``return_labels=True`` returns the argmax labels ``N x H x W`` instead
    (``uint8`` for up to 256 classes, else ``int32``; call ``.long()`` before indexing with
    them) without ever holding the full logits. The model should be in eval mode; the
    result is on ``images``' device, the model runs on its own. ``forward`` runs the batches
    of tiles instead of the model (a compiled runner of :mod:`cnnzoo.deploy` taking this
    tile size); the model still says which sizes it takes and gives.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor N x C x H x W, got {shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    plan = plan_tiles(model, tuple(images.shape[-2:]), tile_size, overlap)
    device = model_device(model, images.device) if forward is None else torch.device("cpu")
    run = forward if forward is not None else model
    sink = _StripSink(plan, images.shape[0], images.device, return_labels)
    for batch in _batches(_tile_indices(images.shape[0], plan), batch_size):
        inputs = torch.stack([_gather_tile(images[n], plan, k, l) for n, k, l in batch]).to(device)
        outputs = run(inputs)
        _check_output(outputs, inputs, plan, model)
        for (n, k, l), output in zip(batch, outputs.to(images.device)):
            sink.add(n, k, l, output)
    return sink.result()


@torch.no_grad()
def segment_image(
    model: nn.Module, image: Tensor, tile_size: int | None = None,
    max_pixels: int = WHOLE_IMAGE_MAX_PIXELS, batch_size: int = 4,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, bool]:
    """``(labels, tiled)``: the class of every pixel (``H x W`` int64) of a normalized
    ``1 x C x H x W`` image, and whether the overlap-tile path was taken: the one
    whole-or-tiled decision every prediction goes through.

    Without ``tile_size``, an image of at most ``max_pixels`` is predicted whole: as it is
    when the model takes its size and returns it, else as one mirror-padded tile of the
    smallest size that covers it (as the U-Net paper extrapolates the border). A larger
    one, or any image when ``tile_size`` is given, is cut into tiles (of
    :func:`default_tile_size` by default), in memory bounded by the tile.

    ``forward``: a runner compiled for ``tile_size x tile_size`` inputs (:mod:`cnnzoo.deploy`)
    that runs the tiles; every image then goes through tiles of that size (one mirror-padded
    tile for an image smaller than it).
    """
    height, width = image.shape[-2:]
    if forward is not None:
        if tile_size is None:
            raise ValueError("a compiled runner needs the tile size it was compiled for")
        labels = predict_tiled(model, image, tile_size, batch_size=batch_size, return_labels=True, forward=forward)
        return labels[0].long(), (height, width) != (tile_size, tile_size)
    if tile_size is None and height * width <= max_pixels:
        if accepts_size(model, height, width) and output_size(model, height, width) == (height, width):
            return model(image.to(model_device(model))).argmax(dim=1)[0].cpu(), False
        tile = _covering_tile(model, max(height, width))
        if tile is not None:
            labels = predict_tiled(model, image, tile, overlap=0, batch_size=1, return_labels=True)
            return labels[0].long(), False
    tile = tile_size if tile_size is not None else default_tile_size(model)
    return predict_tiled(model, image, tile, batch_size=batch_size, return_labels=True)[0].long(), True


def default_tile_size(model: nn.Module) -> int:
    """:data:`DEFAULT_TILE_SIZE`, or :data:`PAPER_TILE_SIZE` for a net whose output is
    smaller than its input, rounded down to a size the model takes."""
    tile = fit_tile_size(model, DEFAULT_TILE_SIZE)
    if output_size(model, tile, tile) != (tile, tile):
        tile = fit_tile_size(model, PAPER_TILE_SIZE)
    return tile


def _covering_tile(model: nn.Module, side: int) -> int | None:
    """The smallest square input the model takes whose output is at least ``side`` on a side."""
    for tile in range(max(side, getattr(model, "min_input_size", 1)), side + _MAX_PROBE):
        if accepts_size(model, tile, tile) and min(output_size(model, tile, tile)) >= side:
            return tile
    return None


def size_step(model: nn.Module, tile_size: int) -> int:
    """The gap from ``tile_size`` to the next larger input size the model accepts
    (``check_size``); 1 for a model without ``check_size`` or one that takes every size.
    For U-Nets this is the total pooling stride ``2**depth``."""
    check = getattr(model, "check_size", None)
    if check is None:
        return 1
    for gap in range(1, _MAX_PROBE + 1):
        if _accepts(model, tile_size + gap):
            return gap
    return 1


def fit_tile_size(model: nn.Module, at_most: int) -> int:
    """The largest square tile size ``<= at_most`` the model accepts (its ``check_size``
    and ``min_input_size``); ``ValueError`` if there is none."""
    smallest = getattr(model, "min_input_size", 1)
    for size in range(at_most, max(smallest, at_most - _MAX_PROBE) - 1, -1):
        if _accepts(model, size):
            return size
    raise ValueError(f"{type(model).__name__} takes no tile size between {max(smallest, at_most - _MAX_PROBE)} "
                     f"and {at_most}")


def _plan_axis(length: int, tile: int, output: int, overlap: int, size_gap: int) -> AxisPlan:
    if overlap >= output:
        raise ValueError(f"overlap {overlap} must be smaller than the output tile ({output} pixels for a "
                         f"{tile}-pixel input tile)")
    # Round the step down to a multiple of the size step (keeps tiles on the pooling grid).
    step = (output - overlap) // size_gap * size_gap
    if step < 1:
        raise ValueError(f"overlap {overlap} leaves no step between tiles: the output tile is {output} pixels "
                         f"and tile offsets must be multiples of {size_gap}; use a smaller overlap or a "
                         "larger tile_size")
    count = 1 + math.ceil(max(length - output, 0) / step)
    margin = (tile - output) // 2
    return AxisPlan(length, tile, output, margin, output - step, step, count)


def _check_tile_size(model: nn.Module, tile_size: int) -> int:
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive integer, got {tile_size!r}")
    smallest = getattr(model, "min_input_size", 1)
    if tile_size < smallest:
        raise ValueError(f"tile_size {tile_size} is below {type(model).__name__}'s minimum input size {smallest}")
    check = getattr(model, "check_size", None)
    if check is not None:
        try:
            check(tile_size, tile_size)
        except ValueError as error:
            raise ValueError(f"tile_size {tile_size} does not suit {type(model).__name__}: {error}") from None
    return tile_size


def output_size(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    """The spatial size of the model's output for an ``height x width`` input: its
    ``output_size`` (the Segmenter contract), else the input's own."""
    method = getattr(model, "output_size", None)
    if method is None:
        return height, width
    out_h, out_w = method(height, width)
    return int(out_h), int(out_w)


def _tile_output_size(model: nn.Module, tile: int) -> tuple[int, int]:
    out_h, out_w = output_size(model, tile, tile)
    if not (0 < out_h <= tile and 0 < out_w <= tile):
        raise ValueError(f"{type(model).__name__}.output_size({tile}, {tile}) = {(out_h, out_w)}; "
                         "tiling needs an output no larger than the tile and not empty")
    return int(out_h), int(out_w)


def accepts_size(model: nn.Module, height: int, width: int) -> bool:
    """Whether ``model`` takes an ``height x width`` input: at least its ``min_input_size``
    and passing its ``check_size`` (the Segmenter contract); any size for a model without them."""
    if min(height, width) < getattr(model, "min_input_size", 1):
        return False
    check = getattr(model, "check_size", None)
    if check is None:
        return True
    try:
        check(height, width)
    except ValueError:
        return False
    return True


def _accepts(model: nn.Module, size: int) -> bool:
    return accepts_size(model, size, size)


def _window(axis: AxisPlan, k: int, device: torch.device) -> Tensor:
    """The image indices of tile ``k``'s input window along one axis, mirrored at the borders."""
    start = axis.input_start(k)
    return torch.tensor(mirror_positions(range(start, start + axis.tile), axis.length), device=device)


def _gather_tile(image: Tensor, plan: TilePlan, k: int, l: int) -> Tensor:
    rows, cols = _window(plan.rows, k, image.device), _window(plan.cols, l, image.device)
    return image[:, rows[:, None], cols[None, :]]


def _tile_indices(num_images: int, plan: TilePlan) -> Iterator[tuple[int, int, int]]:
    """(image, tile row, tile column) in raster order, image by image."""
    for n in range(num_images):
        for k in range(plan.rows.count):
            for l in range(plan.cols.count):
                yield n, k, l


def _batches(items: Iterator[tuple[int, int, int]], size: int) -> Iterator[list[tuple[int, int, int]]]:
    batch: list[tuple[int, int, int]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_output(outputs: Tensor, inputs: Tensor, plan: TilePlan, model: nn.Module) -> None:
    expected = (inputs.shape[0], plan.rows.output, plan.cols.output)
    if outputs.dim() != 4 or (outputs.shape[0], *outputs.shape[-2:]) != expected:
        raise ValueError(f"{type(model).__name__} gave {tuple(outputs.shape)} for tiles {tuple(inputs.shape)}; "
                         f"expected N x K x {plan.rows.output} x {plan.cols.output} (its output_size)")


def model_device(model: nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer (``default``, else the CPU, for a
    model with neither)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return default if default is not None else torch.device("cpu")


class _StripSink:
    """Blends tile outputs into one row strip at a time and writes finished rows out.

    Tiles arrive in raster order. The strip holds output rows ``[k*step, k*step + O)`` of
    the current tile row ``k`` (the weighted sum and the weights); when row ``k + 1``
    starts, rows ``[k*step, (k+1)*step)`` have all their tiles and are written out.
    """

    def __init__(self, plan: TilePlan, num_images: int, device: torch.device, labels: bool) -> None:
        self.plan = plan
        self.num_images = num_images
        self.device = device
        self.labels = labels
        self.result_tensor: Tensor | None = None
        self.strip: Tensor | None = None
        self.weight = torch.zeros(plan.rows.output, plan.cols.length, device=device)
        self.position: tuple[int, int] | None = None  # (image, tile row) held in the strip
        self.col_windows = [plan.cols.window(l) for l in range(plan.cols.count)]
        self.row_windows = [plan.rows.window(k) for k in range(plan.rows.count)]

    def add(self, n: int, k: int, l: int, output: Tensor) -> None:
        if self.strip is None:
            self._allocate(output)
        if self.position != (n, k):
            if self.position is not None:
                self._flush(final=self.position[0] != n)  # a new image: the last one is done
            self.position = (n, k)
        cols = self.plan.cols
        start = cols.output_start(l)
        width = min(cols.output, cols.length - start)  # the overhang past the border is dropped
        window = torch.outer(self.row_windows[k], self.col_windows[l][:width]).to(self.device, output.dtype)
        self.strip[:, :, start : start + width] += output[:, :, :width] * window
        self.weight[:, start : start + width] += window.to(self.weight.dtype)

    def result(self) -> Tensor:
        if self.position is not None:
            self._flush(final=True)
        return self.result_tensor

    def _allocate(self, output: Tensor) -> None:
        classes = output.shape[0]
        rows, cols = self.plan.rows, self.plan.cols
        self.strip = torch.zeros(classes, rows.output, cols.length, dtype=output.dtype, device=self.device)
        self.weight = self.weight.to(output.dtype)
        if self.labels:
            dtype = torch.uint8 if classes <= 256 else torch.int32
            shape = (self.num_images, rows.length, cols.length)
        else:
            dtype = output.dtype
            shape = (self.num_images, classes, rows.length, cols.length)
        self.result_tensor = torch.empty(shape, dtype=dtype, device=self.device)

    def _flush(self, final: bool) -> None:
        """Write out the finished rows of the strip (all of them when ``final``) and slide it."""
        n, k = self.position
        rows = self.plan.rows
        top = rows.output_start(k)
        done = min(rows.output if final else rows.step, rows.length - top)
        blended = self.strip[:, :done] / self.weight[:done]
        if self.labels:
            self.result_tensor[n, top : top + done] = blended.argmax(dim=0).to(self.result_tensor.dtype)
        else:
            self.result_tensor[n, :, top : top + done] = blended
        if final:
            self.strip.zero_()
            self.weight.zero_()
        else:
            keep = rows.output - rows.step
            self.strip[:, :keep] = self.strip[:, rows.step :].clone()
            self.strip[:, keep:] = 0
            self.weight[:keep] = self.weight[rows.step :].clone()
            self.weight[keep:] = 0
