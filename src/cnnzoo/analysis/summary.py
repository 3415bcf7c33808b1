"""``summarize``: parameters, MACs, other operations, activation memory and receptive
field of any ``nn.Module``, layer by layer, without computing anything.

How it works. The model is copied onto PyTorch's ``meta`` device (tensors with a shape and
no data; the copy shares no memory with the model and never touches its weights) and run
once on a zero input under two observers:

* module forward hooks keep a stack of the module calls in progress, so every operation
  is charged to the innermost module running it;
* a ``TorchDispatchMode`` sees every ATen operation the forward pass performs, through
  every branch: it counts the operation's cost, the memory of the new tensors it creates
  and the receptive field of its outputs from those of its inputs.

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
* receptive field and jump (distance in input pixels between neighbouring outputs) per
  spatial axis, combined over branches by taking the maximum.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["Row", "Summary", "Total", "summarize"]

MAC_KINDS = ("conv", "linear", "matmul")
_DEFAULT: Any = object()  # "the depth given to summarize()"
OP_KINDS = ("norm", "activation", "pool", "elementwise", "resample", "other")


# =============================================================================== records

@dataclass
class Row:
    """One module call (a leaf module, or the operations a container runs itself).

    ``macs`` and ``ops`` are for the whole batch; ``ops`` maps an operation kind (``norm``,
    ``activation``, ``pool``, ``elementwise``, ``resample``, ``other``) to its count;
    ``act_bytes`` is the memory of the tensors the call creates; ``rf`` and ``jump`` are
    per spatial axis (``None`` when the output is not traced to the input).
    """

    name: str
    type: str
    depth: int
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    ops: dict[str, int]
    act_bytes: int
    rf: tuple[float, ...] | None
    jump: tuple[float, ...] | None
    own: bool = False  # the container's own operations (e.g. the residual addition)
    macs_by_kind: dict[str, int] = field(default_factory=dict)
    path: tuple[int, ...] = field(default=(), repr=False)

    @property
    def other_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def label(self) -> str:
        name = self.name or "<model>"
        return f"{name} (self)" if self.own else name


@dataclass
class Total:
    """Totals of a :class:`Summary`. ``params`` counts every (shared-once) parameter of the
    model, including those of modules the forward pass does not call."""

    params: int
    trainable_params: int
    param_bytes: int
    macs: int
    macs_by_kind: dict[str, int]
    ops: dict[str, int]
    activation_bytes: int
    input_size: tuple[int, ...]
    input_bytes: int
    output_shape: tuple[int, ...] | None
    rf: tuple[float, ...] | None
    jump: tuple[float, ...] | None

    @property
    def flops(self) -> int:
        """FLOPs of the MAC-counted layers: 2 x MACs."""
        return 2 * self.macs

    @property
    def other_ops(self) -> int:
        return sum(self.ops.values())


@dataclass
class _Call:
    uid: int
    name: str
    type: str
    depth: int
    path: tuple[int, ...]
    leaf: bool
    module_kind: str | None
    params: int
    macs: dict[str, int] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    act_bytes: int = 0
    output_shape: tuple[int, ...] | None = None
    rf: tuple[float, ...] | None = None
    jump: tuple[float, ...] | None = None


@dataclass
class _RF:
    size: tuple[float, ...]
    jump: tuple[float, ...]
    spatial: bool = True  # the last len(size) dims are still the image axes


# =============================================================================== operation tables

def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CONV = _names("convolution _convolution")
_MATMUL = _names("mm addmm bmm baddbmm")
_NORM = _names(
    "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training "
    "_native_batch_norm_legit_functional native_layer_norm native_group_norm batch_norm "
    "_batch_norm_with_update _batch_norm_no_update cudnn_batch_norm _fused_rms_norm rms_norm"
)
_ACTIVATION = _names(
    "relu relu_ hardtanh hardtanh_ relu6 silu silu_ hardswish hardswish_ hardsigmoid hardsigmoid_ "
    "gelu gelu_ sigmoid sigmoid_ tanh tanh_ elu elu_ leaky_relu leaky_relu_ _prelu_kernel prelu "
    "mish mish_ softplus _softmax _log_softmax _safe_softmax threshold threshold_ clamp clamp_ "
    "clamp_min clamp_min_ clamp_max clamp_max_ glu log_sigmoid_forward selu selu_ celu celu_ "
    "rrelu_with_noise softshrink hardshrink"
)
_POOL = _names(
    "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices "
    "max_pool3d_with_indices avg_pool1d avg_pool2d avg_pool3d"
)
_ADAPTIVE = _names(
    "_adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_avg_pool1d adaptive_max_pool1d "
    "adaptive_max_pool2d adaptive_max_pool3d"
)
_REDUCE = _names("mean sum amax amin max min var std var_mean std_mean logsumexp norm linalg_vector_norm prod")
_UPSAMPLE_TAPS = {
    "upsample_nearest1d": 1, "upsample_nearest2d": 1, "upsample_nearest3d": 1,
    "_upsample_nearest_exact1d": 1, "_upsample_nearest_exact2d": 1, "_upsample_nearest_exact3d": 1,
    "upsample_linear1d": 2, "upsample_bilinear2d": 2, "_upsample_bilinear2d_aa": 2,
    "upsample_trilinear3d": 2, "upsample_bicubic2d": 4, "_upsample_bicubic2d_aa": 4,
}
_UNPOOL = _names("max_unpool2d max_unpool3d")
_MEMORY = _names(
    "view _unsafe_view reshape _reshape_alias t transpose permute expand expand_as squeeze "
    "unsqueeze slice select narrow split split_with_sizes chunk unbind cat stack clone contiguous "
    "_to_copy copy_ copy detach alias lift_fresh lift_fresh_copy constant_pad_nd reflection_pad1d "
    "reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d replication_pad3d "
    "pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle flip roll zeros zeros_like "
    "empty empty_like empty_strided new_empty new_empty_strided new_zeros new_ones ones ones_like "
    "full full_like new_full fill fill_ zero_ index_select gather index repeat as_strided unfold "
    "diagonal movedim scalar_tensor arange _unsafe_index split_copy slice_copy view_copy"
)
_ELEMENTWISE = _names(
    "add sub mul div rsub neg pow sqrt rsqrt exp exp2 expm1 log log2 log10 log1p abs where maximum "
    "minimum addcmul addcdiv lerp reciprocal sign floor ceil round trunc frac fmod remainder eq ne lt "
    "gt le ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_not "
    "bitwise_xor erf erfc erfinv sin cos tan atan atan2 square masked_fill sgn hypot xlogy max min"
)
_VIEWLIKE = _names("view _unsafe_view reshape _reshape_alias")
_TRANSPOSE = _names("t transpose permute movedim")

_MODULE_KINDS = {
    "torch.nn.modules.batchnorm": "norm",
    "torch.nn.modules.instancenorm": "norm",
    "torch.nn.modules.normalization": "norm",
    "torch.nn.modules.activation": "activation",
    "torch.nn.modules.pooling": "pool",
    "torch.nn.modules.upsampling": "resample",
}


def _module_kind(module: nn.Module) -> str | None:
    """The kind of the cost-free-of-MACs operations a standard torch module runs (an LRN's
    squares and window sums are normalization, not generic element-wise work)."""
    return _MODULE_KINDS.get(type(module).__module__)


# =============================================================================== helpers

def _ntuple(value: Any, n: int, default: int | None = None) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        return values * n if len(values) == 1 else values
    return (int(value),) * n


def _adaptive_regions(size: int, out: int) -> tuple[int, int]:
    """Largest pooling region and sum of region sizes of adaptive pooling ``size -> out``
    (region i is ``[floor(i * size / out), ceil((i + 1) * size / out))``)."""
    largest = total = 0
    for i in range(out):
        extent = -(-(i + 1) * size // out) - (i * size // out)
        largest, total = max(largest, extent), total + extent
    return largest, total


def _first_tensor(value: Any) -> torch.Tensor | None:
    for leaf in tree_leaves(value):
        if isinstance(leaf, torch.Tensor):
            return leaf
    return None


# =============================================================================== the tracer

_BATCH_NORM = torch.ops.aten.native_batch_norm.default
_KINDS: dict[Any, tuple[str, str]] = {}  # operator -> (kind, name), filled as operators are met


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


class _Tracer(TorchDispatchMode):
    """Counts costs and propagates receptive fields, operation by operation."""

    def __init__(self, root: _Call) -> None:
        super().__init__()
        self.stack: list[_Call] = [root]
        self.info: dict[int, tuple[torch.Tensor, _RF]] = {}
        self.storages: set[int] = set()
        self.keep: list[torch.Tensor] = []  # holds every output, so no storage address is reused

    # -- bookkeeping ------------------------------------------------------------------------
    def mark_seen(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            self.storages.add(t.untyped_storage()._cdata)

    def set_rf(self, tensor: torch.Tensor, rf: _RF) -> None:
        self.info[id(tensor)] = (tensor, rf)

    def rf_of(self, tensor: Any) -> _RF | None:
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self.info.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    @staticmethod
    def _classify(func: Any) -> tuple[str, str]:
        handler = _KINDS.get(func)
        if handler is None:
            name = func.overloadpacket.__name__
            if name in _CONV:
                kind = "conv"
            elif name in _MATMUL:
                kind = "matmul"
            elif name.startswith("_scaled_dot_product"):
                kind = "sdpa"
            elif name.rstrip("_") in _NORM or name in _NORM:
                kind = "norm"
            elif name in _ACTIVATION:
                kind = "activation"
            elif name in _POOL:
                kind = "pool"
            elif name in _ADAPTIVE:
                kind = "adaptive"
            elif name in _REDUCE and not (name in ("max", "min") and func._overloadname not in ("default", "dim")):
                kind = "reduce"
            elif name in _UPSAMPLE_TAPS:
                kind = "upsample"
            elif name in _UNPOOL:
                kind = "unpool"
            elif name in _MEMORY:
                kind = "memory"
            elif name.rstrip("_") in _ELEMENTWISE:
                kind = "elementwise"
            else:
                kind = "other"
            handler = _KINDS[func] = (kind, name)
        return handler

    # -- the dispatch hook -------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind, name = self._classify(func)
        if func is _BATCH_NORM and args[0].device.type == "meta":
            out = _meta_batch_norm(*args)
        else:
            out = func(*args, **kwargs)
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not outs:
            return out
        call = self.stack[-1]
        # memory: tensors with a storage not seen before (a normalization's saved statistics,
        # C numbers each, are bookkeeping rather than activations)
        for t in outs[:1] if kind == "norm" else outs:
            storage = t.untyped_storage()
            key = storage._cdata
            if key not in self.storages:
                self.storages.add(key)
                self.keep.append(t)
                call.act_bytes += storage.nbytes()
        first = outs[0]
        x = args[0] if args else None
        rf = self.rf_of(x) if isinstance(x, torch.Tensor) else None

        if kind == "conv":
            weight, stride, padding, dilation, transposed = args[1], args[3], args[4], args[5], args[6]
            spatial = weight.dim() - 2
            if transposed:
                # input grid x (C_in) x (C_out / g) x kernel
                macs = math.prod(x.shape[:-spatial - 1]) * math.prod(x.shape[-spatial:]) * weight.numel()
            else:
                macs = math.prod(first.shape[:-spatial - 1]) * math.prod(first.shape[-spatial:]) * weight.numel()
            self._add(call.macs, "conv", macs)
            if rf is not None and len(rf.size) == spatial:
                rf = self._conv_rf(rf, weight.shape[2:], _ntuple(stride, spatial), _ntuple(dilation, spatial), bool(transposed))
        elif kind == "matmul":
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            macs = a.numel() * b.shape[-1]
            mac_kind = "linear" if call.module_kind == "linear" else "matmul"
            self._add(call.macs, mac_kind, macs)
            rf = self._combine(args)
        elif kind == "sdpa":
            q, k, v = args[0], args[1], args[2]
            macs = math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
            self._add(call.macs, "matmul", macs)
            rf = self._combine(args)
        elif kind == "pool":
            spatial = first.dim() - 2
            kernel = _ntuple(args[1], spatial)
            stride = _ntuple(args[2], spatial) if len(args) > 2 and args[2] else kernel
            dilation = _ntuple(args[4], spatial) if name.startswith("max") and len(args) > 4 else (1,) * spatial
            self._add(call.ops, self._op_kind(call, "pool"), first.numel() * math.prod(kernel))
            if rf is not None and len(rf.size) == spatial:
                rf = self._conv_rf(rf, kernel, stride, dilation, False)
        elif kind == "adaptive":
            spatial = first.dim() - 2
            in_sizes, out_sizes = x.shape[-spatial:], first.shape[-spatial:]
            regions = [_adaptive_regions(i, o) for i, o in zip(in_sizes, out_sizes)]
            self._add(call.ops, self._op_kind(call, "pool"), math.prod(first.shape[:-spatial]) * math.prod(r[1] for r in regions))
            if rf is not None and len(rf.size) == spatial:
                rf = self._resampled_rf(rf, [r[0] for r in regions], in_sizes, out_sizes)
        elif kind == "reduce":
            self._add(call.ops, self._op_kind(call, "pool"), x.numel())
            if rf is not None:
                rf = self._reduce_rf(rf, x, first, name, args, kwargs)
        elif kind == "upsample":
            taps = _UPSAMPLE_TAPS[name]
            spatial = first.dim() - 2
            self._add(call.ops, self._op_kind(call, "resample"), first.numel() * taps**spatial)
            if rf is not None and len(rf.size) == spatial:
                rf = self._resampled_rf(rf, [taps] * spatial, x.shape[-spatial:], first.shape[-spatial:])
        elif kind == "unpool":
            spatial = first.dim() - 2
            self._add(call.ops, self._op_kind(call, "resample"), x.numel())
            if rf is not None and len(rf.size) == spatial:
                rf = self._resampled_rf(rf, [1] * spatial, x.shape[-spatial:], first.shape[-spatial:])
        elif kind == "memory":
            if name in _VIEWLIKE and rf is not None:
                rf = self._reshape_rf(rf, x, first)
            elif name in _TRANSPOSE and rf is not None:
                n = len(rf.size)
                keeps = n == 0 or (first.dim() > n and tuple(first.shape[-n:]) == tuple(x.shape[-n:]))
                rf = rf if keeps else _RF(rf.size, rf.jump, False)
            elif name == "pixel_shuffle" and rf is not None and len(rf.size) == 2:
                r = first.shape[-1] // x.shape[-1]
                rf = _RF(rf.size, tuple(j / r for j in rf.jump), rf.spatial)
            elif name == "pixel_unshuffle" and rf is not None and len(rf.size) == 2:
                r = x.shape[-1] // first.shape[-1]
                rf = _RF(tuple(s + (r - 1) * j for s, j in zip(rf.size, rf.jump)), tuple(j * r for j in rf.jump), rf.spatial)
            else:
                rf = self._combine(args)
        else:  # norm, activation, elementwise, other: one operation per output element
            self._add(call.ops, self._op_kind(call, kind), first.numel())
            rf = self._combine(args)

        if rf is not None:
            for t in outs:
                self.set_rf(t, rf)
        return out

    # -- cost helpers ----------------------------------------------------------------------
    @staticmethod
    def _add(table: dict[str, int], key: str, value: int) -> None:
        table[key] = table.get(key, 0) + int(value)

    @staticmethod
    def _op_kind(call: _Call, kind: str) -> str:
        """Generic work inside a standard normalization / activation / pooling / resampling
        module counts as that module's kind (an LRN's squares and window sums are norm)."""
        owner = call.module_kind
        if owner in ("norm", "activation", "pool", "resample") and kind in ("elementwise", "other"):
            return owner
        if owner == "norm" and kind in ("pool", "activation"):
            return owner
        return kind

    # -- receptive-field rules -------------------------------------------------------------
    @staticmethod
    def _conv_rf(rf: _RF, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int], transposed: bool) -> _RF:
        sizes, jumps = [], []
        for size, jump, k, s, d in zip(rf.size, rf.jump, kernel, stride, dilation):
            k_eff = (int(k) - 1) * d + 1
            if transposed:
                sizes.append(size + (-(-k_eff // s) - 1) * jump)
                jumps.append(jump / s)
            else:
                sizes.append(size + (k_eff - 1) * jump)
                jumps.append(jump * s)
        return _RF(tuple(sizes), tuple(jumps), rf.spatial)

    @staticmethod
    def _resampled_rf(rf: _RF, windows: Sequence[int], in_sizes: Sequence[int], out_sizes: Sequence[int]) -> _RF:
        """A map resampled from ``in_sizes`` to ``out_sizes`` (adaptive pooling, upsampling,
        unpooling) whose units each read ``windows`` neighbouring inputs per axis: the field
        grows by ``window - 1`` jumps and the jump scales by ``in / out``."""
        return _RF(
            tuple(s + (w - 1) * j for s, w, j in zip(rf.size, windows, rf.jump)),
            tuple(j * i / o for j, i, o in zip(rf.jump, in_sizes, out_sizes)),
            rf.spatial,
        )

    @staticmethod
    def _globalize(rf: _RF, extents: Sequence[int], axes: Iterable[int] | None = None) -> _RF:
        """The field of a unit that mixes every position along ``axes`` (all by default)."""
        axes = set(range(len(rf.size)) if axes is None else axes)
        size = tuple(s + (e - 1) * j if a in axes else s for a, (s, j, e) in enumerate(zip(rf.size, rf.jump, extents)))
        return _RF(size, rf.jump, rf.spatial)

    def _reshape_rf(self, rf: _RF, x: torch.Tensor, out: torch.Tensor) -> _RF:
        n = len(rf.size)
        if not rf.spatial or n == 0:
            return rf
        if out.dim() > n and tuple(out.shape[-n:]) == tuple(x.shape[-n:]):
            return rf
        # the image axes are merged (flatten before a dense layer): whatever reads the
        # result mixes every position
        return _RF(self._globalize(rf, x.shape[-n:]).size, rf.jump, False)

    def _reduce_rf(self, rf: _RF, x: torch.Tensor, out: torch.Tensor, name: str, args: tuple, kwargs: dict) -> _RF:
        n = len(rf.size)
        if not rf.spatial or n == 0:
            return rf
        position = 2 if name in ("norm", "linalg_vector_norm") else 1
        dims = args[position] if len(args) > position else kwargs.get("dim")
        if isinstance(dims, int) and not isinstance(dims, bool):
            dims = [dims]
        if not isinstance(dims, (list, tuple)) or not dims or not all(isinstance(d, int) for d in dims):
            dims = range(x.dim())  # a full reduction
        first_spatial = x.dim() - n
        axes = {d % x.dim() - first_spatial for d in dims if d % x.dim() >= first_spatial}
        if not axes:
            return rf
        reduced = self._globalize(rf, x.shape[-n:], axes)
        return _RF(reduced.size, reduced.jump, out.dim() == x.dim())  # keepdim keeps the layout

    def _combine(self, args: Any) -> _RF | None:
        """Branches meet (addition, concatenation, products, ...): the largest field and jump."""
        fields = [rf for rf in (self.rf_of(t) for t in tree_leaves(args)) if rf is not None]
        if not fields:
            return None
        if len(fields) == 1:
            return fields[0]
        n = max(len(f.size) for f in fields)
        fields = [f for f in fields if len(f.size) == n]
        return _RF(
            tuple(max(f.size[a] for f in fields) for a in range(n)),
            tuple(max(f.jump[a] for f in fields) for a in range(n)),
            any(f.spatial for f in fields),
        )


# =============================================================================== summary object

def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _rf_text(values: tuple[float, ...] | None) -> str:
    if not values:
        return "-"
    values = tuple(_num(v) for v in values)
    if all(v == values[0] for v in values):
        return str(values[0])
    return "x".join(str(v) for v in values)


def format_count(value: float | int | None, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes: k, M, G, T); ``unit`` is appended ('4.82 MB')."""
    if value is None:
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}{unit}"
    return f"{int(value)}{' ' + unit if unit else ''}"


