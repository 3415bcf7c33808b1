"""One interface for the three classical methods: ``segment(image, method, **options)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnzoo.classical.clustering import kmeans_segmentation
from cnnzoo.classical.region_growing import region_growing
from cnnzoo.classical.split_merge import split_and_merge

__all__ = ["METHODS", "method_name", "segment"]

METHODS: dict[str, Callable[..., np.ndarray]] = {
    "region_growing": region_growing,
    "kmeans": kmeans_segmentation,
    "split_and_merge": split_and_merge,
}

_ALIASES = {
    "growing": "region_growing",
    "k_means": "kmeans",
    "clustering": "kmeans",
    "split_merge": "split_and_merge",
}


def method_name(method: str) -> str:
    """The canonical name of a method; hyphens and underscores are interchangeable."""
    key = str(method).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        names = ", ".join(name.replace("_", "-") for name in METHODS)
        raise ValueError(f"unknown segmentation method {method!r}; choose from {names}")
    return key


def segment(image: np.ndarray, method: str, **options: Any) -> np.ndarray:
    """Segment ``image`` (HxW or HxWxC) with a classical method; return an HxW int64 label map.

    ``method`` is ``"region_growing"``, ``"kmeans"`` or ``"split_and_merge"`` (``region-growing``,
    ``split-merge`` and ``clustering`` work too); ``options`` go to that method's function, e.g.
    ``segment(img, "kmeans", k=4)`` or ``segment(img, "split_and_merge", predicate=MaxRange(20))``.
    Every pixel gets exactly one label; labels are 0..R-1.
    """
    function = METHODS[method_name(method)]
    parameters = list(inspect.signature(function).parameters.values())[1:]  # all but the image
    accepted = [p.name for p in parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{function.__name__} has no option {', '.join(unknown)}; it takes {', '.join(accepted)}")
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in options]
    if missing:
        raise ValueError(f"{function.__name__} needs {', '.join(missing)}")
    return function(image, **options)
