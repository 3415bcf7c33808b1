"""``cnnzoo experiment checkerboard``: the overlap of transposed convolutions, counted and
seen in trained decoders.

The exact part is :mod:`cnnzoo.analysis.checkerboard` (kernel taps per output pixel). Here
small decoders learn the same upsampling by the stride (default 2) of smooth images (a 14x14
average-pooled image back to its original; the images are seeded random low-frequency
fields, so no data set is needed):

* ``transposed kK``: a ``K x K`` stride-2 transposed convolution, by default K = 3 (uneven
  overlap: 1/2/4 taps) and K = 4 (even overlap: 4 taps);
* ``resize-conv (nearest)``: nearest-neighbour (or bilinear) resize, then a 3x3
  convolution (U-Net's way).

Each has 16 channels, a ReLU and a 1x1 output convolution (no further smoothing), and trains
with Adam on the mean squared error for the same number of steps, on one thread (layers
this small run several times slower when two threads share them). The artefact is measured
as the **phase contrast**: split a map into its ``s x s`` phases (for stride 2: even/odd
rows x columns), take each phase's mean, report max - min. A checkerboard makes the phases
differ; a smooth map has a contrast near 0. It is computed on the decoders' errors over
held-out images and on their outputs for a flat grey input (there over the output's mean).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.analysis.checkerboard import (
    TapStats,
    interior,
    resize_conv_tap_counts,
    tap_stats,
    transposed_interior,
    upsampling_padding,
)
from cnnzoo.engine.experiments import default_output_folder
from cnnzoo.engine.speed import use_threads
from cnnzoo.utils.atomic import check_new_folder, write_atomically
from cnnzoo.utils.figures import new_figure, save_figure
from cnnzoo.utils.text import format_table

__all__ = ["CheckerboardResult", "DecoderRow", "build_decoders", "phase_contrast", "run_checkerboard",
           "smooth_images", "tap_maps"]

INPUT_SIDE = 14  # the decoders' input side; their output is INPUT_SIDE * stride
UPSAMPLE_MODES = ("nearest", "bilinear")


def _check_options(kernels: tuple[int, ...], stride: int, upsample: str, steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 2 <= stride <= 4:
        raise ValueError(f"stride must be 2, 3 or 4 (an upsampling of {INPUT_SIDE}x{INPUT_SIDE} inputs), got {stride}")
    if not kernels or len(kernels) > 4 or len(set(kernels)) != len(kernels):
        raise ValueError(f"give one to four different kernel sizes, got {list(kernels)}")
    if any(not 1 <= k <= 9 for k in kernels):
        raise ValueError(f"kernel sizes must be 1 to 9, got {list(kernels)}")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")


def resize_conv_name(upsample: str) -> str:
    return f"resize-conv ({upsample})"


def build_decoders(kernels: tuple[int, ...] = (3, 4), stride: int = 2, upsample: str = "nearest",
                   channels: int = 16) -> dict[str, nn.Module]:
    """One decoder per transposed-convolution kernel and one resize-then-convolve, 1 channel
    in, 1 out, each upsampling by exactly ``stride``."""
    def head(upsampling: nn.Module) -> nn.Module:
        return nn.Sequential(upsampling, nn.ReLU(), nn.Conv2d(channels, 1, 1))

    decoders = {}
    for kernel in kernels:
        padding, output_padding = upsampling_padding(kernel, stride)
        decoders[f"transposed k{kernel}"] = head(nn.ConvTranspose2d(1, channels, kernel, stride=stride,
                                                                    padding=padding, output_padding=output_padding))
    resize = nn.Upsample(scale_factor=stride, mode=upsample, **({} if upsample == "nearest" else
                                                                 {"align_corners": False}))
    decoders[resize_conv_name(upsample)] = head(nn.Sequential(resize, nn.Conv2d(1, channels, 3, padding=1)))
    return decoders


def smooth_images(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` smooth 1 x side x side images in [0, 1]: 7x7 uniform noise resized bilinearly."""
    coarse = torch.rand(count, 1, 7, 7, generator=generator)
    return F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def phase_contrast(maps: torch.Tensor, period: int = 2) -> float:
    """Max - min of the ``period x period`` phase means of ``maps`` (N x 1 x H x W)."""
    phases = [maps[..., row::period, col::period].mean() for row in range(period) for col in range(period)]
    return float(max(phases) - min(phases))


def tap_maps(kernels: tuple[int, ...] = (3, 4), stride: int = 2, upsample: str = "nearest") -> dict[str, np.ndarray]:
    """The interior tap counts of the decoders' upsampling layers (on an input large enough
    to leave several periods inside)."""
    size_in = max(8, 2 * max(kernels))
    maps = {f"transposed k{k}": transposed_interior(size_in, k, stride, *upsampling_padding(k, stride))
            for k in kernels}
    maps[resize_conv_name(upsample)] = interior(resize_conv_tap_counts(size_in, 3, stride), 1)
    return maps


@dataclass
class DecoderRow:
    name: str
    params: int
    taps: TapStats  # of its upsampling layer, interior
    test_mse: float
    error_contrast: float  # phase contrast of (output - target) on held-out images
    flat_contrast: float  # phase contrast of the output for a flat 0.5 input, over its mean
    seconds: float


@dataclass
class CheckerboardResult:
    rows: list[DecoderRow]
    figure: Path
    table: str
    numbers: Path  # checkerboard.json
    csv: Path
    markdown: Path


