"""A matplotlib figure on its own Agg canvas, and its PNG written atomically: the one home
of what every picture cnnzoo draws (training plots, experiments, visualize) starts and
ends with."""

from __future__ import annotations

import os
from pathlib import Path

from cnnzoo.utils.atomic import write_atomically

__all__ = ["new_figure", "save_figure"]


def new_figure(width: float, height: float):
    """A matplotlib Figure of ``width x height`` inches on its own Agg canvas."""
    # Imported here: matplotlib takes longer to import than the rest of cnnzoo.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike) -> Path:
    """The figure as a PNG at ``path``, written atomically (its folder created)."""
    return write_atomically(path, lambda stream: figure.savefig(stream, format="png", dpi=100), create_folder=True)
