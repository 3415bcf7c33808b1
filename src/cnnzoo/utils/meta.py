"""PyTorch's ``meta`` device: tensors with a shape and no data, for shapes and costs
without memory or compute.

* :func:`meta_copy`: a copy of a built module on the meta device (its weights untouched);
* :func:`building_on_meta`: a context in which new modules are built there directly.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["building_on_meta", "meta_copy"]


def meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters and buffers are data-less meta tensors.

    The twins are swapped in through deepcopy's memo, so no weight is ever copied (VGG's
    fc6 alone holds 103 million); a parameter shared by two layers stays shared. Used to
    learn output shapes (FCN's alignment check, the smallest input of a convolutionalized
    head) and to trace costs (:func:`cnnzoo.analysis.summarize`).
    """
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if id(tensor) in memo:
            continue
        twin = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = twin
    return copy.deepcopy(module, memo)


class _SkipRandomInit(TorchFunctionMode):
    """Makes the random initialisers no-ops on meta tensors, which have no values to fill.

    PyTorch runs ``normal_`` and ``uniform_`` on meta tensors through Python decompositions:
    building the whole zoo spent half its time in them, initialising nothing. The ``nn.init``
    functions that dispatch to modes themselves are listed too: the device mode beneath runs
    them with every mode switched off, where the tensor methods could no longer be caught.
    """

    _INITIALISERS = frozenset({
        torch.Tensor.normal_, torch.Tensor.uniform_,
        torch.nn.init.normal_, torch.nn.init.uniform_, torch.nn.init.kaiming_uniform_,
    })

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._INITIALISERS:
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


@contextlib.contextmanager
def building_on_meta() -> Iterator[None]:
    """Modules created inside are on the meta device and skip their random initialization
    (there is nothing to fill): a model's shapes and parameter count in milliseconds."""
    with torch.device("meta"), _SkipRandomInit():
        yield
