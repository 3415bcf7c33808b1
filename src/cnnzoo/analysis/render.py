"""Summaries as text and plain data: a table, Markdown, CSV and a JSON-ready dict, made from
the rows and totals of a trace (what :class:`~cnnzoo.analysis.summary.Summary` renders).

The table and Markdown give human numbers (``1.23 M``, ``4.82 MiB``); CSV and the dict
give raw ones, one column per MAC and operation kind. The receptive field is that of the
spatial path: the table shows ``N``, ``N+g`` where global context joined it (a
squeeze-and-excitation gate) and ``global`` past a global operation; CSV and the dict give
the spatial path's numbers and the ``context`` apart.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from fractions import Fraction
from typing import Any

from cnnzoo.analysis.records import MAC_KINDS, OP_KINDS, Row, Total
from cnnzoo.utils.text import format_count

__all__ = ["csv_text", "markdown_text", "plain_dict", "table_text"]

_HEADER = ("Layer", "Type", "Output shape", "Params", "MACs", "Other ops", "Act. memory", "RF", "Jump")
_NUMERIC = {3, 4, 5, 6, 7, 8}  # the right-aligned columns of the table


def table_text(model_name: str, batch_size: int, rows: Sequence[Row], total: Total) -> str:
    """A plain-text table of ``rows``, a Total line and the totals."""
    cells = _cells(rows)
    total_cells = _total_cells(total)
    widths = [max(len(h), len(total_cells[i]), *(len(c[i]) for c in cells)) for i, h in enumerate(_HEADER)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in _NUMERIC else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [f"{model_name}, batch of {batch_size}", rule, line(_HEADER), rule]
    lines += [line(c) for c in cells]
    lines += [rule, line(total_cells), rule, *_total_lines(total)]
    return "\n".join(lines)


def markdown_text(model_name: str, batch_size: int, rows: Sequence[Row], total: Total) -> str:
    """A Markdown table of ``rows`` and the totals as a list."""
    lines = [f"**{model_name}**, batch of {batch_size}", "",
             "| " + " | ".join(_HEADER) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(_HEADER) - 2)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in _cells(rows)]
    lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in _total_cells(total)) + " |")
    lines += [""] + [f"- {line}" for line in _total_lines(total)]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[Row]) -> str:
    """One line per row; numbers unformatted (ops columns per kind, RF per axis)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "type", "depth", "own", "kind", "output_shape", "params", "macs",
                     *(f"macs_{k}" for k in MAC_KINDS), *(f"ops_{k}" for k in OP_KINDS),
                     "act_bytes", "rf", "jump", "context"])
    for r in rows:
        writer.writerow([r.name, r.type, r.depth, int(r.own), r.kind, _shape_text(r.output_shape), r.params, r.macs,
                         *(r.macs_by_kind.get(k, 0) for k in MAC_KINDS), *(r.ops.get(k, 0) for k in OP_KINDS),
                         r.act_bytes, _rf_text(r.rf), _rf_text(r.jump), r.context or ""])
    return buffer.getvalue()


def plain_dict(model_name: str, batch_size: int, rows: Sequence[Row], total: Total) -> dict[str, Any]:
    """Everything as plain numbers: ``{"model", "batch_size", "rows": [...], "total": {...}}``."""
    plain_rows = []
    for r in rows:
        d = asdict(r)
        d.pop("path")
        d.update(output_shape=_listed(r.output_shape), rf=_numbers(r.rf), jump=_numbers(r.jump))
        plain_rows.append(d)
    plain_total = asdict(total)
    plain_total.update(
        flops=total.flops,
        other_ops=total.other_ops,
        input_size=list(total.input_size),
        output_shape=_listed(total.output_shape),
        rf=_numbers(total.rf),
        jump=_numbers(total.jump),
    )  # context and context_from come with asdict
    return {"model": model_name, "batch_size": batch_size, "rows": plain_rows, "total": plain_total}


# ----------------------------------------------------------------------------- cells

def _cells(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    return [
        (r.label, r.type, _shape_text(r.output_shape), f"{r.params:,}", format_count(r.macs),
         format_count(r.other_ops), _bytes(r.act_bytes), *_field_cells(r.rf, r.jump, r.context))
        for r in rows
    ]


def _total_cells(t: Total) -> tuple[str, ...]:
    return ("Total", "", _shape_text(t.output_shape), f"{t.params:,}", format_count(t.macs),
            format_count(t.other_ops), _bytes(t.activation_bytes), *_field_cells(t.rf, t.jump, t.context))


def _total_lines(t: Total) -> list[str]:
    ops = ", ".join(f"{k} {format_count(v)}" for k, v in t.ops.items() if v) or "none"
    macs = ", ".join(f"{k} {format_count(v)}" for k, v in t.macs_by_kind.items() if v) or "none"
    return [
        f"Input: {_shape_text(t.input_size)} ({_bytes(t.input_bytes)}); output: {_shape_text(t.output_shape)}",
        f"Parameters: {t.params:,} ({t.trainable_params:,} trainable, {_bytes(t.param_bytes)})",
        f"MACs: {t.macs:,} ({format_count(t.macs)}; {macs}) = {format_count(t.flops)} FLOPs",
        f"Other operations: {format_count(t.other_ops)} ({ops})",
        f"Activation memory: {_bytes(t.activation_bytes)} ({t.activation_bytes:,} bytes)",
        f"Receptive field: {_field_line(t)}",
    ]


def _field_cells(rf: tuple | None, jump: tuple | None, context: str | None) -> tuple[str, str]:
    """The RF and Jump cells: ``N``, ``N+g`` (gated) or ``global`` (and no jump: no spatial
    layout is left)."""
    if context == "global":
        return "global", "-"
    suffix = "+g" if context == "gated" and rf else ""
    return _rf_text(rf) + suffix, _rf_text(jump)


def _field_line(t: Total) -> str:
    if not t.rf:
        return "- (the output is not traced to the input's image axes)"
    path = f"{_rf_text(t.rf)} pixels, jump {_rf_text(t.jump)}"
    origin = {None: "a global operation", "<model>": "the model's own operations"}.get(
        t.context_from, f"layer {t.context_from}")
    if t.context == "global":
        return f"global (each output reads the whole input; spatial path before it: {path}; from {origin})"
    if t.context == "gated":
        return f"{path} (spatial path; global context from {origin})"
    return path


def _num(value: int | Fraction) -> int | float:
    """A field size or jump as a JSON number: an int when whole, else the fraction's float."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else round(float(value), 6)


def _numbers(values: tuple[int | Fraction, ...] | None) -> list[int | float] | None:
    return [_num(v) for v in values] if values is not None else None


def _listed(shape: tuple[int, ...] | None) -> list[int] | None:
    return list(shape) if shape is not None else None


def _rf_text(values: tuple[int | Fraction, ...] | None) -> str:
    """Per-axis values as ``N`` or ``HxW``, a fraction as ``a/b`` (a resize to a given size)."""
    if not values:
        return "-"
    texts = [str(Fraction(v)) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def _bytes(n: float) -> str:
    """Binary prefixes for memory (KiB, MiB, GiB), unlike the SI counts of format_count."""
    if n == 0:
        return "0"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)
