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
* ``summary``: ``summarize`` and ``Summary``; ``counts``: ``count_params`` and ``count_macs``;
* ``formulas``; ``explain_layers`` and ``explain_networks`` (the topics' texts); ``explain``
  (the topic registry).
"""

from __future__ import annotations

from cnnzoo.analysis import explain, formulas  # ``explain`` is a module one can call: explain("grouped")
from cnnzoo.analysis.counts import count_macs, count_params
from cnnzoo.analysis.explain import topics
from cnnzoo.analysis.summary import Row, Summary, Total, summarize

__all__ = ["Row", "Summary", "Total", "count_macs", "count_params", "explain", "formulas", "summarize", "topics"]
