"""Text for people: tables, counts with SI prefixes, and the first line of an error."""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["first_line", "format_count", "format_table"]


def format_count(value: float | int | None, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes: k, M, G, T); ``unit`` is appended ('4.82 MB')."""
    if value is None:
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}{unit}"
    return f"{int(value)}{' ' + unit if unit else ''}"


def format_table(
    header: Sequence[object],
    rows: Sequence[Sequence[object]],
    align_right: Collection[int] = frozenset(),
    markdown: bool = False,
    pad: bool = True,
) -> str:
    """Columns padded to their widest cell; ``align_right`` holds the numeric column indexes.

    Plain text separates columns by two spaces under a rule of dashes; ``markdown=True``
    gives a GitHub table whose right-aligned columns are marked ``---:``, and with
    ``pad=False`` its cells are left unpadded (a table for a file rather than a screen).
    """
    if pad or not markdown:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    else:
        widths = [0] * len(header)

    def line(cells: Sequence[object]) -> str:
        padded = [
            str(c).rjust(w) if i in align_right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded).rstrip()

    if markdown:
        dashes = [max(w, 1) + 2 if pad else 3 for w in widths]
        rule = "|" + "|".join("-" * (d - 1) + ":" if i in align_right else "-" * d for i, d in enumerate(dashes)) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def first_line(err: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none: what a
    one-line report keeps of an exception raised by another library."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
