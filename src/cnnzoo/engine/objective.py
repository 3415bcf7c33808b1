"""What a training step minimizes: the loss of the main head plus, for a network with
auxiliary classifiers, their losses weighted as the papers weight them.

GoogLeNet (Szegedy et al. 2015, section 6): "During training, their loss gets added to the
total loss of the network with a discount weight (the losses of the auxiliary classifiers
were weighted by 0.3)". Inception v3's one auxiliary head is weighted 0.4 in its authors'
released training code (tensorflow/models, ``inception/inception_model.py``: the aux
cross-entropy has ``weight=0.4``). Each model states its weight as ``aux_loss_weight``
(:func:`auxiliary_weight`); a model without auxiliary heads has none.

A network with auxiliary heads returns, in training mode, a named tuple whose first field is
the main logits and whose other fields are the auxiliary logits (``GoogLeNetOutputs``:
``logits, aux2, aux1``); in evaluation mode, and whenever ``aux_logits`` is off, it returns
the main logits alone. Evaluation, prediction and export therefore see the main head only;
training logs each auxiliary loss on its own (``train_aux1_loss``, ...) beside the main
head's ``train_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnzoo.engine.batches import align_to_logits

__all__ = ["EpochLosses", "StepLoss", "auxiliary_weight", "split_outputs", "step_loss"]


def split_outputs(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The main logits and the auxiliary logits by head name of a model's output: a tensor
    (no auxiliary heads), or a named tuple whose first field is the main logits."""
    if isinstance(outputs, torch.Tensor):
        return outputs, {}
    names = getattr(outputs, "_fields", None)
    if names is None:
        raise TypeError(f"a model returned a {type(outputs).__name__}; expected a tensor or a named tuple of tensors")
    return outputs[0], dict(zip(names[1:], outputs[1:]))


def auxiliary_weight(model: nn.Module) -> float:
    """The weight of each auxiliary loss for ``model`` (its ``aux_loss_weight``; 0 for a
    model without auxiliary heads)."""
    return float(getattr(model, "aux_loss_weight", 0.0))


@dataclass
class StepLoss:
    """One batch's objective ``total`` (what backward runs on), the main ``logits`` and the
    ``target`` they are scored against (cropped for a valid U-Net), and each term by name:
    ``"loss"`` for the main head, ``"aux1_loss"``, ... for the auxiliary heads."""

    total: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    terms: dict[str, torch.Tensor]


def step_loss(
    loss_fn: nn.Module,
    outputs: torch.Tensor | tuple[torch.Tensor, ...],
    target: torch.Tensor,
    weight: torch.Tensor | None,
    aux_weight: float,
) -> StepLoss:
    """The main head's loss plus ``aux_weight`` times each auxiliary head's loss, every head
    scored by ``loss_fn`` against the same target."""
    logits, auxiliary = split_outputs(outputs)
    target, weight = align_to_logits(logits, target, weight)
    main = loss_fn(logits, target, weight)
    terms, total = {"loss": main}, main
    for name, aux_logits in auxiliary.items():
        term = loss_fn(aux_logits, target, weight)
        terms[f"{name}_loss"] = term
        total = total + aux_weight * term
    return StepLoss(total, logits, target, terms)


@dataclass
class EpochLosses:
    """Sample-weighted running means of a step's loss terms over an epoch."""

    sums: dict[str, float] = field(default_factory=dict)
    seen: int = 0

    def add(self, step: StepLoss, count: int) -> float:
        """Count a batch of ``count`` samples; returns its objective ``step.total`` as a float
        (every term leaves the device in one transfer, not one each)."""
        values = torch.stack([step.total.detach(), *(term.detach() for term in step.terms.values())]).tolist()
        for name, value in zip(step.terms, values[1:]):
            self.sums[name] = self.sums.get(name, 0.0) + value * count
        self.seen += count
        return values[0]

    def mean(self, name: str = "loss") -> float:
        return self.sums.get(name, 0.0) / max(self.seen, 1)

    def names(self) -> list[str]:
        return sorted(self.sums, key=lambda name: (name != "loss", name))
