"""All the pictures of one model on one image, written into one folder: what
``cnnzoo visualize`` does once it has the model and the prepared input."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cnnzoo.visualize.attribution import (
    Attribution,
    grad_cam,
    receptive_fields,
    saliency,
)
from cnnzoo.visualize.pictures import (
    draw_attributions,
    draw_features,
    draw_filters,
    draw_receptive_fields,
)
from cnnzoo.visualize.stages import first_conv, stage_maps

__all__ = ["PICTURES", "check_pictures", "write_pictures"]

# The pictures, in the order they are written; each is NAME.png.
PICTURES = ("gradcam", "saliency", "filters", "features", "erf")


def check_pictures(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as known picture names (each once, in the order given); ``ValueError`` otherwise."""
    unknown = [name for name in names if name not in PICTURES]
    if unknown or not names:
        raise ValueError(f"unknown picture {', '.join(unknown) or '(none given)'}: choose from {', '.join(PICTURES)}")
    return tuple(dict.fromkeys(names))


def _classes(model: nn.Module, x: torch.Tensor, target: int | None, per_class: bool) -> list[int | None]:
    """The classes to attribute: the one asked for, else the predicted one, else (a segmenter) all."""
    if target is not None or not per_class:
        return [target]
    with torch.no_grad():
        return list(range(model(x).shape[1]))


def write_pictures(
    model: nn.Module, x: torch.Tensor, image: torch.Tensor, out_dir: str | os.PathLike, *,
    what: Sequence[str] = PICTURES, class_names: Sequence[str] = (), target: int | None = None,
    per_class: bool = False, stage: int = -1, layer: str | None = None, channels: int = 8,
    erf_input: torch.Tensor | None = None,
) -> list[Path]:
    """Write ``out_dir/NAME.png`` for each picture in ``what`` (:data:`PICTURES`) of ``model``
    (eval mode) on the prepared ``1 x C x H x W`` input ``x``; ``image`` is the same input
    before normalization (``C x H x W`` in [0, 1]), for showing.

    ``target``: the class of Grad-CAM and saliency (default: the predicted one; with
    ``per_class``, a segmenter's, every class); ``layer``: Grad-CAM's layer; ``stage``: the
    stage of the effective receptive field (default the deepest), computed on ``erf_input``
    (default ``x``); ``channels``: channels shown per stage. Returns the files written.
    """
    what = check_pictures(what)
    out_dir = Path(out_dir)
    written = []
    classes = _classes(model, x, target, per_class)
    for name in what:
        path = out_dir / f"{name}.png"
        if name in ("gradcam", "saliency"):
            maps: list[Attribution] = [
                grad_cam(model, x, k, layer) if name == "gradcam" else saliency(model, x, k) for k in classes
            ]
            title = (f"Grad-CAM at {maps[0].layer} (Selvaraju et al. 2017)" if name == "gradcam"
                     else "saliency: max over channels of |d score / d input| (Simonyan et al. 2014)")
            written.append(draw_attributions(path, image, maps, class_names, title, overlay=name == "gradcam"))
        elif name == "filters":
            layer_name, conv = first_conv(model, x)
            written.append(draw_filters(path, layer_name, conv.weight))
        elif name == "features":
            written.append(draw_features(path, stage_maps(model, x), channels))
        else:
            written.append(draw_receptive_fields(path, receptive_fields(model, x if erf_input is None else erf_input,
                                                                        stage)))
    return written
