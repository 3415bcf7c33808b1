"""ATen operations as the cost trace sees them: the tables that sort them into kinds, the
kinds of the standard ``torch.nn`` modules, and the reading of an operation's arguments
(kernel, stride, dilation, adaptive-pooling regions) that its cost and its receptive field
both need.

The kinds: ``conv``, ``matmul`` and ``sdpa`` (counted in MACs); ``norm``, ``activation``,
``pool``, ``adaptive``, ``reduce``, ``upsample``, ``unpool``, ``elementwise`` and ``other``
(counted as other operations); ``memory`` (views, copies, concatenations, padding: no
cost).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = [
    "TRANSPOSE", "UPSAMPLE_TAPS", "VIEWLIKE", "Operation", "adaptive_regions", "classify", "module_kind", "ntuple",
    "pool_window", "tensors_in",
]


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
UPSAMPLE_TAPS = {  # input pixels read per output pixel, per axis
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
VIEWLIKE = _names("view _unsafe_view reshape _reshape_alias")
TRANSPOSE = _names("t transpose permute movedim")

_MODULE_KINDS = {
    "torch.nn.modules.batchnorm": "norm",
    "torch.nn.modules.instancenorm": "norm",
    "torch.nn.modules.normalization": "norm",
    "torch.nn.modules.activation": "activation",
    "torch.nn.modules.pooling": "pool",
    "torch.nn.modules.upsampling": "resample",
}

_CLASSIFIED: dict[Any, tuple[str, str]] = {}  # operator -> (kind, name), filled as operators are met


class Operation(NamedTuple):
    """One ATen call: its kind and name (see :func:`classify`), its arguments, the first of
    them (the input, when it is a tensor) and its first tensor output."""

    kind: str
    name: str
    args: tuple
    kwargs: dict
    input: Any
    out: torch.Tensor

    @property
    def spatial(self) -> int:
        """Number of spatial axes of an image-like output (N, C, *spatial)."""
        return self.out.dim() - 2


def module_kind(module: nn.Module) -> str | None:
    """The kind of the cost-free-of-MACs operations a standard torch module runs (an LRN's
    squares and window sums are normalization, not generic element-wise work)."""
    return _MODULE_KINDS.get(type(module).__module__)


def classify(func: Any) -> tuple[str, str]:
    """``(kind, name)`` of an ATen operator (an ``OpOverload``), remembered per operator
    because the same few hundred operators are met thousands of times."""
    known = _CLASSIFIED.get(func)
    if known is None:
        name = func.overloadpacket.__name__
        known = _CLASSIFIED[func] = (_kind_of_name(name, func._overloadname), name)
    return known


def _kind_of_name(name: str, overload: str) -> str:
    if name in _CONV:
        return "conv"
    if name in _MATMUL:
        return "matmul"
    if name.startswith("_scaled_dot_product"):
        return "sdpa"
    if name.rstrip("_") in _NORM or name in _NORM:
        return "norm"
    if name in _ACTIVATION:
        return "activation"
    if name in _POOL:
        return "pool"
    if name in _ADAPTIVE:
        return "adaptive"
    # max(a, b) and min(a, b) are element-wise; max(x) and max(x, dim) reduce
    if name in _REDUCE and not (name in ("max", "min") and overload not in ("default", "dim")):
        return "reduce"
    if name in UPSAMPLE_TAPS:
        return "upsample"
    if name in _UNPOOL:
        return "unpool"
    if name in _MEMORY:
        return "memory"
    if name.rstrip("_") in _ELEMENTWISE:
        return "elementwise"
    return "other"


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in an ATen operation's arguments or result, in order: a tensor, or
    tuples and lists of them (a concatenation's inputs, a split's outputs), nested.

    It stands in for ``torch.utils._pytree.tree_leaves``, which also opens dicts and
    registered containers that ATen arguments never hold: it is called twice for most
    operations, and is 2 to 8 times faster on their arguments (tree_leaves was about 7% of
    the trace time under a profiler).
    """
    if isinstance(value, torch.Tensor):
        return [value]
    found: list[torch.Tensor] = []
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (tuple, list)):
                found.extend(tensors_in(item))
    return found


def ntuple(value: Any, n: int, default: int | None = None) -> tuple[int, ...]:
    """An ATen size argument (an int, or a list of one or ``n`` ints) as ``n`` ints."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        return values * n if len(values) == 1 else values
    return (int(value),) * n


def pool_window(op: Operation) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(kernel, stride, dilation)`` of a max / average pooling (the stride defaults to
    the kernel; only max pooling takes a dilation)."""
    spatial = op.spatial
    args = op.args
    kernel = ntuple(args[1], spatial)
    stride = ntuple(args[2], spatial) if len(args) > 2 and args[2] else kernel
    dilation = ntuple(args[4], spatial) if op.name.startswith("max") and len(args) > 4 else (1,) * spatial
    return kernel, stride, dilation


def adaptive_regions(size: int, out: int) -> tuple[int, int]:
    """Largest pooling region and sum of region sizes of adaptive pooling ``size -> out``
    (region i is ``[floor(i * size / out), ceil((i + 1) * size / out))``)."""
    largest = total = 0
    for i in range(out):
        extent = -(-(i + 1) * size // out) - (i * size // out)
        largest, total = max(largest, extent), total + extent
    return largest, total
