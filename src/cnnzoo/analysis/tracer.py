"""One forward pass watched by two observers, the source of every number in a summary.

* module forward hooks keep a stack of the module calls in progress, so every operation
  is charged to the innermost module running it, and record a row as each call returns;
* a ``TorchDispatchMode`` (:class:`Tracer`) sees every ATen operation the forward pass
  performs, through every branch: it charges the operation's cost (:mod:`~cnnzoo.analysis.costs`), the
  memory of the new tensors it creates, and derives the receptive field of its outputs
  from those of its inputs (:mod:`~cnnzoo.analysis.receptive_field`).

:func:`trace` runs a model under both and returns the rows and the calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cnnzoo.analysis.costs import FREE_OPERATIONS, MAC_OPERATIONS, mac_count, mac_kind, op_kind, other_op_count
from cnnzoo.analysis.ops import Operation, classify, module_kind, tensors_in
from cnnzoo.analysis.receptive_field import LOCAL, ReceptiveField, exact, output_field, start_field
from cnnzoo.analysis.records import ModuleCall, Row, row_of_call
from cnnzoo.utils.text import first_line

__all__ = ["Trace", "Tracer", "first_tensor", "trace"]

_BATCH_NORM = torch.ops.aten.native_batch_norm.default


def _meta_batch_norm(x: torch.Tensor, *_: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``native_batch_norm`` on meta tensors, the shapes only. PyTorch's meta version runs
    a Python decomposition that takes milliseconds per call; every BN network has hundreds.
    (A test checks it against the real meta kernel.)"""
    stats_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    channels = x.shape[1]
    return (
        torch.empty_like(x),
        torch.empty(channels, dtype=stats_dtype, device=x.device),
        torch.empty(channels, dtype=stats_dtype, device=x.device),
    )


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a (nested) module output, ``None`` when it holds none."""
    for leaf in tree_leaves(value):
        if isinstance(leaf, torch.Tensor):
            return leaf
    return None


class Tracer(TorchDispatchMode):
    """Counts costs and propagates receptive fields, operation by operation, charging them
    to the call on top of :attr:`stack`."""

    def __init__(self, root: ModuleCall) -> None:
        super().__init__()
        self.stack: list[ModuleCall] = [root]
        self.fields: dict[int, tuple[torch.Tensor, ReceptiveField]] = {}
        self.storages: set[int] = set()
        self.keep: list[torch.Tensor] = []  # holds every output, so no storage address is reused

    def mark_seen(self, tensors: Iterable[torch.Tensor]) -> None:
        """Tensors that exist before the forward pass (input, weights): not activations."""
        for t in tensors:
            self.storages.add(t.untyped_storage()._cdata)

    def set_field(self, tensor: torch.Tensor, field: ReceptiveField) -> None:
        self.fields[id(tensor)] = (tensor, field)

    def field_of(self, value: Any) -> ReceptiveField | None:
        if not isinstance(value, torch.Tensor):
            return None
        entry = self.fields.get(id(value))
        # the tensor is kept with its field: an id reused by a newer tensor is not a match
        return entry[1] if entry is not None and entry[0] is value else None

    def release(self) -> None:
        """Drops the tensors the trace holds on to."""
        self.fields.clear()
        self.keep.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind, name = classify(func)
        if func is _BATCH_NORM and args[0].device.type == "meta":
            out = _meta_batch_norm(*args)
        else:
            out = func(*args, **kwargs)
        outs = tensors_in(out)
        if not outs:
            return out
        call = self.stack[-1]
        # a normalization's saved statistics, C numbers each, are bookkeeping, not activations
        self._charge_memory(call, outs[:1] if kind == "norm" else outs)
        op = Operation(kind, name, args, kwargs, args[0] if args else None, outs[0])
        self._charge_cost(call, op)
        field = output_field(op, self.field_of)
        if field is not None:
            if field.context != LOCAL and field.context_from is None:  # global context joins here
                field = replace(field, context_from=call.name or "<model>")
            for t in outs:
                self.set_field(t, field)
        return out

    def _charge_memory(self, call: ModuleCall, outs: list[torch.Tensor]) -> None:
        """The bytes of the outputs with a storage not seen before (views and in-place
        results create none)."""
        for t in outs:
            storage = t.untyped_storage()
            key = storage._cdata
            if key not in self.storages:
                self.storages.add(key)
                self.keep.append(t)
                call.act_bytes += storage.nbytes()

    @staticmethod
    def _charge_cost(call: ModuleCall, op: Operation) -> None:
        if op.kind in MAC_OPERATIONS:
            table, key, count = call.macs, mac_kind(op.kind, call.module_kind), mac_count(op)
        elif op.kind in FREE_OPERATIONS:
            return
        else:
            table, key, count = call.ops, op_kind(op.kind, call.module_kind), other_op_count(op)
        table[key] = table.get(key, 0) + int(count)


@dataclass
class Trace:
    """What :func:`trace` saw: the rows in the order the calls finished, every call by its
    number (the model's own call is number 0), and the model's output."""

    rows: list[Row]
    calls: dict[int, ModuleCall]
    output: torch.Tensor | None
    output_field: ReceptiveField | None


def trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """Runs ``model`` (a copy it may hook and discard) on ``x`` without gradients, under
    the hooks and the :class:`Tracer`.

    Raises:
        ValueError: the model's own ``ValueError`` as it is; a ``RuntimeError`` inside it
            reworded with the layer's name.
    """
    tracer = Tracer(ModuleCall(-1, "", "", -1, (), False, None, 0))  # a sentinel under the model
    rows: list[Row] = []
    calls = _hook_calls(model, tracer, rows)
    spatial = x.dim() - 2
    tracer.set_field(x, start_field(spatial))
    tracer.mark_seen([x, *model.parameters(), *model.buffers()])
    try:
        with torch.no_grad(), tracer:
            output = first_tensor(model(x))
    except ValueError:
        raise
    except RuntimeError as err:
        raise ValueError(_run_error(model, x, tracer, err)) from err
    field = tracer.field_of(output)
    tracer.release()
    return Trace(rows, calls, output, field if field is not None and field.size else None)


def _hook_calls(model: nn.Module, tracer: Tracer, rows: list[Row]) -> dict[int, ModuleCall]:
    """Hooks every module of ``model`` so that its calls are pushed on ``tracer.stack`` and
    recorded in ``rows`` as they return; returns the calls by number, filled as they run."""
    calls: dict[int, ModuleCall] = {}
    counter = itertools.count()

    def pre_hook(module: nn.Module, name: str, leaf: bool, params: int, kind: str | None) -> None:
        parent = tracer.stack[-1]
        uid = next(counter)
        call = ModuleCall(uid, name, type(module).__name__, parent.depth + 1, parent.path + (uid,), leaf, kind, params)
        calls[uid] = call
        tracer.stack.append(call)

    def post_hook(module: nn.Module, args: Any, output: Any) -> None:
        call = tracer.stack.pop()
        out = first_tensor(output)
        if out is not None:
            call.output_shape = tuple(out.shape)
            field = tracer.field_of(out)
            if field is not None and field.size:
                call.rf, call.jump, call.context = exact(field.size), exact(field.jump), field.context
        if call.leaf:
            rows.append(row_of_call(call, own=False))
        elif call.macs or call.ops or call.act_bytes or call.params:
            rows.append(row_of_call(call, own=True))

    for name, module in model.named_modules():  # a shared module is hooked once, under its first name
        leaf = not any(True for _ in module.children())
        params = sum(p.numel() for p in module.parameters(recurse=leaf))
        kind = "linear" if isinstance(module, nn.Linear) else module_kind(module)
        module.register_forward_pre_hook(
            lambda m, a, _n=name, _l=leaf, _p=params, _k=kind: pre_hook(m, _n, _l, _p, _k))
        module.register_forward_hook(post_hook)
    return calls


def _run_error(model: nn.Module, x: torch.Tensor, tracer: Tracer, err: RuntimeError) -> str:
    """One line naming the model, the input size and the innermost layer that failed."""
    where = next((c.name for c in reversed(tracer.stack) if c.uid > 0), "")
    where = f" (in layer {where!r})" if where else ""
    hint = ""
    if x.device.type == "meta" and "meta" in str(err).lower():
        hint = "; this model may need real data: try device='cpu'"
    return f"{type(model).__name__} cannot run on an input of size {tuple(x.shape)}{where}: {first_line(err)}{hint}"
