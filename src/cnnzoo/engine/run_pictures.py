"""The pictures a training run leaves in ``RUN_DIR/plots``: the curves, redrawn as the run
goes, and the confusion matrix and segmentation overlays (or an auto-encoder's
reconstructions) of the best epoch, drawn once at the end (:mod:`cnnzoo.engine.plots`
draws them; this module decides what and when).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.data.spec import DENSE_TASKS, DataSpec
from cnnzoo.engine.batches import ModelFeed
from cnnzoo.engine.checkpoint import read_checkpoint
from cnnzoo.engine.plots import plot_confusion, plot_curves, plot_overlays, plot_reconstructions
from cnnzoo.layers.spatial import center_crop

__all__ = ["CURVES_INTERVAL", "RunPictures"]

# The curves are redrawn after an epoch when this many seconds have passed since the last
# drawing (a drawing takes about a second), and always at the end of the run.
CURVES_INTERVAL = 60.0


@dataclass
class _BestPictures:
    """What the best epoch's pictures need: its confusion matrix (none for reconstruction)
    and, for segmentation and reconstruction, a few validation images with their truth and
    prediction."""

    epoch: int
    confusion: Any | None
    overlays: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


class RunPictures:
    """Draws one run's pictures into ``plots``; does nothing when ``enabled`` is false
    (every process but rank 0 under torchrun)."""

    def __init__(self, plots: Path, spec: DataSpec, title: str, feed: ModelFeed, num_overlays: int,
                 enabled: bool = True) -> None:
        self.plots = plots
        self.spec = spec
        self.title = title
        self.feed = feed
        self.num_overlays = num_overlays if spec.task in DENSE_TASKS else 0
        self.enabled = enabled
        self.best: _BestPictures | None = None
        self.curves_drawn = time.perf_counter()

    def epoch_done(self, history: list[dict[str, Any]], results: dict[str, Any], model: nn.Module,
                   improved: bool) -> None:
        """After an epoch: redraw the curves when they are :data:`CURVES_INTERVAL` old, and
        keep what the best epoch's pictures need when this epoch is the best so far."""
        if not self.enabled:
            return
        if time.perf_counter() - self.curves_drawn > CURVES_INTERVAL:
            self.draw_curves(history)
        if improved:
            self.best = _BestPictures(history[-1]["epoch"], results.get("confusion"), self._overlay_samples(model))

    def draw_curves(self, history: list[dict[str, Any]]) -> None:
        if self.enabled and history:
            plot_curves(history, self.spec.task, self.plots / "curves.png", title=self.title)
        self.curves_drawn = time.perf_counter()

    def draw_all(self, history: list[dict[str, Any]], model: nn.Module, run_dir: Path) -> None:
        """The curves, and the confusion matrix and overlays of the best epoch (of this run,
        or for a resumed run that did not improve, of the saved ``best`` checkpoint)."""
        self.draw_curves(history)
        if not self.enabled:
            return
        best = self.best or self._best_from_checkpoint(model, run_dir)
        if best is None:
            return
        spec = self.spec
        if best.confusion is not None:
            plot_confusion(best.confusion, spec.class_names, self.plots / "confusion.png",
                           title=f"confusion matrix, validation, epoch {best.epoch} (best)")
        if best.overlays is not None and spec.task == "reconstruction":
            images, _, reconstructions = best.overlays
            title = f"{self.title}, epoch {best.epoch} (best):\nvalidation images (top), reconstructions (bottom)"
            plot_reconstructions(images, reconstructions, self.plots / "reconstructions.png", title=title)
        elif best.overlays is not None:
            plot_overlays(*best.overlays, spec.num_classes, self.plots / "overlays.png", spec.class_names,
                          spec.ignore_index)

    def _best_from_checkpoint(self, model: nn.Module, run_dir: Path) -> _BestPictures | None:
        if not (run_dir / "best.json").is_file():
            return None
        weights, meta = read_checkpoint(run_dir, "best")
        best_model = None
        if self.num_overlays:
            best_model = copy.deepcopy(model)
            best_model.load_state_dict(weights)
        return _BestPictures(meta.epoch, meta.metrics.get("confusion"), self._overlay_samples(best_model))

    @torch.no_grad()
    def _overlay_samples(self, model: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The first validation images, their truth and the model's prediction (the labels, or
        the reconstructed images), cropped to the logits."""
        count = min(self.num_overlays, len(self.spec.val))
        if model is None or count == 0:
            return None
        samples = [self.spec.val[i] for i in range(count)]
        images = torch.stack([s["image"] for s in samples]).to(self.feed.device)
        targets = torch.stack([s["target"] for s in samples]).to(self.feed.device)
        model.eval()
        logits = self.feed.logits(model, images)
        if self.spec.task == "reconstruction":
            return images.cpu(), targets.cpu(), logits.clamp(0, 1).cpu()
        height, width = logits.shape[-2:]
        return (center_crop(images, height, width).cpu(), center_crop(targets, height, width).cpu(),
                logits.argmax(1).cpu())
