"""Values as strict JSON: what checkpoints' sidecars and ``--json`` outputs are written with."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """``value`` with only JSON types left: tensors, NumPy arrays and NumPy scalars as
    (nested) lists and numbers, tuples as lists, dict keys as strings, paths as strings, and
    NaN and infinities (an undefined metric) as ``None``, so ``json.dumps(...,
    allow_nan=False)`` accepts it."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # torch, NumPy
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
