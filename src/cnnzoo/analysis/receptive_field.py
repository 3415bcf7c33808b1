"""Receptive fields carried through ATen operations, one operation at a time.

A tensor's :class:`ReceptiveField` gives, per spatial axis, the input window one of its
units depends on (``size``) and the distance in input pixels between neighbouring units
(``jump``). :func:`output_field` derives the field of an operation's output from those of
its inputs:

* convolution / pooling (kernel k, stride s, dilation r): size += (k - 1) r x jump, jump x= s;
* transposed convolution: size += (ceil(((k - 1) r + 1) / s) - 1) x jump, jump /= s;
* adaptive pooling, upsampling, unpooling: the window each output reads, jump x= in / out;
* a reduction over image axes, or a flatten that merges them: the whole map;
* branches meeting (addition, concatenation, products): the largest size and jump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cnnzoo.analysis.ops import (
    TRANSPOSE, UPSAMPLE_TAPS, VIEWLIKE, Operation, adaptive_regions, ntuple, pool_window, tensors_in,
)

__all__ = ["ReceptiveField", "output_field"]


@dataclass
class ReceptiveField:
    """Per spatial axis, the input window a unit sees and the input distance between
    neighbouring units (a fraction after upsampling)."""

    size: tuple[float, ...]
    jump: tuple[float, ...]
    spatial: bool = True  # the last len(size) dims are still the image axes


FieldOf = Callable[[Any], "ReceptiveField | None"]  # a value's field, None when it has none


def output_field(op: Operation, field_of: FieldOf) -> ReceptiveField | None:
    """The field of ``op``'s outputs; ``field_of`` gives the fields of its arguments."""
    field = field_of(op.input)
    rule = _WINDOW_RULES.get(op.kind)
    if rule is not None:
        return rule(op, field) if field is not None else None
    if op.kind == "memory" and field is not None:
        moved = _rearranged(op, field)
        if moved is not None:
            return moved
    return merged(field_of(t) for t in tensors_in(op.args))