def _train(model: nn.Module, steps: int, side: int, stride: int, generator: torch.Generator) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    started = time.perf_counter()
    for _ in range(steps):
        target = smooth_images(32, side, generator)
        loss = F.mse_loss(model(F.avg_pool2d(target, stride)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def _flat_margin(kernels: tuple[int, ...], stride: int) -> int:
    """The border a flat input's output loses: the widest uncovered edge (``k - 1 - p + op``
    of a transposed kernel, 1 of the 3x3 convolution), rounded up to whole periods so that
    every phase keeps as many pixels."""
    edges = [1]
    for kernel in kernels:
        padding, output_padding = upsampling_padding(kernel, stride)
        edges.append(kernel - 1 - padding + output_padding)
    return stride * -(-max(edges) // stride)


def _flat_output(model: nn.Module, margin: int) -> torch.Tensor:
    """The output for a flat 0.5 input, less a ``margin`` where zero padding sets it."""
    with torch.no_grad():
        flat = model(torch.full((1, 1, INPUT_SIDE, INPUT_SIDE), 0.5))
    return flat[..., margin:-margin, margin:-margin]


def run_checkerboard(out: str | os.PathLike | None = None, steps: int = 300, seed: int = 0, kernels: tuple[int, ...] = (3, 4),
                     stride: int = 2, upsample: str = "nearest") -> CheckerboardResult:
    """Count the taps, train the decoders for ``steps`` steps each, write
    ``checkerboard.png``, ``.md``, ``.csv`` and ``.json`` into ``out`` (new or empty;
    default ``runs/experiments/checkerboard-TIMESTAMP``)."""
    kernels = tuple(kernels)
    _check_options(kernels, stride, upsample, steps)
    out_dir = check_new_folder(Path(out) if out is not None else default_output_folder("checkerboard"))
    maps = tap_maps(kernels, stride, upsample)
    side = INPUT_SIDE * stride
    margin = _flat_margin(kernels, stride)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    test = smooth_images(64, side, torch.Generator().manual_seed(seed + 1))
    rows, outputs = [], {}
    with use_threads(1):
        for name, model in build_decoders(kernels, stride, upsample).items():
            seconds = _train(model, steps, side, stride, generator)
            with torch.no_grad():
                error = model(F.avg_pool2d(test, stride)) - test
            outputs[name] = flat = _flat_output(model, margin)
            rows.append(DecoderRow(name, sum(p.numel() for p in model.parameters()), tap_stats(maps[name]),
                                   float(error.pow(2).mean()), phase_contrast(error, stride),
                                   phase_contrast(flat, stride) / max(abs(float(flat.mean())), 1e-8), seconds))
    table = _table(rows)
    figure = _plot(maps, outputs, out_dir / "checkerboard.png", steps, stride)
    numbers = write_atomically(out_dir / "checkerboard.json", lambda s: s.write(json.dumps(
        {"steps": steps, "seed": seed, "stride": stride, "kernels": list(kernels), "upsample": upsample,
         "tap_counts": {k: v.tolist() for k, v in maps.items()}, "decoders": [asdict(r) for r in rows]},
        indent=2).encode()), create_folder=True)
    csv_path = write_atomically(out_dir / "checkerboard.csv", lambda s: s.write(_csv(rows)))
    markdown = write_atomically(out_dir / "checkerboard.md", lambda s: s.write((table + "\n").encode()))
    return CheckerboardResult(rows, figure, table, numbers, csv_path, markdown)


def _table(rows: list[DecoderRow]) -> str:
    header = ["decoder", "params", "taps", "period", "tap strength", "test MSE", "error phase contrast",
              "flat-input phase contrast"]
    cells = [[r.name, str(r.params), f"{r.taps.minimum}-{r.taps.maximum}", "x".join(map(str, r.taps.period)),
              f"{r.taps.strength:.3f}", f"{r.test_mse:.2e}", f"{r.error_contrast:.2e}", f"{r.flat_contrast:.3f}"]
             for r in rows]
    return format_table(header, cells, align_right={1, 2, 3, 4, 5, 6, 7}, markdown=True)


def _csv(rows: list[DecoderRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["decoder", "params", "taps_min", "taps_max", "period_rows", "period_cols", "tap_strength",
                     "test_mse", "error_phase_contrast", "flat_phase_contrast", "seconds"])
    for r in rows:
        writer.writerow([r.name, r.params, r.taps.minimum, r.taps.maximum, *r.taps.period, f"{r.taps.strength:.6f}",
                         f"{r.test_mse:.6e}", f"{r.error_contrast:.6e}", f"{r.flat_contrast:.6f}", f"{r.seconds:.2f}"])
    return buffer.getvalue().encode()


def _plot(maps: dict[str, np.ndarray], outputs: dict[str, torch.Tensor], path: Path, steps: int,
          stride: int) -> Path:
    figure = new_figure(4 * len(maps), 6.5)
    axes = figure.subplots(2, len(maps), squeeze=False)
    for column, (name, counts) in enumerate(maps.items()):
        top = axes[0][column].imshow(counts, cmap="viridis", vmin=0)
        axes[0][column].set_title(f"{name}: kernel taps per pixel\n(interior; {counts.min()} to {counts.max()})",
                                  fontsize=9)
        figure.colorbar(top, ax=axes[0][column], shrink=0.8)
        shown = outputs[name][0, 0].numpy()
        bottom = axes[1][column].imshow(shown, cmap="gray")
        axes[1][column].set_title(f"{name}: trained output, flat 0.5 input\n(after {steps} steps; "
                                  f"{shown.min():.3f} to {shown.max():.3f}, grey scale stretched)", fontsize=9)
        figure.colorbar(bottom, ax=axes[1][column], shrink=0.8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"Stride-{stride} transposed-convolution overlap (Odena et al. 2016) against "
                    "resize-then-convolve", fontsize=10)
    return save_figure(figure, path)
