"""Sizes: ``pair`` and the ``CxHxW`` parser shared by the command line and config files."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["MAX_CHANNELS", "MAX_SIDE", "IntOrPair", "check_side", "pair", "parse_input_size"]

# Sanity bounds on sizes read from the user: beyond them a size is a typo, and would
# overflow torch's 64-bit shapes (or ask for terabytes) rather than fail cleanly.
MAX_SIDE = 65536
MAX_CHANNELS = 65536

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
    sides = numbers[-2:] if len(numbers) > 1 else numbers
    if any(n > MAX_SIDE for n in sides):
        raise ValueError(f"input size {text!r}: a side can be at most {MAX_SIDE} pixels")
    if len(numbers) == 3 and numbers[0] > MAX_CHANNELS:
        raise ValueError(f"input size {text!r}: at most {MAX_CHANNELS} channels")
    if len(numbers) == 1:
        return (default_channels, numbers[0], numbers[0])
    if len(numbers) == 2:
        return (default_channels, numbers[0], numbers[1])
    return (numbers[0], numbers[1], numbers[2])


def check_side(value: int, what: str = "image size") -> int:
    """``value`` when it is a side of 1 to :data:`MAX_SIDE` pixels, else a ValueError naming ``what``."""
    if not 1 <= value <= MAX_SIDE:
        raise ValueError(f"{what} must be 1 to {MAX_SIDE} pixels a side, got {value}")
    return value
