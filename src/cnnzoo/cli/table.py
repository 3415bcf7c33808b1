"""Plain-text and Markdown tables and human-readable counts for the CLI."""

from __future__ import annotations

__all__ = ["format_count", "format_table"]


def format_count(value: float | int | None, unit: str = "") -> str:
    """1234567 -> '1.23 M'; with unit='B' binary-free SI bytes ('4.82 MB')."""
    if value is None:
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}{unit}"
    return f"{int(value)}{' ' + unit if unit else ''}"


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
