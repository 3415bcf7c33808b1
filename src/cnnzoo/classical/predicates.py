"""Similarity predicates: when is a region homogeneous enough to be one region?

The lecture notes define a segmentation by a predicate that every region satisfies and the
union of two different regions does not. All three classical methods share the predicates
here. A predicate looks only at a region's running sums (:class:`RegionStats`: pixel count,
per-channel sum, sum of squares, minimum and maximum), so the statistics of the union of two
regions come from adding their sums; split-and-merge can then test a merge without reading
pixels again, and region growing can test "region plus this pixel" for a whole frontier at once.

Thresholds are in the image's own units (0-255 for uint8). For colour images, ranges and
standard deviations are per channel (the largest one decides) and distances are Euclidean
over the channels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PREDICATES",
    "FunctionPredicate",
    "MaxRange",
    "MaxStd",
    "MeanDistance",
    "Predicate",
    "RegionStats",
    "as_predicate",
    "make_predicate",
]


@dataclass(frozen=True)
class RegionStats:
    """Running sums describing R regions of a C-channel image, one row per region.

    ``count`` has shape (R,); ``total`` (sum of values), ``total_sq`` (sum of squared values),
    ``minimum`` and ``maximum`` have shape (R, C).
    """

    count: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def of_pixels(cls, values: np.ndarray) -> RegionStats:
        """One single-pixel region per row of ``values`` (shape (N, C))."""
        values = np.asarray(values, dtype=np.float64)
        return cls(np.ones(len(values)), values.copy(), values**2, values.copy(), values.copy())

    @classmethod
    def of_labels(cls, values: np.ndarray, labels: np.ndarray, num_regions: int | None = None) -> RegionStats:
        """The statistics of each region of a label map over ``values`` (shape (N, C)).

        ``labels`` must use every number 0..R-1 (relabel a map with gaps first).
        """
        values = np.asarray(values, dtype=np.float64)
        labels = np.asarray(labels).ravel()
        num_regions = int(labels.max()) + 1 if num_regions is None else num_regions
        return cls.of_pixels(values).grouped(labels, num_regions)

    def __len__(self) -> int:
        return len(self.count)

    @property
    def mean(self) -> np.ndarray:
        """Per-channel mean, (R, C)."""
        # The clip only undoes rounding (mathematically min <= mean <= max), so that a flat
        # region's mean is exactly its value and a zero threshold behaves as it reads.
        return np.clip(self.total / self.count[:, None], self.minimum, self.maximum)

    @property
    def variance(self) -> np.ndarray:
        """Per-channel population variance, (R, C)."""
        raw = self.total_sq / self.count[:, None] - (self.total / self.count[:, None]) ** 2
        # E[x^2] - E[x]^2 loses digits to cancellation; bounding it by 0 and by Popoviciu's
        # (max - min)^2 / 4 keeps it exact where it matters most: flat regions give exactly 0.
        return np.clip(raw, 0.0, self.value_range**2 / 4)

    @property
    def std(self) -> np.ndarray:
        """Per-channel standard deviation, (R, C)."""
        return np.sqrt(self.variance)

    @property
    def value_range(self) -> np.ndarray:
        """Per-channel max - min, (R, C)."""
        return self.maximum - self.minimum

    def take(self, index: np.ndarray) -> RegionStats:
        """The rows ``index`` (an integer array, repeats allowed)."""
        return RegionStats(self.count[index], self.total[index], self.total_sq[index],
                           self.minimum[index], self.maximum[index])

    def union(self, other: RegionStats) -> RegionStats:
        """Row i describes the union of row i of ``self`` and row i of ``other`` (disjoint regions)."""
        return RegionStats(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq,
                           np.minimum(self.minimum, other.minimum), np.maximum(self.maximum, other.maximum))

    def grouped(self, groups: np.ndarray, num_groups: int) -> RegionStats:
        """Row g describes the union of all rows i with ``groups[i] == g`` (every group non-empty)."""
        groups = np.asarray(groups, dtype=np.int64)
        channels = self.total.shape[1]
        count = np.bincount(groups, weights=self.count, minlength=num_groups)
        total = np.stack([np.bincount(groups, self.total[:, c], num_groups) for c in range(channels)], axis=1)
        total_sq = np.stack([np.bincount(groups, self.total_sq[:, c], num_groups) for c in range(channels)], axis=1)
        # Minima and maxima per group: sort the rows by group and reduce each run (much
        # faster than np.minimum.at).
        order = np.argsort(groups, kind="stable")
        sorted_groups = groups[order]
        run_start = np.ones(len(groups), dtype=bool)
        run_start[1:] = sorted_groups[1:] != sorted_groups[:-1]
        starts = np.flatnonzero(run_start)
        if len(starts) != num_groups:
            raise ValueError(f"groups must number 0..{num_groups - 1} with none empty")
        minimum = np.minimum.reduceat(self.minimum[order], starts)
        maximum = np.maximum.reduceat(self.maximum[order], starts)
        return RegionStats(count, total, total_sq, minimum, maximum)

    def concat(self, other: RegionStats) -> RegionStats:
        """The rows of ``self`` followed by the rows of ``other``."""
        return RegionStats(*(np.concatenate([a, b]) for a, b in zip(self._arrays(), other._arrays())))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.count, self.total, self.total_sq, self.minimum, self.maximum


class Predicate(ABC):
    """A homogeneity test on regions, decided from their :class:`RegionStats`.

    Subclasses implement :meth:`holds`; :meth:`accepts`, the region-growing question "may this
    pixel join this region?", defaults to "does the region plus the pixel still hold?".
    Calling a predicate is the same as calling :meth:`holds`.
    """

    @abstractmethod
    def holds(self, stats: RegionStats) -> np.ndarray:
        """A boolean per region: is it homogeneous?"""

    def accepts(self, stats: RegionStats, values: np.ndarray) -> np.ndarray:
        """A boolean per row: may pixel ``values[i]`` (shape (N, C)) join region ``i`` of ``stats``?"""
        return self.holds(stats.union(RegionStats.of_pixels(values)))

    def __call__(self, stats: RegionStats) -> np.ndarray:
        return self.holds(stats)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    return float(threshold)


@dataclass(frozen=True)
class MaxRange(Predicate):
    """Homogeneous when, in every channel, max - min <= ``threshold``.

    The classic predicate of Horowitz & Pavlidis's split and merge (1974). Strict: one outlier
    pixel breaks it, so on noisy images prefer :class:`MaxStd`.
    """

    threshold: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", _check_threshold(self.threshold))

    def holds(self, stats: RegionStats) -> np.ndarray:
        return stats.value_range.max(axis=1) <= self.threshold


@dataclass(frozen=True)
class MaxStd(Predicate):
    """Homogeneous when, in every channel, the standard deviation is <= ``threshold``.

    Robust to noise, but a large region hardly notices a small dissimilar neighbour (adding a
    few pixels barely moves a large region's deviation), so thin structures can be absorbed.
    """

    threshold: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", _check_threshold(self.threshold))

    def holds(self, stats: RegionStats) -> np.ndarray:
        return stats.std.max(axis=1) <= self.threshold


@dataclass(frozen=True)
class MeanDistance(Predicate):
    """Every pixel lies within ``threshold`` (Euclidean, over channels) of the region's mean.

    Region growing asks this of each candidate pixel against the current region mean, the
    criterion of seeded region growing (Adams & Bischof 1994). For a whole region only the
    per-channel extremes are known, so :meth:`holds` tests the farthest a pixel could be,
    ``sqrt(sum_c max(max_c - mean_c, mean_c - min_c)^2)``: exact for grayscale, a safe upper
    bound for colour (a colour region may be refused that every pixel actually satisfies).
    """

    threshold: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", _check_threshold(self.threshold))

    def holds(self, stats: RegionStats) -> np.ndarray:
        mean = stats.mean
        farthest = np.maximum(stats.maximum - mean, mean - stats.minimum)
        return np.sqrt((farthest**2).sum(axis=1)) <= self.threshold

    def accepts(self, stats: RegionStats, values: np.ndarray) -> np.ndarray:
        return np.sqrt(((np.asarray(values) - stats.mean) ** 2).sum(axis=1)) <= self.threshold


@dataclass(frozen=True)
class FunctionPredicate(Predicate):
    """Wrap a plain function ``fn(stats) -> bool array of shape (R,)`` as a predicate.

    For example ``FunctionPredicate(lambda s: s.mean[:, 0] > 100)``.
    """

    function: Callable[[RegionStats], np.ndarray]

    def holds(self, stats: RegionStats) -> np.ndarray:
        result = np.asarray(self.function(stats))
        try:
            return np.broadcast_to(result, (len(stats),)).astype(bool)
        except ValueError:
            raise ValueError(
                f"predicate {self.function!r} returned shape {result.shape}; expected one boolean per "
                f"region, shape ({len(stats)},)"
            ) from None


PREDICATES: dict[str, type[Predicate]] = {
    "mean-distance": MeanDistance,
    "max-range": MaxRange,
    "max-std": MaxStd,
}


def make_predicate(name: str, threshold: float) -> Predicate:
    """Build a predicate by name: ``mean-distance``, ``max-range`` or ``max-std``."""
    key = name.strip().lower().replace("_", "-")
    if key not in PREDICATES:
        raise ValueError(f"unknown predicate {name!r}; choose from {', '.join(PREDICATES)}")
    return PREDICATES[key](threshold)


def as_predicate(predicate: Predicate | Callable[[RegionStats], np.ndarray]) -> Predicate:
    """Accept a :class:`Predicate` or a plain function of :class:`RegionStats`."""
    if isinstance(predicate, Predicate):
        return predicate
    if callable(predicate):
        return FunctionPredicate(predicate)
    raise ValueError(f"predicate must be a Predicate or a function of RegionStats, got {predicate!r}")
