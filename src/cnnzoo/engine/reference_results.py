"""cnnzoo's own reference results: the recipes of ``configs/fashion-mnist/`` trained on this
project's machines, with the best published Fashion-MNIST result of each family beside them.

The figures live in ``fashion_mnist_results.json`` next to this module (shipped with the
package, so ``cnnzoo results`` works anywhere); each row is one recipe, each of its runs one
seed. Every figure in it was measured by a ``cnnzoo train --config RECIPE`` run, never copied;
the parameters and multiply-adds are the ones cnnzoo's cost calculus gives for the recipe's
model at 1x28x28 (a test recomputes them). ``docs/results.md`` holds the same table, written
by ``cnnzoo results --format markdown``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnzoo.utils.text import format_count

__all__ = ["RESULTS_FILE", "PublishedResult", "ReferenceRow", "ReferenceRun", "load_reference_results",
           "results_table"]

RESULTS_FILE = Path(__file__).with_name("fashion_mnist_results.json")


@dataclass(frozen=True)
class ReferenceRun:
    """One seed of a recipe: its last-epoch test and training accuracy, and how long it took
    on which hardware (``minutes`` from start to end, ``epoch_minutes`` in the epochs alone)."""

    seed: int
    test_acc1: float
    train_acc1: float | None
    minutes: float
    epoch_minutes: float
    hardware: str
    command_flags: str = ""


@dataclass(frozen=True)
class PublishedResult:
    """The best published Fashion-MNIST test accuracy for a network of a family (``None``
    where none is published) and what network it was."""

    network: str
    accuracy: float | None


@dataclass(frozen=True)
class ReferenceRow:
    """One recipe and its runs."""

    recipe: str
    model: str
    family: str
    params: int
    macs: int
    epochs: int
    runs: tuple[ReferenceRun, ...]
    published: PublishedResult
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 28  # the side the recipe trains at (Fashion-MNIST's own 28, or resized to it)

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(run.test_acc1 for run in self.runs)

    @property
    def spread(self) -> float | None:
        """The sample standard deviation of the test accuracy over the seeds (``None`` for one seed)."""
        return statistics.stdev(run.test_acc1 for run in self.runs) if len(self.runs) > 1 else None

    @property
    def command(self) -> str:
        flags = self.runs[0].command_flags
        return f"cnnzoo train --config {self.recipe}" + (f" {flags}" if flags else "")


def load_reference_results(path: str | Path = RESULTS_FILE) -> list[ReferenceRow]:
    """The rows of a results file (by default the shipped one), in the file's order."""
    with open(path, encoding="utf-8") as stream:
        document = json.load(stream)
    published = {family: PublishedResult(**entry) for family, entry in document["published"].items()}
    rows = []
    for entry in document["rows"]:
        runs = tuple(ReferenceRun(**run) for run in entry.pop("runs"))
        if not runs:
            raise ValueError(f"{path}: the row for {entry['recipe']} has no runs")
        rows.append(ReferenceRow(runs=runs, published=published[entry["family"]], **entry))
    return rows


RESULTS_HEADER = ("model", "test top-1", "seeds", "params", "MACs / image", "epochs", "minutes / run",
                  "published (family)", "command")


def results_table(rows: list[ReferenceRow]) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and the cells of the results table: the accuracy as mean (± standard
    deviation over the seeds when there are several), the published figure beside it."""
    body = []
    for row in rows:
        spread = "" if row.spread is None else f" ± {row.spread:.4f}"
        minutes = statistics.fmean(run.minutes for run in row.runs)
        published = row.published
        figure = "—" if published.accuracy is None else f"{published.accuracy:.3f}"
        body.append([
            _model_label(row), f"{row.mean_accuracy:.4f}{spread}", str(len(row.runs)), format_count(row.params),
            format_count(row.macs), str(row.epochs), f"{minutes:.1f}", f"{figure} ({published.network})",
            f"`{row.command}`",
        ])
    return RESULTS_HEADER, body


def _model_label(row: ReferenceRow) -> str:
    options = [f"{key}={value}" for key, value in row.model_kwargs.items()]
    if row.image_size != 28:
        options.append(f"at {row.image_size}x{row.image_size}")
    return f"{row.model} ({', '.join(options)})" if options else row.model
