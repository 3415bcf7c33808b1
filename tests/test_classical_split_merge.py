"""Split and merge on images whose right answer is known by construction, and the lecture's definition."""

import importlib

import numpy as np
import pytest

from cnnzoo.classical import MaxRange, MaxStd, MeanDistance, merge_adjacent_regions, quadtree_split, split_and_merge


def test_quadtree_splits_only_the_failing_blocks():
    image = np.zeros((4, 4))
    image[0, 0] = 1
    # The whole fails, so do its top-left quadrant; that quadrant splits into single pixels.
    expected = np.array([[0, 1, 2, 2], [3, 4, 2, 2], [5, 5, 6, 6], [5, 5, 6, 6]])
    np.testing.assert_array_equal(quadtree_split(image, MaxRange(0)), expected)
    np.testing.assert_array_equal(split_and_merge(image, MaxRange(0)), (image == 0) & (np.arange(16).reshape(4, 4) > 0))


def test_non_rectangular_region_is_merged_back_into_one():
    image = np.zeros((8, 8), dtype=np.uint8)
    image[2:5, 3:6] = 50
    np.testing.assert_array_equal(split_and_merge(image, MaxRange(0)), image == 50)


def test_image_that_is_not_a_power_of_two_square():
    image = np.zeros((5, 7))
    image[:, 3:] = 9
    np.testing.assert_array_equal(split_and_merge(image, MaxRange(0)), image == 9)