def _bytes(n: float) -> str:
    if n == 0:
        return "0"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)


def _kind_of(macs_by_kind: dict[str, int], ops: dict[str, int], fallback: str | None) -> str:
    """A row's kind: its main MAC kind, else its main other-operation kind."""
    if any(macs_by_kind.values()):
        return max(macs_by_kind, key=macs_by_kind.get)
    if any(ops.values()):
        return max(ops, key=ops.get)
    return fallback or "none"


class Summary:
    """The result of :func:`summarize`: ``rows`` (one per module call, in the order the calls
    finish) and ``total``; tables, CSV, JSON, Markdown and a plot of them. Every rendering
    takes ``depth``: ``None`` for every row, ``d`` for the module calls ``d`` levels below
    the model (1: its children) with their rows summed."""

    def __init__(self, model_name: str, batch_size: int, rows: list[Row], total: Total, calls: dict[int, _Call],
                 depth: int | None = None) -> None:
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
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a non-negative integer or None, got {depth!r}")
        groups: list[Row] = []
        for row in self.rows:
            key = row.path[: depth + 1]
            if groups and groups[-1].path == key:
                group = groups[-1]
                group.params += row.params
                group.macs += row.macs
                group.act_bytes += row.act_bytes
                for table, extra in ((group.ops, row.ops), (group.macs_by_kind, row.macs_by_kind)):
                    for kind, count in extra.items():
                        table[kind] = table.get(kind, 0) + count
                continue
            call = self._calls[key[-1]]
            groups.append(Row(
                call.name, call.type, call.depth, "", call.output_shape, row.params, row.macs, dict(row.ops),
                row.act_bytes, call.rf, call.jump, own=row.own and len(row.path) < depth + 1,
                macs_by_kind=dict(row.macs_by_kind), path=key,
            ))
        for group in groups:
            group.kind = _kind_of(group.macs_by_kind, group.ops, self._calls[group.path[-1]].module_kind)
        return groups

    # -- renderings ------------------------------------------------------------------------
    _HEADER = ("Layer", "Type", "Output shape", "Params", "MACs", "Other ops", "Act. memory", "RF", "Jump")

    def _cells(self, depth: int | None) -> list[tuple[str, ...]]:
        return [
            (r.label, r.type, _shape_text(r.output_shape), f"{r.params:,}", format_count(r.macs),
             format_count(r.other_ops), _bytes(r.act_bytes), _rf_text(r.rf), _rf_text(r.jump))
            for r in self.grouped(depth)
        ]

    def _total_cells(self) -> tuple[str, ...]:
        t = self.total
        return ("Total", "", _shape_text(t.output_shape), f"{t.params:,}", format_count(t.macs),
                format_count(t.other_ops), _bytes(t.activation_bytes), _rf_text(t.rf), _rf_text(t.jump))

    def _total_lines(self) -> list[str]:
        t = self.total
        ops = ", ".join(f"{k} {format_count(v)}" for k, v in t.ops.items() if v) or "none"
        macs = ", ".join(f"{k} {format_count(v)}" for k, v in t.macs_by_kind.items() if v) or "none"
        return [
            f"Input: {_shape_text(t.input_size)} ({_bytes(t.input_bytes)}); output: {_shape_text(t.output_shape)}",
            f"Parameters: {t.params:,} ({t.trainable_params:,} trainable, {_bytes(t.param_bytes)})",
            f"MACs: {t.macs:,} ({format_count(t.macs)}; {macs}) = {format_count(t.flops)} FLOPs",
            f"Other operations: {format_count(t.other_ops)} ({ops})",
            f"Activation memory: {_bytes(t.activation_bytes)} ({t.activation_bytes:,} bytes)",
            f"Receptive field: {_rf_text(t.rf)} pixels, jump {_rf_text(t.jump)}",
        ]

    def to_table(self, depth: int | None = _DEFAULT) -> str:
        """A plain-text table and the totals."""
        cells = self._cells(depth)
        total = self._total_cells()
        widths = [max(len(h), len(total[i]), *(len(c[i]) for c in cells)) for i, h in enumerate(self._HEADER)]
        right = {3, 4, 5, 6, 7, 8}
        fmt = lambda row: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [f"{self.model_name}, batch of {self.batch_size}", rule, fmt(self._HEADER), rule]
        lines += [fmt(c) for c in cells]
        lines += [rule, fmt(total), rule, *self._total_lines()]
        return "\n".join(lines)

    def to_markdown(self, depth: int | None = _DEFAULT) -> str:
        """A Markdown table and the totals as a list."""
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = [f"**{self.model_name}**, batch of {self.batch_size}", "",
                 "| " + " | ".join(self._HEADER) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(self._HEADER) - 2)) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in self._cells(depth)]
        lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in self._total_cells()) + " |")
        lines += [""] + [f"- {line}" for line in self._total_lines()]
        return "\n".join(lines) + "\n"

    def to_dict(self, depth: int | None = _DEFAULT) -> dict[str, Any]:
        """Everything as plain numbers: ``{"model", "batch_size", "rows": [...], "total": {...}}``."""
        rows = []
        for r in self.grouped(depth):
            d = asdict(r)
            d.pop("path")
            d["output_shape"] = list(r.output_shape) if r.output_shape is not None else None
            d["rf"] = [_num(v) for v in r.rf] if r.rf is not None else None
            d["jump"] = [_num(v) for v in r.jump] if r.jump is not None else None
            rows.append(d)
        t = self.total
        total = asdict(t)
        total.update(
            flops=t.flops,
            other_ops=t.other_ops,
            input_size=list(t.input_size),
            output_shape=list(t.output_shape) if t.output_shape is not None else None,
            rf=[_num(v) for v in t.rf] if t.rf is not None else None,
            jump=[_num(v) for v in t.jump] if t.jump is not None else None,
        )
        return {"model": self.model_name, "batch_size": self.batch_size, "rows": rows, "total": total}

    def to_json(self, depth: int | None = _DEFAULT, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(depth), indent=indent)

    def to_csv(self, depth: int | None = _DEFAULT) -> str:
        """One line per row; numbers unformatted (ops columns per kind, RF per axis)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "type", "depth", "own", "kind", "output_shape", "params", "macs",
                         *(f"macs_{k}" for k in MAC_KINDS), *(f"ops_{k}" for k in OP_KINDS),
                         "act_bytes", "rf", "jump"])
        for r in self.grouped(depth):
            writer.writerow([r.name, r.type, r.depth, int(r.own), r.kind, _shape_text(r.output_shape), r.params, r.macs,
                             *(r.macs_by_kind.get(k, 0) for k in MAC_KINDS), *(r.ops.get(k, 0) for k in OP_KINDS),
                             r.act_bytes, _rf_text(r.rf), _rf_text(r.jump)])
        return buffer.getvalue()

    def plot(self, path: str | os.PathLike, depth: int = 1, title: str | None = None) -> Path:
        """Bar charts of MACs and parameters per block (``depth`` 1: the model's children),
        written atomically (a temporary file, then a rename). Returns the path."""
        from cnnzoo.analysis.plot import plot_summary

        return plot_summary(self, path, depth, title)


# =============================================================================== summarize

def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, (Sequence, torch.Size)):
        raise ValueError(f"input_size must be a sequence of positive integers such as (3, 224, 224), got {input_size!r}")
    sizes = tuple(input_size)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"input_size must be a non-empty sequence of positive integers such as (3, 224, 224), got {input_size!r}")
    return sizes


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers are data-less meta tensors
    (they are swapped in through deepcopy's memo, so no weight is ever copied)."""
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if id(tensor) in memo:
            continue
        twin = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = twin
    return copy.deepcopy(model, memo)


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
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be a non-negative integer or None, got {depth!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    runner = _meta_copy(model) if device.type == "meta" else copy.deepcopy(model).to(device)
    runner.eval()
    model_name = type(model).__name__

    calls: dict[int, _Call] = {}
    rows: list[Row] = []
    counter = itertools.count()  # the model's own call is number 0
    tracer = _Tracer(_Call(-1, "", "", -1, (), False, None, 0))  # a sentinel under the model

    def make_row(call: _Call, own: bool) -> Row:
        kind = _kind_of(call.macs, call.ops, None if call.module_kind == "linear" else call.module_kind)
        return Row(call.name, call.type, call.depth, kind, call.output_shape, call.params, sum(call.macs.values()),
                   dict(call.ops), call.act_bytes, call.rf, call.jump, own, dict(call.macs), call.path)

    def pre_hook(module: nn.Module, args: Any, name: str, leaf: bool, params: int, module_kind: str | None) -> None:
        parent = tracer.stack[-1]
        uid = next(counter)
        call = _Call(uid, name, type(module).__name__, parent.depth + 1, parent.path + (uid,), leaf, module_kind, params)
        calls[uid] = call
        tracer.stack.append(call)

    def post_hook(module: nn.Module, args: Any, output: Any) -> None:
        call = tracer.stack.pop()
        out = _first_tensor(output)
        if out is not None:
            call.output_shape = tuple(out.shape)
            rf = tracer.rf_of(out)
            if rf is not None and rf.size:
                call.rf, call.jump = rf.size, rf.jump
        if call.leaf:
            rows.append(make_row(call, own=False))
        elif call.macs or call.ops or call.act_bytes or call.params:
            rows.append(make_row(call, own=True))

    for name, module in runner.named_modules():  # a shared module is hooked once, under its first name
        leaf = not any(True for _ in module.children())
        params = sum(p.numel() for p in module.parameters(recurse=leaf))
        kind = "linear" if isinstance(module, nn.Linear) else _module_kind(module)
        module.register_forward_pre_hook(
            lambda m, a, _n=name, _l=leaf, _p=params, _k=kind: pre_hook(m, a, _n, _l, _p, _k))
        module.register_forward_hook(post_hook)

    try:
        x = torch.zeros(batch_size, *input_size, dtype=dtype, device=device)
    except RuntimeError as err:  # more elements than an index can count, or no memory for them
        raise ValueError(f"cannot create an input of size {(batch_size, *input_size)}: {_first_line(err)}") from err
    spatial = len(input_size) - 1
    tracer.set_rf(x, _RF((1.0,) * spatial, (1.0,) * spatial))
    tracer.mark_seen([x, *runner.parameters(), *runner.buffers()])
    try:
        with torch.no_grad(), tracer:
            output = runner(x)
    except ValueError:
        raise
    except RuntimeError as err:
        where = next((c.name for c in reversed(tracer.stack) if c.uid > 0), "")
        where = f" (in layer {where!r})" if where else ""
        hint = ""
        if device.type == "meta" and "meta" in str(err).lower():
            hint = "; this model may need real data: try device='cpu'"
        raise ValueError(
            f"{model_name} cannot run on an input of size {tuple(x.shape)}{where}: {_first_line(err)}{hint}"
        ) from err

    out = _first_tensor(output)
    out_rf = tracer.rf_of(out) if out is not None else None
    macs_by_kind = {k: sum(r.macs_by_kind.get(k, 0) for r in rows) for k in MAC_KINDS}
    ops = {k: sum(r.ops.get(k, 0) for r in rows) for k in OP_KINDS}
    unique = {id(p): p for p in model.parameters()}
    total = Total(
        params=sum(p.numel() for p in unique.values()),
        trainable_params=sum(p.numel() for p in unique.values() if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in unique.values()),
        macs=sum(macs_by_kind.values()),
        macs_by_kind=macs_by_kind,
        ops=ops,
        activation_bytes=sum(r.act_bytes for r in rows),
        input_size=tuple(x.shape),
        input_bytes=x.numel() * x.element_size(),
        output_shape=tuple(out.shape) if out is not None else None,
        rf=out_rf.size if out_rf is not None and out_rf.size else None,
        jump=out_rf.jump if out_rf is not None and out_rf.size else None,
    )
    tracer.info.clear()
    tracer.keep.clear()
    return Summary(model_name, batch_size, rows, total, calls, depth)
