"""A picture of where a model's cost goes: MACs and parameters per block."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cnnzoo._atomic import write_atomically

if TYPE_CHECKING:
    from cnnzoo.analysis.summary import Summary

__all__ = ["plot_summary"]


def plot_summary(summary: "Summary", path: str | os.PathLike, depth: int = 1, title: str | None = None) -> Path:
    """Horizontal bar charts of MACs and parameters of the blocks ``depth`` levels deep
    (1: the model's children), one bar per block in execution order. The image format
    follows the file suffix (``.png`` when there is none); a missing folder is created, and
    the file is written to a temporary name in that folder and renamed, so a reader never
    sees half an image.
    ``title`` defaults to the model's class name and input size.
    """
    # The object-oriented Agg API: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    suffix = path.suffix.lstrip(".").lower() or "png"
    groups = summary.grouped(depth)
    labels = [f"{g.label} ({g.type})" for g in groups]
    total = summary.total
    height = max(3.0, 0.28 * len(groups) + 1.5)
    figure = Figure(figsize=(12, height), layout="constrained")
    FigureCanvasAgg(figure)
    ax_macs, ax_params = figure.subplots(1, 2, sharey=True)
    positions = range(len(groups))
    ax_macs.barh(positions, [g.macs / 1e6 for g in groups], color="tab:blue")
    ax_params.barh(positions, [g.params / 1e6 for g in groups], color="tab:orange")
    ax_macs.set_yticks(list(positions), labels, fontsize=8)
    ax_macs.set_ylim(len(groups) - 0.5, -0.5)  # first block on top; no margins, which grow with the bars
    ax_macs.set_xlabel("MACs (millions; FLOPs = 2 x MACs)")
    ax_params.set_xlabel("parameters (millions)")
    for ax in (ax_macs, ax_params):
        ax.grid(axis="x", alpha=0.3)
    title = title or f"{summary.model_name}, input {'x'.join(map(str, total.input_size))}"
    figure.suptitle(f"{title}: {total.macs / 1e9:.3g} GMACs, {total.params / 1e6:.3g} M parameters")
    return write_atomically(path, lambda stream: figure.savefig(stream, format=suffix, dpi=120), create_folder=True)
