"""The records a cost trace produces: a :class:`Row` per module call, the :class:`Total`,
and the :class:`ModuleCall` the tracer fills in while a call runs.

The kinds a row's costs are filed under are fixed here, in the order the reports list
them: MACs of ``conv``, ``linear`` and ``matmul`` (:data:`MAC_KINDS`) and other operations
of ``norm``, ``activation``, ``pool``, ``elementwise``, ``resample`` and ``other``
(:data:`OP_KINDS`). See ``docs/cost_calculus.md`` for what each one counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["MAC_KINDS", "OP_KINDS", "ModuleCall", "Row", "Total", "kind_of", "row_of_call"]

MAC_KINDS = ("conv", "linear", "matmul")
OP_KINDS = ("norm", "activation", "pool", "elementwise", "resample", "other")


@dataclass
class Row:
    """One module call (a leaf module, or the operations a container runs itself).

    ``macs`` and ``ops`` are for the whole batch; ``ops`` maps an operation kind (``norm``,
    ``activation``, ``pool``, ``elementwise``, ``resample``, ``other``) to its count;
    ``act_bytes`` is the memory of the tensors the call creates; ``rf`` and ``jump`` are
    the receptive field of the spatial path and its jump per spatial axis (ints, or exact
    fractions after a resize to a given size; ``None`` when the output is not traced to the
    input); ``context`` is ``"local"``, ``"gated"`` (global context joined a spatial path) or
    ``"global"`` (no spatial path left: ``rf`` and ``jump`` are those of the path before it).
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
    rf: tuple[int | Fraction, ...] | None
    jump: tuple[int | Fraction, ...] | None
    own: bool = False  # the container's own operations (e.g. the residual addition)
    macs_by_kind: dict[str, int] = field(default_factory=dict)
    path: tuple[int, ...] = field(default=(), repr=False)
    context: str | None = None  # "local", "gated" or "global"; None without a field

    @property
    def other_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def label(self) -> str:
        name = self.name or "<model>"
        return f"{name} (self)" if self.own else name


@dataclass
class Total:
    """Totals of a :class:`~cnnzoo.analysis.summary.Summary`. ``params`` counts every
    (shared-once) parameter of the model, including those of modules the forward pass does
    not call."""

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
    rf: tuple[int | Fraction, ...] | None
    jump: tuple[int | Fraction, ...] | None
    context: str | None = None  # of the output's field, as in Row
    context_from: str | None = None  # the layer whose global operation first reached the output

    @property
    def flops(self) -> int:
        """FLOPs of the MAC-counted layers: 2 x MACs."""
        return 2 * self.macs

    @property
    def other_ops(self) -> int:
        return sum(self.ops.values())


@dataclass
class ModuleCall:
    """One module call while it runs: the costs charged to it so far, and, once it returns,
    its output's shape and receptive field. ``path`` is the chain of call numbers from the
    model down to this call, the key by which rows are grouped into blocks."""

    uid: int
    name: str
    type: str
    depth: int
    path: tuple[int, ...]
    leaf: bool
    module_kind: str | None  # "linear", or the kind of a standard torch module (see ops.module_kind)
    params: int
    macs: dict[str, int] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)
    act_bytes: int = 0
    output_shape: tuple[int, ...] | None = None
    rf: tuple[int | Fraction, ...] | None = None
    jump: tuple[int | Fraction, ...] | None = None
    context: str | None = None


def kind_of(macs_by_kind: dict[str, int], ops: dict[str, int], fallback: str | None) -> str:
    """A row's kind: its main MAC kind, else its main other-operation kind."""
    if any(macs_by_kind.values()):
        return max(macs_by_kind, key=macs_by_kind.get)
    if any(ops.values()):
        return max(ops, key=ops.get)
    return fallback or "none"


def row_of_call(call: ModuleCall, own: bool) -> Row:
    """The row of a finished call; ``own`` for a container's own operations."""
    # "linear" only relabels an nn.Linear's matmuls; a call with no cost falls back to the
    # operation kinds of the standard torch modules alone
    fallback = None if call.module_kind == "linear" else call.module_kind
    return Row(call.name, call.type, call.depth, kind_of(call.macs, call.ops, fallback), call.output_shape,
               call.params, sum(call.macs.values()), dict(call.ops), call.act_bytes, call.rf, call.jump, own,
               dict(call.macs), call.path, call.context)