def test_ramp():
    ramp = np.arange(8, dtype=float)[None, :]
    # Range <= 3: the two 4-pixel halves hold and their union does not.
    np.testing.assert_array_equal(split_and_merge(ramp, MaxRange(3)), [[0, 0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(split_and_merge(ramp, MaxRange(7)), np.zeros((1, 8)))


def test_min_block_stops_the_split():
    rows, cols = np.mgrid[:8, :8]
    checkerboard = 100.0 * ((rows + cols) % 2)
    # 2x2 blocks are never split, and no union of two of them holds: 16 regions of 2x2.
    np.testing.assert_array_equal(split_and_merge(checkerboard, MaxRange(0), min_block=2), (rows // 2) * 4 + cols // 2)


def test_connectivity_decides_which_regions_are_adjacent():
    image = np.array([[0.0, 100.0], [100.0, 0.0]])
    np.testing.assert_array_equal(split_and_merge(image, MaxRange(0)), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(split_and_merge(image, MaxRange(0), connectivity=8), [[0, 1], [1, 0]])


def test_default_predicate_is_a_std_of_five_percent_of_the_range():
    halves = np.zeros((4, 4), dtype=np.uint8)
    halves[:, 2:] = 20  # standard deviation 10 <= 12.75: one region
    assert split_and_merge(halves).max() == 0
    halves[:, 2:] = 30  # standard deviation 15: two
    np.testing.assert_array_equal(split_and_merge(halves), halves == 30)
    # A float image outside [0, 1] has no nominal range: its own span stands in.
    floats = np.zeros((4, 4))
    floats[:, 2:] = 200.0
    floats[0, 0] = 18.0  # span 200, threshold 10: the left half (std 6.0) holds, the union (std 100) not
    np.testing.assert_array_equal(split_and_merge(floats), floats == 200.0)


def test_merge_stage_on_a_given_label_map():
    image = np.array([[0.0, 0.0, 5.0, 5.0, 100.0, 100.0]])
    labels = np.arange(6)[None, :]
    np.testing.assert_array_equal(merge_adjacent_regions(image, labels, MaxRange(10)), [[0, 0, 0, 0, 1, 1]])
    # Similar regions that do not touch stay apart.
    image = np.array([[0.0, 0.0, 100.0, 0.0, 0.0]])
    np.testing.assert_array_equal(
        merge_adjacent_regions(image, np.array([[0, 0, 1, 2, 2]]), MaxRange(10)), [[0, 0, 1, 2, 2]]
    )


def brute_force_adjacent_pairs(labels):
    pairs = set()
    height, width = labels.shape
    for r in range(height):
        for c in range(width):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < height and c + dc < width and labels[r, c] != labels[r + dr, c + dc]:
                    pairs.add(tuple(sorted((labels[r, c], labels[r + dr, c + dc]))))
    return pairs


@pytest.mark.parametrize(
    ("predicate", "homogeneous"),
    [
        (MaxRange(40), lambda px: np.ptp(px, axis=0).max() <= 40),
        (MaxStd(15), lambda px: px.std(axis=0).max() <= 15),
        (MeanDistance(20), lambda px: np.abs(px - px.mean(axis=0)).max() <= 20),  # exact for grayscale
    ],
)
def test_lecture_definition_each_region_holds_and_no_adjacent_union_does(predicate, homogeneous):
    # "Similarity predicate: satisfied by each region, not satisfied by the union of different regions."
    image = np.random.default_rng(0).integers(0, 101, size=(12, 12)).astype(float)
    labels = split_and_merge(image, predicate)
    pixels = {region: image[labels == region][:, None] for region in range(labels.max() + 1)}
    assert set(np.unique(labels)) == set(range(labels.max() + 1))
    assert all(homogeneous(px) for px in pixels.values())
    for a, b in brute_force_adjacent_pairs(labels):
        assert not homogeneous(np.concatenate([pixels[a], pixels[b]]))


def test_colour_image():
    image = np.zeros((6, 6, 3), dtype=np.uint8)
    image[:, 3:] = (0, 0, 200)  # differs in the blue channel only
    np.testing.assert_array_equal(split_and_merge(image, MaxStd(1)), image[..., 2] == 200)


@pytest.mark.parametrize("min_block", [0, 3, 2.0, True])
def test_bad_min_block(min_block):
    with pytest.raises(ValueError, match="power of two"):
        split_and_merge(np.zeros((4, 4)), min_block=min_block)


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        split_and_merge(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="connectivity"):
        split_and_merge(np.zeros((3, 3)), connectivity=5)
    with pytest.raises(ValueError, match="does not match"):
        merge_adjacent_regions(np.zeros((3, 3)), np.zeros((3, 4), dtype=int), MaxRange(1))
    with pytest.raises(ValueError, match="integers"):
        merge_adjacent_regions(np.zeros((3, 3)), np.zeros((3, 3)), MaxRange(1))


def test_large_region_takes_in_many_small_neighbours_in_one_round(monkeypatch):
    # A flat region and 20 separate outlier pixels of 40 (salt-and-pepper noise). With MaxStd(8)
    # the region can take in 10 of them: std 40 sqrt(p (1 - p)) <= 8 for p = m / (236 + m)
    # means m <= 10.28. They all pick the region, so they join it most similar first, ties by
    # label, in one round; taking one per round made noisy images cost thousands of rounds.
    module = importlib.import_module("cnnzoo.classical.split_merge")
    real_round = module._merge_round
    rounds = []

    def counted_round(*args):
        rounds.append(args)
        return real_round(*args)

    monkeypatch.setattr(module, "_merge_round", counted_round)

    image = np.zeros((16, 16))
    labels = np.zeros((16, 16), dtype=int)
    spots = [(r, c) for r in range(1, 16, 3) for c in range(1, 16, 4)][:20]  # no two touch
    for label, (r, c) in enumerate(spots, start=1):
        image[r, c] = 40.0
        labels[r, c] = label
    merged = merge_adjacent_regions(image, labels, MaxStd(8))
    assert len(rounds) == 1
    expected = np.zeros((16, 16), dtype=int)
    for number, (r, c) in enumerate(spots[10:], start=1):  # outliers 11..20 stay alone, in raster order
        expected[r, c] = number
    np.testing.assert_array_equal(merged, expected)


def test_running_sums_and_maxima_restart_with_each_run():
    from cnnzoo.classical.split_merge import _running_max, _running_sum

    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3)) * 1e6 + rng.normal(size=(40, 3)) * 1e-6  # digits an offset would lose
    run = np.sort(rng.integers(0, 7, size=40))
    run = np.unique(run, return_inverse=True)[1]  # 0, 0, 1, ...: no empty run
    expected_max = np.concatenate([np.maximum.accumulate(values[run == k], axis=0) for k in range(run.max() + 1)])
    expected_sum = np.concatenate([np.cumsum(values[run == k], axis=0) for k in range(run.max() + 1)])
    np.testing.assert_array_equal(_running_max(values, run), expected_max)
    np.testing.assert_allclose(_running_sum(values, run), expected_sum, rtol=0, atol=1e-6)
