"""What happens to a batch between the data loader and the loss, the same in training,
evaluation and the run's pictures.

In order: to the device; (training only: augmentation, on the device); normalization
``(image - mean) / std`` in the model's dtype and memory format; forward under autocast when
``amp`` is set; logits back in float32 for the loss and metrics; for a valid-convolution
U-Net, whose output is the centre of its input, the target and weight map cropped to the
logits (:func:`align_to_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.layers.spatial import center_crop

__all__ = ["AMP_DTYPES", "ModelFeed", "align_to_logits", "autocast", "parameter_dtype", "to_device"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on ``device`` (asynchronously from pinned memory on a GPU)."""
    non_blocking = device.type == "cuda"
    return {key: value.to(device, non_blocking=non_blocking) for key, value in batch.items()}


def autocast(device: torch.device, amp: str):
    """Mixed precision for ``amp`` ("bf16", "fp16"), or nothing for "none"."""
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def parameter_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 when it has none)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def align_to_logits(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Target and weight cropped to the logits' size (a valid-convolution U-Net sees the
    centre of its input only)."""
    if logits.dim() == 4 and target.shape[-2:] != logits.shape[-2:]:
        height, width = logits.shape[-2:]
        target = center_crop(target, height, width)
        weight = None if weight is None else center_crop(weight, height, width)
    return target, weight


@dataclass
class ModelFeed:
    """How images reach a model: normalized with the run's ``mean`` / ``std`` (N x C x 1 x 1
    on ``device``), cast to ``dtype``, channels-last on request, under ``amp`` autocast."""

    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    dtype: torch.dtype = torch.float32
    amp: str = "none"
    channels_last: bool = False

    @classmethod
    def create(
        cls, mean: Sequence[float], std: Sequence[float], device: torch.device, model: nn.Module,
        amp: str = "none", channels_last: bool = False,
    ) -> ModelFeed:
        """A feed for ``model`` on ``device`` with per-channel ``mean`` and ``std``."""
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return cls(device, mean_t, std_t, parameter_dtype(model), amp, channels_last)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (values in [0, 1], on the device) as the model's input."""
        images = ((images - self.mean) / self.std).to(self.dtype)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The model's logits for ``images``, in float32 whatever the autocast dtype: a tensor,
        or the named tuple of main and auxiliary logits of a network with auxiliary heads in
        training mode (:mod:`cnnzoo.engine.objective`)."""
        with autocast(self.device, self.amp):
            outputs = model(self.inputs(images))
        if isinstance(outputs, tuple):
            return type(outputs)(*(_float32(tensor) for tensor in outputs))
        return _float32(outputs)


def _float32(logits: torch.Tensor) -> torch.Tensor:
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
