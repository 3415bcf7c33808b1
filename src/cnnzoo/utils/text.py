"""Text for people: tables, counts with SI prefixes, the first line of an error, and the names
a typo most likely meant."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence

__all__ = ["closest_names", "first_few", "first_line", "format_count", "format_table"]


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


def first_few(items: list[str], shown: int = 5) -> str:
    """``a, b, c, d, e and 3 more``: a list too long for one line of a message, shortened."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def closest_names(name: str, choices: Sequence[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` that a mistyped ``name`` most likely meant, best first: the
    same letters but for ``_`` (``batchsize``: ``batch_size``), a choice the name starts with
    or that starts with the name (``lr_rate``: ``lr``; ``epoch``: ``epochs``), one holding it or
    held in it, one with its first word; then :func:`difflib.get_close_matches`'s."""
    lowered = name.lower()
    related = [choice for choice in choices if _relation(lowered, choice.lower()) is not None]
    related.sort(key=lambda choice: (
        _relation(lowered, choice.lower()), -difflib.SequenceMatcher(None, lowered, choice.lower()).ratio(),
    ))
    similar = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    return list(dict.fromkeys(related + similar))[:n]


def _relation(name: str, choice: str) -> int | None:
    """How ``choice`` relates to ``name``, closest first: 0 the same letters but for ``_`` and
    ``-``, 1 one starts the other, 2 one holds the other, 3 the same first word; ``None``."""
    def squeezed(text: str) -> str:
        return text.replace("_", "").replace("-", "")

    def first_word(text: str) -> str:
        return re.split(r"[_\-]", text)[0]

    shorter = min(len(name), len(choice))
    if squeezed(name) == squeezed(choice):
        return 0
    if shorter >= 2 and (name.startswith(choice) or choice.startswith(name)):
        return 1
    if shorter >= 3 and (name in choice or choice in name):
        return 2
    if len(first_word(name)) >= 2 and first_word(name) == first_word(choice):
        return 3
    return None
