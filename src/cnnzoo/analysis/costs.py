"""What one ATen operation costs, from the shapes of its arguments and output alone.

* :func:`mac_count`: multiply-accumulates of convolutions (grouped, depthwise, dilated,
  transposed), matrix products and attention, as ``torch.utils.flop_counter`` counts them
  (FLOPs = 2 x MACs); bias additions are not counted;
* :func:`other_op_count`: one per output element for normalization, activation and element-wise
  work, one per element of each pooling window, one per input element of a reduction or an
  unpooling, one per interpolation tap of an upsampling;
* :func:`mac_kind` and :func:`op_kind`: the column of the report the count goes in, given
  the kind of the module running the operation.
"""

from __future__ import annotations

import math

from cnnzoo.analysis.ops import UPSAMPLE_TAPS, Operation, adaptive_regions, pool_window

__all__ = ["FREE_OPERATIONS", "MAC_OPERATIONS", "mac_count", "mac_kind", "op_kind", "other_op_count"]

MAC_OPERATIONS = frozenset({"conv", "matmul", "sdpa"})
FREE_OPERATIONS = frozenset({"memory"})  # views, copies, concatenations, padding

# the operation kinds the report merges: every window-reading reduction is "pool", every
# change of grid size without weights is "resample"
_REPORTED = {"adaptive": "pool", "reduce": "pool", "upsample": "resample", "unpool": "resample"}


def mac_count(op: Operation) -> int:
    """MACs of a ``conv``, ``matmul`` or ``sdpa`` operation, for the whole batch."""
    if op.kind == "conv":
        return _conv_macs(op)
    if op.kind == "matmul":
        a, b = (op.args[1], op.args[2]) if op.name in ("addmm", "baddbmm") else (op.args[0], op.args[1])
        return a.numel() * b.shape[-1]
    q, k, v = op.args[0], op.args[1], op.args[2]  # attention: Q K^T, then (weights) V
    return math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _conv_macs(op: Operation) -> int:
    weight, transposed = op.args[1], op.args[6]
    spatial = weight.dim() - 2
    # each position of the grid the kernel slides over does weight.numel() MACs per sample
    # (C_out x C_in / g x kernel); a transposed conv slides over its input
    grid = op.input if transposed else op.out
    return math.prod(grid.shape[:-spatial - 1]) * math.prod(grid.shape[-spatial:]) * weight.numel()


def other_op_count(op: Operation) -> int:
    """Operations of any kind but the MAC-counted and the free ones, for the whole batch."""
    kind, out = op.kind, op.out
    if kind == "pool":
        kernel, _, _ = pool_window(op)
        return out.numel() * math.prod(kernel)
    if kind == "adaptive":
        spatial = op.spatial
        regions = [adaptive_regions(i, o) for i, o in zip(op.input.shape[-spatial:], out.shape[-spatial:])]
        return math.prod(out.shape[:-spatial]) * math.prod(total for _, total in regions)
    if kind in ("reduce", "unpool"):
        return op.input.numel()
    if kind == "upsample":
        return out.numel() * UPSAMPLE_TAPS[op.name] ** op.spatial
    return out.numel()  # norm, activation, elementwise, other


def mac_kind(kind: str, owner: str | None) -> str:
    """The MAC column: ``conv``, ``linear`` (a matrix product inside an ``nn.Linear``) or
    ``matmul``."""
    if kind == "conv":
        return "conv"
    return "linear" if kind == "matmul" and owner == "linear" else "matmul"


def op_kind(kind: str, owner: str | None) -> str:
    """The other-operations column. Generic work inside a standard normalization,
    activation, pooling or resampling module counts as that module's kind (an LRN's squares
    and window sums are norm)."""
    reported = _REPORTED.get(kind, kind)
    if owner in ("norm", "activation", "pool", "resample") and reported in ("elementwise", "other"):
        return owner
    if owner == "norm" and reported in ("pool", "activation"):
        return owner
    return reported
