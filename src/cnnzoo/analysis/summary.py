"""``summarize``: parameters, MACs, other operations, activation memory and receptive
field of any ``nn.Module``, layer by layer, without computing anything; and the
:class:`Summary` it returns, its rows grouped into blocks and rendered.

How it works. The model is copied onto PyTorch's ``meta`` device (tensors with a shape and
no data; the copy shares no memory with the model and never touches its weights) and run
once on a zero input under the observers of :mod:`cnnzoo.analysis.tracer`: module hooks
charge every ATen operation to the innermost module running it, and a dispatch mode counts
its cost, the memory it creates and the receptive field of its outputs.

Counting conventions (see ``docs/cost_calculus.md``):

* MACs (multiply-accumulates) of convolutions (grouped, depthwise, dilated, transposed),
  linear layers and matrix products, exactly as ``torch.utils.flop_counter`` counts
  FLOPs (FLOPs = 2 x MACs); bias additions are not counted;
* other operations are reported apart, by kind: ``norm`` and ``activation`` one per output
  element, ``elementwise`` (additions of residual branches, products...) one per output
  element, ``pool`` one per element of each pooling window (one per input element for a
  global pooling / mean), ``resample`` one per interpolation tap;
* activation memory: the bytes of every tensor the forward pass creates (views and
  in-place results create none);
* receptive field of the spatial path and jump (distance in input pixels between
  neighbouring outputs) per spatial axis, exact fractions, combined over branches by taking
  the maximum; global operations (global pooling, flattening) are marked ``global`` and a
  spatial path that global context joins (a squeeze-and-excitation gate) ``gated``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.analysis.plot import plot_costs
from cnnzoo.analysis.receptive_field import exact
from cnnzoo.analysis.records import MAC_KINDS, OP_KINDS, ModuleCall, Row, Total, kind_of
from cnnzoo.analysis.render import csv_text, markdown_text, plain_dict, table_text
from cnnzoo.analysis.tracer import Trace, trace
from cnnzoo.utils.meta import meta_copy
from cnnzoo.utils.text import first_line

__all__ = ["Row", "Summary", "Total", "summarize"]

_DEFAULT: Any = object()  # "the depth given to summarize()"


class Summary:
    """The result of :func:`summarize`: ``rows`` (one per module call, in the order the calls
    finish) and ``total``; tables, CSV, JSON, Markdown and a plot of them. Every rendering
    takes ``depth``: ``None`` for every row, ``d`` for the module calls ``d`` levels below
    the model (1: its children) with their rows summed."""

    def __init__(self, model_name: str, batch_size: int, rows: list[Row], total: Total,
                 calls: dict[int, ModuleCall], depth: int | None = None) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self.rows = rows
        self.total = total
        self.depth = depth  # the renderings' default depth
        self._calls = calls

    def __repr__(self) -> str:
        return f"Summary({self.model_name}, {len(self.rows)} rows, params={self.total.params}, macs={self.total.macs})"

    def __str__(self) -> str:
        return self.to_table()

    # -- aggregation -----------------------------------------------------------------------
    def grouped(self, depth: int | None = _DEFAULT) -> list[Row]:
        """The rows merged into the module calls ``depth`` levels below the model (the model
        itself is depth 0, its children depth 1): costs summed, output shape and receptive
        field those of the call's output. ``None`` returns :attr:`rows` as they are; the
        default is the ``depth`` given to :func:`summarize`."""
        if depth is _DEFAULT:
            depth = self.depth
        if depth is None:
            return list(self.rows)
        _check_depth(depth)
        groups: list[Row] = []
        for row in self.rows:
            key = row.path[: depth + 1]
            if groups and groups[-1].path == key:
                _add_into(groups[-1], row)
            else:
                groups.append(self._block_row(key, row, own=row.own and len(row.path) < depth + 1))
        for group in groups:
            group.kind = kind_of(group.macs_by_kind, group.ops, self._calls[group.path[-1]].module_kind)
        return groups

    def _block_row(self, key: tuple[int, ...], first: Row, own: bool) -> Row:
        """The row of the call ``key`` names, its costs so far those of its first row."""
        call = self._calls[key[-1]]
        return Row(call.name, call.type, call.depth, "", call.output_shape, first.params, first.macs,
                   dict(first.ops), first.act_bytes, call.rf, call.jump, own=own,
                   macs_by_kind=dict(first.macs_by_kind), path=key, context=call.context)

    # -- renderings ------------------------------------------------------------------------
    def to_table(self, depth: int | None = _DEFAULT) -> str:
        """A plain-text table and the totals."""
        return table_text(self.model_name, self.batch_size, self.grouped(depth), self.total)

    def to_markdown(self, depth: int | None = _DEFAULT) -> str:
        """A Markdown table and the totals as a list."""
        return markdown_text(self.model_name, self.batch_size, self.grouped(depth), self.total)

    def to_dict(self, depth: int | None = _DEFAULT) -> dict[str, Any]:
        """Everything as plain numbers: ``{"model", "batch_size", "rows": [...], "total": {...}}``."""
        return plain_dict(self.model_name, self.batch_size, self.grouped(depth), self.total)

    def to_json(self, depth: int | None = _DEFAULT, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(depth), indent=indent)

    def to_csv(self, depth: int | None = _DEFAULT) -> str:
        """One line per row; numbers unformatted (ops columns per kind, RF per axis)."""
        return csv_text(self.grouped(depth))

    def plot(self, path: str | os.PathLike, depth: int = 1, title: str | None = None) -> Path:
        """Bar charts of MACs and parameters per block (``depth`` 1: the model's children),
        written atomically (a temporary file, then a rename). Returns the path."""
        return plot_costs(self.model_name, self.grouped(depth), self.total, path, title)


def _add_into(group: Row, row: Row) -> None:
    group.params += row.params
    group.macs += row.macs
    group.act_bytes += row.act_bytes
    for table, extra in ((group.ops, row.ops), (group.macs_by_kind, row.macs_by_kind)):
        for kind, count in extra.items():
            table[kind] = table.get(kind, 0) + count


# =============================================================================== summarize

def summarize(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    depth: int | None = None,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
) -> Summary:
    """Per-layer and total costs of ``model`` on a ``batch_size x input_size`` input.

    Args:
        model: any ``nn.Module`` taking one tensor; it is not modified (a copy is run, in
            eval mode).
        input_size: the input without the batch axis, e.g. ``(C, H, W)``; the axes after
            the first are the spatial ones the receptive field is measured along.
        batch_size: costs and memory are for the whole batch.
        depth: the default depth of the tables (``None``: every row; 1: the model's
            children; see :meth:`Summary.grouped`); the rows are recorded in full anyway.
        device: ``"meta"`` (default) computes nothing; another device runs the copy for real
            (for models whose forward looks at tensor values).
        dtype: the input's dtype (default: that of the model's first floating parameter).

    Raises:
        ValueError: a malformed ``input_size``; an input the model cannot take (the
            model's own ``ValueError`` as it is, a failure inside a layer reworded with
            the layer's name).
    """
    input_size = _check_input_size(input_size)
    if depth is not None:
        _check_depth(depth)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    runner = meta_copy(model) if device.type == "meta" else copy.deepcopy(model).to(device)
    runner.eval()
    try:
        x = torch.zeros(batch_size, *input_size, dtype=dtype, device=device)
    except RuntimeError as err:  # more elements than an index can count, or no memory for them
        raise ValueError(f"cannot create an input of size {(batch_size, *input_size)}: {first_line(err)}") from err
    seen = trace(runner, x)
    return Summary(type(model).__name__, batch_size, seen.rows, _total(model, x, seen), seen.calls, depth)


def _total(model: nn.Module, x: torch.Tensor, seen: Trace) -> Total:
    """The totals: costs summed over the rows, parameters counted once each over the whole
    model (modules the forward pass does not call included)."""
    macs_by_kind = {k: sum(r.macs_by_kind.get(k, 0) for r in seen.rows) for k in MAC_KINDS}
    unique = {id(p): p for p in model.parameters()}
    field = seen.output_field
    return Total(
        params=sum(p.numel() for p in unique.values()),
        trainable_params=sum(p.numel() for p in unique.values() if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in unique.values()),
        macs=sum(macs_by_kind.values()),
        macs_by_kind=macs_by_kind,
        ops={k: sum(r.ops.get(k, 0) for r in seen.rows) for k in OP_KINDS},
        activation_bytes=sum(r.act_bytes for r in seen.rows),
        input_size=tuple(x.shape),
        input_bytes=x.numel() * x.element_size(),
        output_shape=tuple(seen.output.shape) if seen.output is not None else None,
        rf=exact(field.size) if field is not None else None,
        jump=exact(field.jump) if field is not None else None,
        context=field.context if field is not None else None,
        context_from=field.context_from if field is not None else None,
    )


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, (Sequence, torch.Size)):
        raise ValueError(f"input_size must be a sequence of positive integers such as (3, 224, 224), got {input_size!r}")
    sizes = tuple(input_size)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"input_size must be a non-empty sequence of positive integers such as (3, 224, 224), got {input_size!r}")
    return sizes


def _check_depth(depth: Any) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be a non-negative integer or None, got {depth!r}")
