"""Region statistics and similarity predicates, against hand computations."""

import numpy as np
import pytest

from cnnzoo.classical.predicates import (
    FunctionPredicate,
    MaxRange,
    MaxStd,
    MeanDistance,
    RegionStats,
    as_predicate,
    make_predicate,
)


def gray_stats(*regions):
    """RegionStats of grayscale regions given as lists of pixel values."""
    values = np.concatenate([np.asarray(r, dtype=float) for r in regions])[:, None]
    labels = np.concatenate([np.full(len(r), i) for i, r in enumerate(regions)])
    return RegionStats.of_labels(values, labels, len(regions))


def test_stats_of_labels_by_hand():
    stats = gray_stats([1, 2], [3, 10])
    np.testing.assert_array_equal(stats.count, [2, 2])
    np.testing.assert_array_equal(stats.total[:, 0], [3, 13])
    np.testing.assert_array_equal(stats.total_sq[:, 0], [5, 109])
    np.testing.assert_array_equal(stats.minimum[:, 0], [1, 3])
    np.testing.assert_array_equal(stats.maximum[:, 0], [2, 10])
    np.testing.assert_allclose(stats.mean[:, 0], [1.5, 6.5])
    np.testing.assert_allclose(stats.variance[:, 0], [0.25, 12.25])  # population variance
    np.testing.assert_allclose(stats.std[:, 0], [0.5, 3.5])
    np.testing.assert_array_equal(stats.value_range[:, 0], [1, 7])


def test_union_and_grouped_add_the_sums():
    stats = gray_stats([1, 2], [3, 10], [7])
    pair = stats.take(np.array([0])).union(stats.take(np.array([1])))
    whole = gray_stats([1, 2, 3, 10])
    for got, want in zip(pair._arrays(), whole._arrays()):
        np.testing.assert_allclose(got, want)
    grouped = stats.grouped(np.array([1, 1, 0]), 2)  # regions 0 and 1 into group 1, region 2 alone
    np.testing.assert_array_equal(grouped.count, [1, 4])
    np.testing.assert_array_equal(grouped.minimum[:, 0], [7, 1])
    np.testing.assert_array_equal(grouped.maximum[:, 0], [7, 10])


def test_grouped_needs_every_group_non_empty():
    with pytest.raises(ValueError, match="none empty"):
        gray_stats([1], [2]).grouped(np.array([0, 2]), 3)


def test_flat_region_has_exactly_zero_deviation_and_its_own_value_as_mean():
    # 0.1 + 0.1 + 0.1 is not 0.3 in floating point; the predicates must still see a flat region.
    stats = gray_stats([0.1, 0.1, 0.1])
    assert stats.mean[0, 0] == 0.1
    assert stats.std[0, 0] == 0.0
    assert MaxStd(0).holds(stats)[0]
    assert MeanDistance(0).holds(stats)[0]
    assert MaxRange(0).holds(stats)[0]


def test_max_range_threshold_is_inclusive_and_per_channel():
    assert MaxRange(5).holds(gray_stats([10, 15], [10, 16])).tolist() == [True, False]
    # Colour: red range 4, green range 6 -> the largest channel decides.
    colour = RegionStats.of_labels(np.array([[0.0, 0.0], [4.0, 6.0]]), np.array([0, 0]), 1)
    assert MaxRange(6).holds(colour).tolist() == [True]
    assert MaxRange(5.9).holds(colour).tolist() == [False]


def test_max_std_is_the_largest_channel_deviation():
    colour = RegionStats.of_labels(np.array([[0.0, 0.0], [2.0, 6.0]]), np.array([0, 0]), 1)
    # Channel deviations are 1 and 3.
    assert MaxStd(3).holds(colour).tolist() == [True]
    assert MaxStd(2.99).holds(colour).tolist() == [False]


def test_mean_distance_accepts_by_euclidean_colour_distance():
    region = RegionStats.of_labels(np.zeros((2, 2)), np.array([0, 0]), 1)  # mean (0, 0)
    pixel = np.array([[3.0, 4.0]])  # distance 5
    assert MeanDistance(5).accepts(region, pixel).tolist() == [True]
    assert MeanDistance(4.99).accepts(region, pixel).tolist() == [False]


def test_mean_distance_holds_exactly_for_grayscale():
    stats = gray_stats([0, 10], [0, 0, 12])  # means 5 and 4; farthest pixels 5 and 8 away
    assert MeanDistance(5).holds(stats).tolist() == [True, False]
    assert MeanDistance(8).holds(stats).tolist() == [True, True]


def test_default_accepts_tests_the_region_plus_the_pixel():
    stats = gray_stats([10, 12])
    assert MaxRange(4).accepts(stats, np.array([[14.0]])).tolist() == [True]
    assert MaxRange(4).accepts(stats, np.array([[15.0]])).tolist() == [False]


def test_function_predicates():
    bright = as_predicate(lambda s: s.mean[:, 0] > 100)
    assert isinstance(bright, FunctionPredicate)
    assert bright(gray_stats([50], [150])).tolist() == [False, True]
    with pytest.raises(ValueError, match="one boolean per region"):
        FunctionPredicate(lambda s: np.array([True, False, True])).holds(gray_stats([1], [2]))


def test_make_predicate_by_name():
    assert make_predicate("max-range", 3) == MaxRange(3)
    assert make_predicate("mean_distance", 2) == MeanDistance(2)
    with pytest.raises(ValueError, match="unknown predicate"):
        make_predicate("max-mean", 1)


@pytest.mark.parametrize("threshold", [-1, float("nan"), float("inf"), "5", True])
def test_bad_thresholds_are_rejected(threshold):
    with pytest.raises(ValueError, match="threshold"):
        MaxRange(threshold)


def test_as_predicate_rejects_non_callables():
    with pytest.raises(ValueError, match="predicate must be"):
        as_predicate(3)
