"""Weights into a model that may differ from theirs in its head or its input channels, and
freezing what fine-tuning should not change.

- **Key layouts**: a state dict in cnnzoo's names loads as it is; one in torchvision's names
  is renamed by the model's ``torchvision_renames`` (:mod:`cnnzoo.torchvision_compat`). The
  layout that matches more of the model's tensors is taken.
- **A new head** where ``num_classes`` differs: the tensors of the head's modules
  (``head_children()``) whose shapes differ keep their fresh initialization, and are
  reported; every other tensor must load.
- **Another number of input channels**: the first convolution's weight, ``O x 3 x k x k`` in
  the file, is adapted as timm does (``adapt_input_conv``): summed over the colour channels
  for one channel, else the three repeated to ``C`` and scaled by ``3 / C``: for one
  channel, or a multiple of three, an input whose channels all hold one gray image gives
  the activations the RGB image of that gray gave.
- **Freezing** (:func:`freeze`): every parameter up to and including a named module (in
  module order), or the whole backbone (everything but the head: a linear probe); the
  normalization layers of the frozen part stay in eval mode while the rest trains
  (:func:`keep_frozen_norms_in_eval`), so their running statistics do not move either.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnzoo.torchvision_compat import torchvision_to_cnnzoo_keys
from cnnzoo.utils.text import first_few

__all__ = [
    "BACKBONE", "LoadReport", "adapt_input_conv", "adapt_normalization", "freeze", "head_prefixes", "is_under", "keep_frozen_norms_in_eval",
    "load_into",
]

BACKBONE = "backbone"  # freeze everything but the head


@dataclass
class LoadReport:
    """What :func:`load_into` did: tensors loaded of the model's total, the head tensors left
    at their fresh initialization, the input convolution adapted, file tensors not used."""

    loaded: int
    total: int
    new: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.loaded} of {self.total} tensors loaded"]
        if self.new:
            parts.append(f"new head: {first_few(self.new)}")
        if self.adapted:
            parts.append(f"input convolution adapted to the model's channels: {first_few(self.adapted)}")
        if self.unused:
            parts.append(f"not used: {first_few(self.unused)}")
        return "; ".join(parts)


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Load ``state_dict`` into ``model`` (see the module docstring); ``ValueError`` naming
    the tensors when the file is for another architecture."""
    own = model.state_dict()
    tensors = _best_layout(model, state_dict, own)
    head = head_prefixes(model)
    loadable, new, adapted, wrong = {}, [], [], []
    for key, target in own.items():
        value = tensors.get(key)
        if value is not None and value.shape == target.shape:
            loadable[key] = value
        elif value is not None and _is_input_conv(value, target):
            loadable[key] = adapt_input_conv(value, target.shape[1])
            adapted.append(key)
        elif is_under(key, head):
            new.append(key)
        else:
            wrong.append(key if value is None else f"{key} {tuple(value.shape)} vs {tuple(target.shape)}")
    unused = sorted(key for key in tensors if key not in own)
    unexpected = [key for key in unused if not is_under(key, head)]
    if wrong or unexpected or not loadable:
        problems = [f"{what}: {first_few(keys)}" for what, keys in
                    (("missing or of another shape", wrong), ("not in the model", unexpected)) if keys]
        raise ValueError(f"these weights are not for {type(model).__name__} ({'; '.join(problems) or 'no tensor fits'})")
    model.load_state_dict({**own, **loadable})
    return LoadReport(len(loadable), len(own), _modules_of(new), adapted, unused)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's ``O x 3 x k x k`` weight for ``in_chans`` input channels: summed
    over the three for one channel, else repeated and scaled by ``3 / in_chans``."""
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_chans // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def adapt_normalization(mean: Sequence[float], std: Sequence[float],
                        in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The weights' per-channel ``mean`` and ``std`` for a model of ``in_chans`` channels: as
    they are when the counts match, else averaged over the channels (the companion of
    :func:`adapt_input_conv`: one gray channel then sees, up to the spread of the three means,
    what the summed convolution saw of an RGB image of that gray)."""
    if len(mean) == in_chans:
        return tuple(mean), tuple(std)
    return (statistics.fmean(mean),) * in_chans, (statistics.fmean(std),) * in_chans


def freeze(model: nn.Module, upto: str) -> list[str]:
    """Stop the gradients of every parameter up to and including module ``upto`` (a name of
    ``model.named_modules()``, e.g. ``layer3``), or of everything but the head for
    ``"backbone"``; returns the names of the frozen parameters."""
    names = [name for name, _ in model.named_parameters()]
    if upto == BACKBONE:
        head = head_prefixes(model)
        frozen = [name for name in names if not is_under(name, head)]
    else:
        modules = dict(model.named_modules())
        if upto not in modules or not _has_parameters(modules[upto]):
            stages = ", ".join([BACKBONE, *(name for name, child in model.named_children() if _has_parameters(child))])
            raise ValueError(f"--freeze {upto!r} names no module with parameters in {type(model).__name__}; "
                             f"choose one of {stages} (or any module name of the model)")
        last = [f"{upto}.{name}" for name, _ in modules[upto].named_parameters()][-1]
        frozen = names[: names.index(last) + 1]
    parameters = dict(model.named_parameters())
    for name in frozen:
        parameters[name].requires_grad_(False)
    return frozen


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """Put back in eval mode every normalization layer whose parameters are all frozen (call
    after ``model.train()``)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            parameters = list(module.parameters())
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()


def _has_parameters(module: nn.Module) -> bool:
    return next(iter(module.parameters()), None) is not None


def _best_layout(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                 own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    as_is = dict(state_dict)
    renamed = torchvision_to_cnnzoo_keys(model, state_dict)

    def fits(tensors: Mapping[str, torch.Tensor]) -> int:
        return sum(1 for key, value in tensors.items() if key in own and own[key].shape == value.shape)

    return renamed if fits(renamed) > fits(as_is) else as_is


def _is_input_conv(value: torch.Tensor, target: torch.Tensor) -> bool:
    return (value.dim() == 4 and target.dim() == 4 and value.shape[1] == 3 and value.shape[0] == target.shape[0]
            and value.shape[2:] == target.shape[2:] and target.shape[1] != 3)


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The top-level module names of the head (and of heads this instance was built without)."""
    names = set(getattr(model, "head_names", ()) or ())
    if hasattr(model, "head_children"):
        names.update(model.head_children())
    return tuple(names)


def is_under(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether parameter or module name ``key`` is one of ``prefixes`` or inside one."""
    return any(key == prefix or key.startswith(prefix + ".") for prefix in prefixes)


def _modules_of(keys: list[str]) -> list[str]:
    """``fc.weight, fc.bias`` -> ``fc``: the modules, in order, once each."""
    return list(dict.fromkeys(key.rsplit(".", 1)[0] for key in keys))
