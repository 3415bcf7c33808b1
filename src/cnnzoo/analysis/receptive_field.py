"""Receptive fields carried through ATen operations, one operation at a time.

A tensor's :class:`ReceptiveField` gives, per spatial axis, the input window one of its
units depends on through the *spatial path* (``size``), the distance in input pixels
between neighbouring units (``jump``), and whether global context has joined (``context``).
Sizes and jumps are exact fractions: a stride divides nothing, but transposed convolution,
upsampling and unpooling divide the jump. :func:`output_field` derives the field of an
operation's output from those of its inputs:

* convolution / pooling (kernel k, stride s, dilation r): size += (k - 1) r x jump, jump x= s;
* transposed convolution, and max unpooling with the window (k, s) of the pooling that made
  its indices: size += (ceil(((k - 1) r + 1) / s) - 1) x jump, jump /= s;
* upsampling: size += (taps - 1) x jump, jump x= the sampling pitch (1 / scale factor, or
  in / out for a resize to a given size: the one case where a jump stays a fraction a/b);
* adaptive pooling to more than one position per axis: the largest region it reads;
* a global operation (a reduction over image axes, a flatten that merges them, adaptive
  pooling to one position): the result is ``global``, with the spatial path of its input;
* branches meeting (addition, concatenation, products): the largest size and jump over the
  inputs that still have a spatial path; a global input joining a local one makes the result
  ``gated`` (a squeeze-and-excitation product, a global-context addition).

A theoretical receptive field that counted a global input as "the whole map" would spread
to every later layer (an SE gate in every block makes EfficientNet-B0's 4,345 pixels at
224); the spatial path and the context flag say what is true instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import torch

from cnnzoo.analysis.ops import (
    TRANSPOSE, UPSAMPLE_TAPS, VIEWLIKE, Operation, adaptive_regions, ntuple, pool_window, tensors_in,
)

__all__ = ["GATED", "GLOBAL", "LOCAL", "ReceptiveField", "exact", "merged", "output_field", "start_field"]

LOCAL, GATED, GLOBAL = "local", "gated", "global"


@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis, the input window a unit sees through the spatial path and the input
    distance between neighbouring units, as fractions; ``context`` is ``"local"``,
    ``"gated"`` (global context multiplied or added into a spatial path) or ``"global"`` (no
    spatial path left: the size and jump are those of the path before it)."""

    size: tuple[Fraction, ...]
    jump: tuple[Fraction, ...]
    spatial: bool = True  # the last len(size) dims are still the image axes
    context: str = LOCAL
    context_from: str | None = None  # the layer whose global operation first joined (set by the tracer)
    # (kernel, stride, dilation) of the max pooling that made this tensor, so that unpooling
    # its indices can apply the transposed rule; only that pooling's outputs carry it
    pooling: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


def start_field(spatial: int) -> ReceptiveField:
    """The field of the input itself: one pixel, jump one, along ``spatial`` axes."""
    return ReceptiveField((Fraction(1),) * spatial, (Fraction(1),) * spatial)


def exact(values: Iterable[Fraction]) -> tuple[int | Fraction, ...]:
    """Sizes or jumps for the reports: an int where the denominator is 1, else the fraction."""
    return tuple(int(v) if v.denominator == 1 else v for v in values)


FieldOf = Callable[[Any], "ReceptiveField | None"]  # a value's field, None when it has none


def output_field(op: Operation, field_of: FieldOf) -> ReceptiveField | None:
    """The field of ``op``'s outputs; ``field_of`` gives the fields of its arguments."""
    field = field_of(op.input)
    if op.kind == "unpool":
        return _unpool(op, field, field_of(op.args[1])) if field is not None else None
    rule = _WINDOW_RULES.get(op.kind)
    if rule is not None:
        if field is None:
            return None
        # past a global operation there is no spatial path left for a window to widen
        return field if field.context == GLOBAL else rule(op, field)
    if op.kind == "memory" and field is not None:
        moved = _rearranged(op, field)
        if moved is not None:
            return moved
    return merged(field_of(t) for t in tensors_in(op.args))


