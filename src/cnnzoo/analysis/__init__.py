"""Cost calculus on any ``nn.Module``: parameters, multiply-adds, memory, receptive field.

* :func:`summarize` runs a model on the meta device (no computation) and reports, per
  layer and in total, output shapes, parameters, MACs, other operations, activation memory
  and receptive field;
* :func:`count_params` and :func:`count_macs` are the two numbers most asked for;
* :mod:`cnnzoo.analysis.formulas` holds the lecture notes' cost formulas as pure
  functions, and ``explain(topic)`` (also ``explain.explain(topic)``; ``topics()``)
  prints them with the notes' worked examples, computed.

A MAC is one multiply-accumulate; FLOPs = 2 x MACs.

Where the pieces live (each imports only modules listed before it, and
:mod:`cnnzoo.utils`; none imports a model, the registry or the engine):

* ``ops``: the ATen operation tables, their kinds, the reading of their arguments;
* ``records``: ``Row``, ``Total`` and the module call a trace fills in;
* ``costs`` and ``receptive_field``: what one operation costs, and the field of its output;
* ``tracer``: the hooks and dispatch mode that watch one forward pass;
* ``render`` and ``plot``: rows and totals as text, CSV, plain data, a picture;
* ``summary``: ``summarize`` and ``Summary``;
* ``formulas``; ``explain_layers`` and ``explain_networks`` (the topics' texts); ``explain``
  (the topic registry).
"""

from __future__ import annotations

from torch import nn

from cnnzoo.analysis import explain, formulas  # ``explain`` is a module one can call: explain("grouped")
from cnnzoo.analysis.explain import topics
from cnnzoo.analysis.summary import Row, Summary, Total, summarize

__all__ = ["Row", "Summary", "Total", "count_macs", "count_params", "explain", "formulas", "summarize", "topics"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224)) -> int:
    """Multiply-accumulates of convolutions, linear layers and matmuls for one image of
    ``input_size`` (C, H, W), counted on the meta device (nothing is computed and the model
    is not modified). FLOPs = 2 x MACs; ``torch.utils.flop_counter.FlopCounterMode`` agrees."""
    return summarize(model, input_size).total.macs
