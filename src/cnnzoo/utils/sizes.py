"""Sizes: ``pair`` and the ``CxHxW`` parser shared by the command line and config files."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["IntOrPair", "pair", "parse_input_size"]

IntOrPair = int | Sequence[int]


def pair(value: IntOrPair) -> tuple[int, int]:
    """``(v, v)`` for an int, the two numbers of a pair otherwise (kernel sizes, strides,
    image sizes: a square unless said otherwise)."""
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def parse_input_size(text: str, default_channels: int = 3) -> tuple[int, int, int]:
    """``"3x224x224"`` -> (3, 224, 224); ``"224x160"`` -> (C, 224, 160); ``"224"`` -> (C, 224, 224)."""
    if not re.fullmatch(r"\d+(x\d+){0,2}", text.strip().lower()):
        raise ValueError(f"malformed input size {text!r}: expected CxHxW, HxW or N, e.g. 3x224x224")
    numbers = [int(n) for n in text.strip().lower().split("x")]
    if any(n <= 0 for n in numbers):
        raise ValueError(f"input size {text!r} must be positive")
    if len(numbers) == 1:
        return (default_channels, numbers[0], numbers[0])
    if len(numbers) == 2:
        return (default_channels, numbers[0], numbers[1])
    return (numbers[0], numbers[1], numbers[2])