def merged(fields: Iterable[ReceptiveField | None]) -> ReceptiveField | None:
    """Branches meet (addition, concatenation, products, ...): the largest field and jump."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if len(fields) == 1:
        return fields[0]
    n = max(len(f.size) for f in fields)
    fields = [f for f in fields if len(f.size) == n]
    return ReceptiveField(
        tuple(max(f.size[a] for f in fields) for a in range(n)),
        tuple(max(f.jump[a] for f in fields) for a in range(n)),
        any(f.spatial for f in fields),
    )


# ----------------------------------------------------------------------------- windowed operations
# Each rule takes the operation and the field of its first input (never None). An input whose
# field has another number of axes than the operation's window keeps its field.

def _conv(op: Operation, field: ReceptiveField) -> ReceptiveField:
    weight, stride, dilation, transposed = op.args[1], op.args[3], op.args[5], op.args[6]
    spatial = weight.dim() - 2
    if len(field.size) != spatial:
        return field
    return _windowed(field, weight.shape[2:], ntuple(stride, spatial), ntuple(dilation, spatial), bool(transposed))


def _pool(op: Operation, field: ReceptiveField) -> ReceptiveField:
    if len(field.size) != op.spatial:
        return field
    return _windowed(field, *pool_window(op), transposed=False)


def _adaptive(op: Operation, field: ReceptiveField) -> ReceptiveField:
    spatial = op.spatial
    if len(field.size) != spatial:
        return field
    in_sizes, out_sizes = op.input.shape[-spatial:], op.out.shape[-spatial:]
    largest = [adaptive_regions(i, o)[0] for i, o in zip(in_sizes, out_sizes)]
    return _resampled(field, largest, in_sizes, out_sizes)


def _upsample(op: Operation, field: ReceptiveField) -> ReceptiveField:
    spatial = op.spatial
    if len(field.size) != spatial:
        return field
    taps = [UPSAMPLE_TAPS[op.name]] * spatial
    return _resampled(field, taps, op.input.shape[-spatial:], op.out.shape[-spatial:])


def _unpool(op: Operation, field: ReceptiveField) -> ReceptiveField:
    spatial = op.spatial
    if len(field.size) != spatial:
        return field
    return _resampled(field, [1] * spatial, op.input.shape[-spatial:], op.out.shape[-spatial:])


def _reduce(op: Operation, field: ReceptiveField) -> ReceptiveField:
    x, n = op.input, len(field.size)
    if not field.spatial or n == 0:
        return field
    position = 2 if op.name in ("norm", "linalg_vector_norm") else 1
    dims = op.args[position] if len(op.args) > position else op.kwargs.get("dim")
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = [dims]
    if not isinstance(dims, (list, tuple)) or not dims or not all(isinstance(d, int) for d in dims):
        dims = range(x.dim())  # a full reduction
    first_spatial = x.dim() - n
    axes = {d % x.dim() - first_spatial for d in dims if d % x.dim() >= first_spatial}
    if not axes:
        return field
    reduced = _globalized(field, x.shape[-n:], axes)
    return ReceptiveField(reduced.size, reduced.jump, op.out.dim() == x.dim())  # keepdim keeps the layout


_WINDOW_RULES: dict[str, Callable[[Operation, ReceptiveField], ReceptiveField]] = {
    "conv": _conv, "pool": _pool, "adaptive": _adaptive, "upsample": _upsample, "unpool": _unpool, "reduce": _reduce,
}


def _windowed(field: ReceptiveField, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
              transposed: bool) -> ReceptiveField:
    sizes, jumps = [], []
    for size, jump, k, s, d in zip(field.size, field.jump, kernel, stride, dilation):
        k_eff = (int(k) - 1) * d + 1
        if transposed:
            sizes.append(size + (-(-k_eff // s) - 1) * jump)
            jumps.append(jump / s)
        else:
            sizes.append(size + (k_eff - 1) * jump)
            jumps.append(jump * s)
    return ReceptiveField(tuple(sizes), tuple(jumps), field.spatial)


def _resampled(field: ReceptiveField, windows: Sequence[int], in_sizes: Sequence[int],
               out_sizes: Sequence[int]) -> ReceptiveField:
    """A map resampled from ``in_sizes`` to ``out_sizes`` (adaptive pooling, upsampling,
    unpooling) whose units each read ``windows`` neighbouring inputs per axis: the field
    grows by ``window - 1`` jumps and the jump scales by ``in / out``."""
    return ReceptiveField(
        tuple(s + (w - 1) * j for s, w, j in zip(field.size, windows, field.jump)),
        tuple(j * i / o for j, i, o in zip(field.jump, in_sizes, out_sizes)),
        field.spatial,
    )


def _globalized(field: ReceptiveField, extents: Sequence[int], axes: Iterable[int] | None = None) -> ReceptiveField:
    """The field of a unit that mixes every position along ``axes`` (all by default)."""
    axes = set(range(len(field.size)) if axes is None else axes)
    size = tuple(s + (e - 1) * j if a in axes else s
                 for a, (s, j, e) in enumerate(zip(field.size, field.jump, extents)))
    return ReceptiveField(size, field.jump, field.spatial)


# ----------------------------------------------------------------------------- layout changes

def _rearranged(op: Operation, field: ReceptiveField) -> ReceptiveField | None:
    """The field after a view, transpose or pixel (un)shuffle; ``None`` for any other
    memory operation (a copy, a concatenation, padding), whose inputs' fields merge."""
    x, out, name = op.input, op.out, op.name
    if name in VIEWLIKE:
        return _reshaped(field, x, out)
    if name in TRANSPOSE:
        n = len(field.size)
        keeps = n == 0 or (out.dim() > n and tuple(out.shape[-n:]) == tuple(x.shape[-n:]))
        return field if keeps else ReceptiveField(field.size, field.jump, False)
    if name == "pixel_shuffle" and len(field.size) == 2:
        r = out.shape[-1] // x.shape[-1]
        return ReceptiveField(field.size, tuple(j / r for j in field.jump), field.spatial)
    if name == "pixel_unshuffle" and len(field.size) == 2:
        r = x.shape[-1] // out.shape[-1]
        return ReceptiveField(tuple(s + (r - 1) * j for s, j in zip(field.size, field.jump)),
                              tuple(j * r for j in field.jump), field.spatial)
    return None


def _reshaped(field: ReceptiveField, x: torch.Tensor, out: torch.Tensor) -> ReceptiveField:
    n = len(field.size)
    if not field.spatial or n == 0:
        return field
    if out.dim() > n and tuple(out.shape[-n:]) == tuple(x.shape[-n:]):
        return field
    # the image axes are merged (flatten before a dense layer): whatever reads the
    # result mixes every position
    return ReceptiveField(_globalized(field, x.shape[-n:]).size, field.jump, False)
