"""What a network looks at, as tensors: Grad-CAM, gradient saliency, effective receptive field.

* Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017, Eq. 1-2): the maps ``A^k`` of a convolutional
  layer weighted by the spatial mean of the gradient of the class score ``y^c`` with respect
  to them, ``ReLU(sum_k alpha_k^c A^k)``, brought to the input's size. The layer is a zoo
  classifier's last stage (``forward_features(x)[-1]``), else the convolution giving the
  smallest map, or the one named.
* Saliency (Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps", ICLR 2014 workshop, Sec. 3.1): the maximum
  over the input channels of ``|d y^c / d x|``.
* Effective receptive field (Luo et al., "Understanding the Effective Receptive Field in
  Deep Convolutional Neural Networks", NeurIPS 2016, Sec. 2): the gradient of one centre
  unit of a stage's map (its channels summed) with respect to the input, in absolute value
  and summed over the input channels; beside it the theoretical receptive field that
  :func:`cnnzoo.analysis.summarize` derives layer by layer.

For a segmenter the class score is the sum of that class's logits over the pixels
(:func:`~cnnzoo.visualize.stages.class_scores`). Grad-CAM and saliency are captum's
(``LayerGradCam``, ``Saliency``); the effective receptive field is one autograd call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.analysis import summarize
from cnnzoo.models._base import Classifier
from cnnzoo.visualize.stages import StageOutput, class_scores, deepest_conv

__all__ = [
    "Attribution", "ReceptiveFields", "centre_unit", "effective_receptive_field", "grad_cam", "predicted_class",
    "receptive_fields", "saliency", "theoretical_receptive_field",
]


@dataclass
class Attribution:
    """An ``H x W`` map over the input (``values``) for class ``target``; ``layer`` names
    where Grad-CAM read its maps (empty for saliency)."""

    values: torch.Tensor
    target: int
    layer: str = ""


class _Scores(nn.Module):
    """``model`` with its output read as ``N x K`` class scores."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_scores(self.model(x))


