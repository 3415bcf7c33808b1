"""A picture of where a model's cost goes: MACs and parameters per block, as a PNG (or
any format matplotlib writes), drawn from the grouped rows and totals of a summary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cnnzoo.analysis.records import Row, Total
from cnnzoo.utils.atomic import write_atomically

__all__ = ["plot_costs"]


def plot_costs(model_name: str, blocks: Sequence[Row], total: Total, path: str | os.PathLike,
               title: str | None = None) -> Path:
    """Horizontal bar charts of the MACs and parameters of ``blocks``, one bar per block in
    execution order, written to ``path``. The image format follows the file suffix
    (``.png`` when there is none); a missing folder is created, and the file is written to
    a temporary name in that folder and renamed, so a reader never sees half an image.
    ``title`` defaults to the model's name and input size.
    """
    # Imported here: matplotlib takes longer to import than the rest of cnnzoo.analysis.
    # The object-oriented Agg API: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    suffix = path.suffix.lstrip(".").lower() or "png"
    labels = [f"{b.label} ({b.type})" for b in blocks]
    height = max(3.0, 0.28 * len(blocks) + 1.5)
    figure = Figure(figsize=(12, height), layout="constrained")
    FigureCanvasAgg(figure)
    ax_macs, ax_params = figure.subplots(1, 2, sharey=True)
    positions = range(len(blocks))
    ax_macs.barh(positions, [b.macs / 1e6 for b in blocks], color="tab:blue")
    ax_params.barh(positions, [b.params / 1e6 for b in blocks], color="tab:orange")
    ax_macs.set_yticks(list(positions), labels, fontsize=8)
    ax_macs.set_ylim(len(blocks) - 0.5, -0.5)  # first block on top; no margins, which grow with the bars
    ax_macs.set_xlabel("MACs (millions; FLOPs = 2 x MACs)")
    ax_params.set_xlabel("parameters (millions)")
    for ax in (ax_macs, ax_params):
        ax.grid(axis="x", alpha=0.3)
    title = title or f"{model_name}, input {'x'.join(map(str, total.input_size))}"
    figure.suptitle(f"{title}: {total.macs / 1e9:.3g} GMACs, {total.params / 1e6:.3g} M parameters")
    return write_atomically(path, lambda stream: figure.savefig(stream, format=suffix, dpi=120), create_folder=True)
