"""``cnnzoo experiment checkerboard``: the overlap of transposed convolutions, counted and
seen in trained decoders.

The exact part is :mod:`cnnzoo.analysis.checkerboard` (kernel taps per output pixel). Here
three small decoders learn the same 2x upsampling of smooth images (a 14x14 average-pooled
image back to its 28x28 original; the images are seeded random low-frequency fields, so no
data set is needed):

* ``transposed k3``: a 3x3 stride-2 transposed convolution (uneven overlap: 1/2/4 taps);
* ``transposed k4``: a 4x4 stride-2 transposed convolution (even overlap: 4 taps);
* ``resize-conv``: nearest-neighbour resize by 2, then a 3x3 convolution (U-Net's way).

Each has 16 channels, a ReLU and a 1x1 output convolution (no further smoothing), and trains
with Adam on the mean squared error for the same number of steps. The artefact is measured
as the **phase contrast**: split a map into its four 2x2 phases (even/odd rows x columns),
take each phase's mean, report max - min. A checkerboard makes the phases differ; a smooth
map has a contrast near 0. It is computed on the decoders' errors over held-out images and
on their outputs for a flat grey input.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.analysis.checkerboard import checkerboard_strength, interior, resize_conv_tap_counts, transposed_tap_counts
from cnnzoo.engine.experiments import new_output_folder
from cnnzoo.engine.plots import new_figure, save_figure
from cnnzoo.utils.atomic import write_atomically
from cnnzoo.utils.text import format_table

__all__ = ["CheckerboardResult", "DecoderRow", "build_decoders", "phase_contrast", "run_checkerboard",
           "smooth_images"]

SIDE = 28  # the decoders' output side; their input is SIDE // 2


def build_decoders(channels: int = 16) -> dict[str, nn.Module]:
    """The three decoders, 1 channel in, 1 out, each upsampling by 2."""
    def head(upsample: nn.Module) -> nn.Module:
        return nn.Sequential(upsample, nn.ReLU(), nn.Conv2d(channels, 1, 1))

    return {
        "transposed k3": head(nn.ConvTranspose2d(1, channels, 3, stride=2, padding=1, output_padding=1)),
        "transposed k4": head(nn.ConvTranspose2d(1, channels, 4, stride=2, padding=1)),
        "resize-conv": head(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          nn.Conv2d(1, channels, 3, padding=1))),
    }


def smooth_images(count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` smooth 1 x SIDE x SIDE images in [0, 1]: 7x7 uniform noise resized bilinearly."""
    coarse = torch.rand(count, 1, 7, 7, generator=generator)
    return F.interpolate(coarse, size=(SIDE, SIDE), mode="bilinear", align_corners=False)


def phase_contrast(maps: torch.Tensor) -> float:
    """Max - min of the four 2x2 phase means of ``maps`` (N x 1 x H x W, H and W even)."""
    phases = [maps[..., row::2, col::2].mean() for row in (0, 1) for col in (0, 1)]
    return float(max(phases) - min(phases))


@dataclass
class DecoderRow:
    name: str
    params: int
    test_mse: float
    error_contrast: float  # phase contrast of (output - target) on held-out images
    flat_contrast: float  # phase contrast of the output for a flat 0.5 input, over its mean
    seconds: float


@dataclass
class CheckerboardResult:
    rows: list[DecoderRow]
    tap_strength: dict[str, float]  # (max - min) / mean of the interior tap counts
    figure: Path
    table: str
    numbers: Path


def _train(model: nn.Module, steps: int, generator: torch.Generator) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    started = time.perf_counter()
    for _ in range(steps):
        target = smooth_images(32, generator)
        loss = F.mse_loss(model(F.avg_pool2d(target, 2)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def _measure(name: str, model: nn.Module, seconds: float, test: torch.Tensor) -> tuple[DecoderRow, torch.Tensor]:
    with torch.no_grad():
        output = model(F.avg_pool2d(test, 2))
        flat = model(torch.full((1, 1, SIDE // 2, SIDE // 2), 0.5))
    inner = flat[..., 2:-2, 2:-2]  # the border is zero padding's, not overlap's
    row = DecoderRow(name, sum(p.numel() for p in model.parameters()), float(F.mse_loss(output, test)),
                     phase_contrast(output - test), phase_contrast(inner) / max(abs(float(inner.mean())), 1e-8),
                     seconds)
    return row, inner[0, 0]


def tap_maps(size_in: int = 8) -> dict[str, np.ndarray]:
    """The interior tap counts of the three decoders' upsampling layers."""
    return {
        "transposed k3": interior(transposed_tap_counts(size_in, 3, 2, padding=1), 2),
        "transposed k4": interior(transposed_tap_counts(size_in, 4, 2, padding=1), 2),
        "resize-conv": interior(resize_conv_tap_counts(size_in, 3, 2), 2),
    }


def run_checkerboard(out: str | os.PathLike, steps: int = 300, seed: int = 0) -> CheckerboardResult:
    """Count the taps, train the three decoders for ``steps`` steps, write
    ``checkerboard.png``, ``checkerboard.md`` and ``checkerboard.json`` into ``out``
    (new or empty)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    out_dir = new_output_folder(Path(out))
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = tap_maps()
    strength = {name: checkerboard_strength(counts) for name, counts in maps.items()}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    test = smooth_images(64, torch.Generator().manual_seed(seed + 1))
    rows, outputs = [], {}
    for name, model in build_decoders().items():
        seconds = _train(model, steps, generator)
        row, outputs[name] = _measure(name, model, seconds, test)
        rows.append(row)
    header = ["decoder", "params", "tap strength", "test MSE", "error phase contrast", "flat-input phase contrast"]
    cells = [[r.name, str(r.params), f"{strength[r.name]:.3f}", f"{r.test_mse:.2e}", f"{r.error_contrast:.2e}",
              f"{r.flat_contrast:.3f}"] for r in rows]
    table = format_table(header, cells, align_right={1, 2, 3, 4, 5}, markdown=True)
    figure = _plot(maps, outputs, out_dir / "checkerboard.png", steps)
    numbers = write_atomically(out_dir / "checkerboard.json", lambda s: s.write(json.dumps(
        {"steps": steps, "seed": seed, "tap_strength": strength, "tap_counts": {k: v.tolist() for k, v in maps.items()},
         "decoders": [asdict(r) for r in rows]}, indent=2).encode()))
    write_atomically(out_dir / "checkerboard.md", lambda s: s.write((table + "\n").encode()))
    return CheckerboardResult(rows, strength, figure, table, numbers)


def _plot(maps: dict[str, np.ndarray], outputs: dict[str, torch.Tensor], path: Path, steps: int) -> Path:
    figure = new_figure(11, 6.5)
    axes = figure.subplots(2, 3)
    for column, (name, counts) in enumerate(maps.items()):
        top = axes[0][column].imshow(counts, cmap="viridis", vmin=0)
        axes[0][column].set_title(f"{name}: kernel taps per pixel\n(interior; {counts.min()} to {counts.max()})",
                                  fontsize=9)
        figure.colorbar(top, ax=axes[0][column], shrink=0.8)
        shown = outputs[name].numpy()
        bottom = axes[1][column].imshow(shown, cmap="gray")
        axes[1][column].set_title(f"{name}: trained output, flat 0.5 input\n(after {steps} steps; "
                                  f"{shown.min():.3f} to {shown.max():.3f}, grey scale stretched)", fontsize=9)
        figure.colorbar(bottom, ax=axes[1][column], shrink=0.8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("Transposed-convolution overlap (Odena et al. 2016) against resize-then-convolve", fontsize=10)
    return save_figure(figure, path)
