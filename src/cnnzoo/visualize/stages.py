"""Where to look inside a network: its stage maps, its first and its deepest convolution.

A zoo classifier describes its stages itself (``forward_features``, one map per stage,
named by ``feature_info``). Any other module (a segmenter, a hand-built ``nn.Sequential``)
is read through the outputs of its direct children that are image maps (``N x C x H x W``
tensors), in the order they run; a module without children is one stage, its output.
Convolutions are found in the order they *run*, not the order they were registered,
since a model may build its layers in another order than it calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.models._base import Classifier

__all__ = ["StageMap", "StageOutput", "class_scores", "deepest_conv", "executed_convs", "first_conv", "stage_maps"]


@dataclass
class StageMap:
    """One stage's output map (``1 x C x H x W``) and its name."""

    name: str
    map: torch.Tensor


def class_scores(output: torch.Tensor) -> torch.Tensor:
    """``N x K`` class scores of a model's output: a classifier's logits as they are, a
    segmenter's ``N x K x H x W`` logits summed over the pixels (the score of a class in the
    whole image, whose gradient Grad-CAM and saliency take per class)."""
    if not isinstance(output, torch.Tensor) or output.dim() not in (2, 4):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model must return N x K class scores or N x K x H x W logits, got {shape}")
    return output if output.dim() == 2 else output.sum(dim=(2, 3))


def _run_with_hooks(model: nn.Module, x: torch.Tensor, modules: dict[str, nn.Module],
                    keep: Callable[[torch.Tensor], bool]) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """``(name, module, output)`` of each of ``modules`` whose output ``keep`` accepts, in the
    order they ran during one forward pass of ``model`` on ``x``."""
    seen: list[tuple[str, nn.Module, torch.Tensor]] = []

    def recorder(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and keep(output):
                seen.append((name, module, output))
        return record

    handles = [module.register_forward_hook(recorder(name)) for name, module in modules.items()]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def executed_convs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Conv2d, torch.Tensor]]:
    """Every ``nn.Conv2d`` of ``model`` that ran on ``x``: ``(dotted name, layer, output)``, in
    the order they ran (a layer called twice appears twice)."""
    convs = {name: module for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}
    with torch.no_grad():
        return _run_with_hooks(model, x, convs, lambda output: True)  # type: ignore[return-value]


def first_conv(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Conv2d]:
    """The first convolution ``model`` runs on ``x`` (its first layer's filters); ``ValueError``
    for a model that runs none."""
    convs = executed_convs(model, x)
    if not convs:
        raise ValueError(f"{type(model).__name__} runs no nn.Conv2d: it has no first-layer filters to draw")
    name, layer, _ = convs[0]
    return name, layer


def deepest_conv(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Conv2d]:
    """The convolution whose output is the smallest map (the last of those, when several
    are): the last convolutional stage of an encoder-decoder or of any plain network."""
    convs = executed_convs(model, x)
    if not convs:
        raise ValueError(f"{type(model).__name__} runs no nn.Conv2d: Grad-CAM needs a convolutional layer")
    smallest = min(output.shape[-2] * output.shape[-1] for _, _, output in convs)
    name, layer, _ = [c for c in convs if c[2].shape[-2] * c[2].shape[-1] == smallest][-1]
    return name, layer


def _image_map(output: torch.Tensor) -> bool:
    return output.dim() == 4


def stage_maps(model: nn.Module, x: torch.Tensor) -> list[StageMap]:
    """The maps of ``model``'s stages on ``x`` (see the module docstring), shallow to deep."""
    with torch.no_grad():
        if isinstance(model, Classifier):
            names = [info.name for info in model.feature_info]
            return [StageMap(name, m) for name, m in zip(names, model.forward_features(x))]
        children = dict(model.named_children())
        if not children:
            output = model(x)
            if not (isinstance(output, torch.Tensor) and _image_map(output)):
                raise ValueError(f"{type(model).__name__} gives no image map (N x C x H x W) to look at")
            return [StageMap("output", output)]
        maps = [StageMap(name, output) for name, _, output in _run_with_hooks(model, x, children, _image_map)]
    if not maps:
        raise ValueError(f"no child of {type(model).__name__} gives an image map (N x C x H x W) to look at")
    return maps


def _check_stage(count: int, stage: int) -> int:
    if isinstance(stage, bool) or not isinstance(stage, int) or not -count <= stage < count:
        raise ValueError(f"stage must be an index from 0 to {count - 1} (or -{count} to -1 from the deepest), "
                         f"got {stage!r}")
    return stage % count


class StageOutput(nn.Module):
    """``model`` cut after one stage: its forward gives that stage's map (with gradients).

    What the effective receptive field differentiates, and what
    :func:`cnnzoo.analysis.summarize` reads the theoretical receptive field of: both see the
    same map. ``stage`` counts as :func:`stage_maps` does (negative from the deepest);
    ``names`` are the stages' names, ``count`` how many there are.
    """

    def __init__(self, model: nn.Module, stage: int, probe: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.names = [s.name for s in stage_maps(model, probe)]
        self.index = _check_stage(len(self.names), stage)

    @property
    def name(self) -> str:
        return self.names[self.index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, Classifier):
            return self.model.forward_features(x)[self.index]
        children = dict(self.model.named_children())
        if not children:
            return self.model(x)
        # the index-th child giving an image map, as stage_maps counted them
        outputs = _run_with_hooks(self.model, x, children, _image_map)
        return outputs[self.index][2]