def merged(fields: Iterable[ReceptiveField | None]) -> ReceptiveField | None:
    """Branches meet (addition, concatenation, products, ...): the largest size and jump over
    the inputs with a spatial path; ``gated`` when global context joins one."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if len(fields) == 1:  # an element-wise operation, a copy: the field as it is (indices keep their pooling)
        return fields[0]
    n = max(len(f.size) for f in fields)
    fields = [f for f in fields if len(f.size) == n]
    spatial_paths = [f for f in fields if f.context != GLOBAL] or fields
    contexts = {f.context for f in fields}
    if contexts == {LOCAL}:
        context = LOCAL
    elif contexts == {GLOBAL}:
        context = GLOBAL
    else:
        context = GATED
    origin = next((f.context_from for f in fields if f.context_from is not None), None)
    return ReceptiveField(
        tuple(max(f.size[a] for f in spatial_paths) for a in range(n)),
        tuple(max(f.jump[a] for f in spatial_paths) for a in range(n)),
        any(f.spatial for f in fields),
        context,
        origin,
    )


# ----------------------------------------------------------------------------- windowed operations
# Each rule takes the operation and the field of its first input (never None, never global).
# An input whose field has another number of axes than the operation's window keeps its field.

def _conv(op: Operation, field: ReceptiveField) -> ReceptiveField:
    weight, stride, dilation, transposed = op.args[1], op.args[3], op.args[5], op.args[6]
    spatial = weight.dim() - 2
    if len(field.size) != spatial:
        return field
    return _windowed(field, weight.shape[2:], ntuple(stride, spatial), ntuple(dilation, spatial), bool(transposed))


def _pool(op: Operation, field: ReceptiveField) -> ReceptiveField:
    if len(field.size) != op.spatial:
        return field
    window = pool_window(op)
    pooled = _windowed(field, *window, transposed=False)
    # both outputs of max_pool*_with_indices get this field: the indices remember their window
    return replace(pooled, pooling=window) if op.name.endswith("_with_indices") else pooled


def _unpool(op: Operation, field: ReceptiveField, indices: ReceptiveField | None) -> ReceptiveField:
    """max_unpool(x, indices, output_size) puts x[q] at the position its pooling window q
    picked, zeros elsewhere: output position p reads the inputs q whose window
    [q s, q s + k) holds p, at most ceil(k / s) neighbours, exactly the dependence of a
    transposed convolution with kernel k and stride s. So size += (ceil(k/s) - 1) x jump and
    jump /= s (for SegNet's 2x2 / 2 pooling: the size is kept and the jump halves, even where
    an odd map was floored, 45 -> 22 -> 45). The indices depend on the encoder's window
    through the same rule. ATen gives unpooling no window: it is the one of the pooling
    that made ``indices``; unknown, s = round(out / in) and k = s."""
    spatial = op.spatial
    if field.context == GLOBAL or len(field.size) != spatial:
        return field
    if indices is not None and indices.pooling is not None:
        kernel, stride, dilation = indices.pooling
    else:
        stride = tuple(max(1, round(o / i)) for i, o in zip(op.input.shape[-spatial:], op.out.shape[-spatial:]))
        kernel, dilation = stride, (1,) * spatial
    unpooled = _windowed(field, kernel, stride, dilation, transposed=True)
    if indices is None or len(indices.size) != spatial or indices.context == GLOBAL:
        return unpooled
    return merged([unpooled, _windowed(replace(indices, pooling=None), kernel, stride, dilation, transposed=True)])


def _adaptive(op: Operation, field: ReceptiveField) -> ReceptiveField:
    spatial = op.spatial
    if len(field.size) != spatial:
        return field
    in_sizes, out_sizes = op.input.shape[-spatial:], op.out.shape[-spatial:]
    if any(o == 1 < i for i, o in zip(in_sizes, out_sizes)):
        return _globalized(field, op.out.dim() == op.input.dim())  # global pooling: whole axes pooled
    largest = [adaptive_regions(i, o)[0] for i, o in zip(in_sizes, out_sizes)]
    pitch = [Fraction(i, o) for i, o in zip(in_sizes, out_sizes)]
    return _resampled(field, largest, pitch)


def _upsample(op: Operation, field: ReceptiveField) -> ReceptiveField:
    spatial = op.spatial
    if len(field.size) != spatial:
        return field
    in_sizes, out_sizes = op.input.shape[-spatial:], op.out.shape[-spatial:]
    taps = [UPSAMPLE_TAPS[op.name]] * spatial
    return _resampled(field, taps, _upsampling_pitch(op, in_sizes, out_sizes))


def _upsampling_pitch(op: Operation, in_sizes: Sequence[int], out_sizes: Sequence[int]) -> list[Fraction]:
    """Input pixels between neighbouring output pixels: (in - 1) / (out - 1) with aligned
    corners, 1 / scale with a scale factor (2 exactly for a 2x upsampling of an odd map),
    in / out for a resize to a given size."""
    spatial = len(in_sizes)
    rest = list(op.args[2:])
    align_corners = False
    if rest and isinstance(rest[0], bool):  # the linear / cubic modes take align_corners first
        align_corners = rest.pop(0)
    scales = rest[:spatial] if len(rest) >= spatial else [None] * spatial
    pitch = []
    for i, o, scale in zip(in_sizes, out_sizes, scales):
        if align_corners and o > 1:
            pitch.append(Fraction(i - 1, o - 1))
        elif isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale):
            pitch.append(1 / Fraction(scale).limit_denominator(1000))
        else:
            pitch.append(Fraction(i, o))
    return pitch


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
    if not any(d % x.dim() >= first_spatial for d in dims):
        return field  # over channels only: the window stays where it was
    return _globalized(field, op.out.dim() == x.dim())  # keepdim keeps the layout


_WINDOW_RULES: dict[str, Callable[[Operation, ReceptiveField], ReceptiveField]] = {
    "conv": _conv, "pool": _pool, "adaptive": _adaptive, "upsample": _upsample, "reduce": _reduce,
}


def _windowed(field: ReceptiveField, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
              transposed: bool) -> ReceptiveField:
    sizes, jumps = [], []
    for size, jump, k, s, d in zip(field.size, field.jump, kernel, stride, dilation):
        k_eff = (int(k) - 1) * int(d) + 1
        s = int(s)
        if transposed:
            sizes.append(size + (-(-k_eff // s) - 1) * jump)
            jumps.append(jump / s)
        else:
            sizes.append(size + (k_eff - 1) * jump)
            jumps.append(jump * s)
    return ReceptiveField(tuple(sizes), tuple(jumps), field.spatial, field.context, field.context_from)


def _resampled(field: ReceptiveField, windows: Sequence[int], pitch: Sequence[Fraction]) -> ReceptiveField:
    """A map resampled (adaptive pooling, upsampling) whose units each read ``windows``
    neighbouring inputs per axis, ``pitch`` input units apart: the field grows by
    ``window - 1`` jumps and the jump scales by the pitch."""
    return ReceptiveField(
        tuple(s + (w - 1) * j for s, w, j in zip(field.size, windows, field.jump)),
        tuple(j * p for j, p in zip(field.jump, pitch)),
        field.spatial, field.context, field.context_from,
    )


def _globalized(field: ReceptiveField, keeps_layout: bool = False) -> ReceptiveField:
    """The result of an operation that mixes every position of the map: global, with the
    spatial path it had."""
    return ReceptiveField(field.size, field.jump, field.spatial and keeps_layout, GLOBAL, field.context_from)


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
        return field if keeps else replace(field, spatial=False)
    if field.context == GLOBAL:
        return None
    if name == "pixel_shuffle" and len(field.size) == 2:
        r = out.shape[-1] // x.shape[-1]
        return replace(field, jump=tuple(j / r for j in field.jump))
    if name == "pixel_unshuffle" and len(field.size) == 2:
        r = x.shape[-1] // out.shape[-1]
        return replace(field, size=tuple(s + (r - 1) * j for s, j in zip(field.size, field.jump)),
                       jump=tuple(j * r for j in field.jump))
    return None


def _reshaped(field: ReceptiveField, x: torch.Tensor, out: torch.Tensor) -> ReceptiveField:
    n = len(field.size)
    if not field.spatial or n == 0:
        return field
    if out.dim() > n and tuple(out.shape[-n:]) == tuple(x.shape[-n:]):
        return field
    # the image axes are merged (flatten before a dense layer): no spatial path is left
    return _globalized(field)
