"""Load a torchvision checkpoint into the cnnzoo model of the same architecture.

Where cnnzoo's module names differ from torchvision's (for example because the
conv-norm-activation triple is one :class:`~cnnzoo.layers.ConvNormAct` here), the model
class lists regular-expression rewrites in ``torchvision_renames``: ``(pattern, replacement)``
pairs applied in order to every torchvision key. Models whose names already match have none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from cnnzoo.utils.text import first_few

__all__ = ["load_torchvision_state_dict", "torchvision_to_cnnzoo_keys"]


def torchvision_to_cnnzoo_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a torchvision ``state_dict`` to ``model``'s names."""
    renames = [(re.compile(pattern), replacement) for pattern, replacement in getattr(model, "torchvision_renames", ())]
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def load_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True):
    """``model.load_state_dict`` for a state dict saved from the torchvision model of the same
    architecture; with the same weights, both models give the same outputs.

    Raises ``ValueError`` naming the keys when the checkpoint is for another architecture:
    missing and unexpected keys with ``strict=True``, tensors of the wrong shape always
    (``load_state_dict`` cannot load those even when not strict). ``TypeError`` when
    ``state_dict`` is not a mapping (a file path, say: ``create_model(name, weights=path)``
    reads files).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "load_torchvision_state_dict takes a state dict (a mapping of names to tensors), "
            f"not {type(state_dict).__name__}; for a file use cnnzoo.create_model(name, weights='file.pth')"
        )
    renamed = torchvision_to_cnnzoo_keys(model, state_dict)
    own = model.state_dict()
    missing = sorted(set(own) - set(renamed)) if strict else []
    unexpected = sorted(set(renamed) - set(own)) if strict else []
    mismatched = sorted(k for k in set(own) & set(renamed) if own[k].shape != renamed[k].shape)
    problems = [
        f"{what} {first_few(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch in", mismatched))
        if keys
    ]
    if problems:
        raise ValueError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(problems))
    return model.load_state_dict(renamed, strict=strict)
