"""Plain-text and Markdown tables and human-readable counts for the CLI."""

from __future__ import annotations

from cnnzoo.analysis.summary import format_count  # the same numbers as in `cnnzoo summary`

__all__ = ["format_count", "format_table"]


def format_table(header: list[str], rows: list[list[str]], align_right: set[int] = frozenset(), markdown: bool = False) -> str:
    """Columns padded to their widest cell; ``align_right`` holds the numeric column indexes."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        padded = [
            str(c).rjust(w) if i in align_right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded).rstrip()

    if markdown:
        rule = "|" + "|".join(("-" * (w + 1) + ":") if i in align_right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