class _StagesThenHead(nn.Module):
    """A zoo classifier run as ``forward_head(forward_features(x)[-1])`` (its own forward in
    eval mode) with the last stage's map passing through ``last_stage``, an identity that
    captum can hook as Grad-CAM's layer."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.last_stage = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_scores(self.classifier.forward_head(self.last_stage(self.classifier.forward_features(x)[-1])))


def _check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the input must be one image as a 1 x C x H x W tensor, got {shape}")


def predicted_class(model: nn.Module, x: torch.Tensor) -> int:
    """The class with the highest score on ``x`` (for a segmenter, the highest summed logit)."""
    _check_input(x)
    with torch.no_grad():
        return int(_Scores(model)(x).argmax(dim=1)[0])


def _target(model: nn.Module, x: torch.Tensor, target: int | None) -> int:
    if target is None:
        return predicted_class(model, x)
    with torch.no_grad():
        count = _Scores(model)(x).shape[1]
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < count:
        raise ValueError(f"the class index must be from 0 to {count - 1}, got {target!r}")
    return target


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None) -> Attribution:
    """Grad-CAM of class ``target`` (default: the predicted one) on the ``1 x C x H x W``
    input ``x``, at the input's size (bilinear), non-negative. ``layer`` names the module
    whose output is used (default: see the module docstring); ``ValueError`` for a model
    with no convolution or an unknown layer name."""
    # imported here: captum slows every command's start
    from captum.attr import LayerAttribution, LayerGradCam

    _check_input(x)
    target = _target(model, x, target)
    if layer is not None:
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"{type(model).__name__} has no layer named {layer!r}") from None
        forward, where = _Scores(model), layer
    elif isinstance(model, Classifier):
        forward = _StagesThenHead(model)
        module, where = forward.last_stage, model.feature_info[-1].name
    else:
        where, module = deepest_conv(model, x)
        forward = _Scores(model)
    cam = LayerGradCam(forward, module).attribute(x, target=target, relu_attributions=True)
    if not isinstance(cam, torch.Tensor) or cam.dim() != 4:
        raise ValueError(f"Grad-CAM needs an image map (N x C x H x W) at layer {where!r}")
    cam = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return Attribution(cam[0, 0].clamp_min(0), target, where)


def saliency(model: nn.Module, x: torch.Tensor, target: int | None = None) -> Attribution:
    """Simonyan et al.'s saliency map of class ``target`` (default: the predicted one): the
    maximum over the input channels of ``|d score / d x|``, ``H x W``."""
    from captum.attr import Saliency  # imported here, as in grad_cam

    _check_input(x)
    target = _target(model, x, target)
    gradient = Saliency(_Scores(model)).attribute(x.clone().requires_grad_(True), target=target, abs=True)
    return Attribution(gradient.detach()[0].amax(dim=0), target)


def centre_unit(height: int, width: int) -> tuple[int, int]:
    """The centre unit of an ``height x width`` map (the lower-right of the four for an even side)."""
    return height // 2, width // 2


def effective_receptive_field(model: nn.Module, x: torch.Tensor, stage: int = -1) -> torch.Tensor:
    """Luo et al.'s effective receptive field of ``model``'s stage ``stage`` (see
    :class:`~cnnzoo.visualize.stages.StageOutput`) on the input ``x``: ``|d y / d x|`` summed
    over the input channels, where ``y`` is the centre unit of the stage's map summed over
    its channels. ``H x W``, zero wherever the unit does not reach."""
    _check_input(x)
    staged = StageOutput(model, stage, x)
    x = x.detach().clone().requires_grad_(True)
    output = staged(x)
    row, column = centre_unit(*output.shape[-2:])
    (gradient,) = torch.autograd.grad(output[0, :, row, column].sum(), x)
    return gradient[0].abs().sum(dim=0)


@dataclass
class ReceptiveFields:
    """The effective receptive field (``erf``, ``H x W``) and the theoretical one (``size``,
    per axis; ``None`` where the summary found none) of the centre unit of ``stage``."""

    stage: str
    erf: torch.Tensor
    size: tuple[float, float] | None
    jump: tuple[float, float] | None

    def erf_centre(self) -> tuple[float, float]:
        """The effective field's centre of mass (row, column), where the theoretical square
        is drawn: the summary gives a field's size and jump, not where it starts."""
        total = float(self.erf.sum())
        height, width = self.erf.shape
        if total == 0:
            return ((height - 1) / 2, (width - 1) / 2)
        rows = torch.arange(height, dtype=self.erf.dtype)
        columns = torch.arange(width, dtype=self.erf.dtype)
        return float((self.erf.sum(1) * rows).sum()) / total, float((self.erf.sum(0) * columns).sum()) / total

    def support(self) -> tuple[int, int]:
        """Height and width of the box holding every input pixel the unit reaches (nonzero ERF)."""
        rows, columns = torch.nonzero(self.erf, as_tuple=True)
        if len(rows) == 0:
            return 0, 0
        return int(rows.max() - rows.min()) + 1, int(columns.max() - columns.min()) + 1


def theoretical_receptive_field(model: nn.Module, x: torch.Tensor, stage: int = -1
                                ) -> tuple[str, tuple[float, float] | None, tuple[float, float] | None]:
    """``(stage name, size, jump)`` of the stage's map as :func:`cnnzoo.analysis.summarize`
    computes them (on the meta device: nothing is run); size and jump ``None`` when the
    summary has none, or when it is not finite (a global operation on the way)."""
    staged = StageOutput(model, stage, x)
    total = summarize(staged, tuple(x.shape[1:])).total
    if total.rf is None or len(total.rf) != 2 or not all(math.isfinite(v) for v in total.rf):
        return staged.name, None, None
    jump = tuple(float(v) for v in total.jump) if total.jump is not None else None  # exact fractions as floats
    return staged.name, tuple(float(v) for v in total.rf), jump  # type: ignore[return-value]


def receptive_fields(model: nn.Module, x: torch.Tensor, stage: int = -1) -> ReceptiveFields:
    """Both receptive fields of the centre unit of ``stage`` on the input ``x``."""
    name, size, jump = theoretical_receptive_field(model, x, stage)
    return ReceptiveFields(name, effective_receptive_field(model, x, stage), size, jump)
