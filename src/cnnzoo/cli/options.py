"""Parsers for option values shared by the sub-commands."""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = ["parse_input_size", "parse_model_kwargs"]


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


def parse_model_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """``["width_mult=0.5", "aux_logits=False"]`` -> ``{"width_mult": 0.5, "aux_logits": False}``.

    Values are Python literals where they parse as one, strings otherwise.
    """
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"malformed model option {pair!r}: expected NAME=VALUE, e.g. width_mult=0.5")
        try:
            kwargs[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[name] = value
    return kwargs
