"""Region growing on images whose right answer is known by construction."""

import importlib

import numpy as np
import pytest
from scipy import ndimage

from cnnzoo.classical import MaxRange, region_growing


def two_halves(height=6, width=8, left=50, right=150):
    image = np.full((height, width), left, dtype=np.uint8)
    image[:, width // 2 :] = right
    return image


def test_flat_halves_from_given_seeds():
    image = two_halves()
    cols = np.arange(8)[None, :].repeat(6, axis=0)
    np.testing.assert_array_equal(region_growing(image, seeds=[(0, 0), (5, 7)]), cols >= 4)
    # Region i is the one grown from seeds[i].
    np.testing.assert_array_equal(region_growing(image, seeds=[(5, 7), (0, 0)]), cols < 4)


def test_automatic_seeds_number_regions_in_raster_order_and_respect_connectivity():
    image = np.zeros((6, 6))
    image[:3, :3] = 200  # top-left block
    image[3:, 3:] = 100  # bottom-right block
    # The two zero blocks touch only at a corner: two regions with 4-connectivity, one with 8.
    expected_4 = np.array([[0] * 3 + [1] * 3] * 3 + [[2] * 3 + [3] * 3] * 3)
    expected_8 = np.array([[0] * 3 + [1] * 3] * 3 + [[1] * 3 + [2] * 3] * 3)
    np.testing.assert_array_equal(region_growing(image, threshold=10), expected_4)
    np.testing.assert_array_equal(region_growing(image, threshold=10, connectivity=8), expected_8)


def test_ramp_splits_into_runs_of_twice_the_threshold():
    # Growing along a ramp 0, 1, 2, ...: the region {0..k} has mean k/2, and pixel k+1 joins
    # while k+1 - k/2 <= t, i.e. up to k = 2t - 2; so every region is 2t pixels long.
    ramp = np.arange(40, dtype=float)[None, :]
    np.testing.assert_array_equal(region_growing(ramp, threshold=5)[0], np.arange(40) // 10)
    np.testing.assert_array_equal(region_growing(ramp.T, threshold=5)[:, 0], np.arange(40) // 10)


def test_user_predicate_on_a_ramp():
    # A range of at most 4 holds 5 consecutive values.
    ramp = np.arange(20, dtype=np.uint8)[None, :]
    np.testing.assert_array_equal(region_growing(ramp, predicate=MaxRange(4))[0], np.arange(20) // 5)


def test_contested_pixel_joins_the_nearest_region():
    image = np.array([[0.0, 40.0, 100.0]])
    np.testing.assert_array_equal(region_growing(image, seeds=[(0, 0), (0, 2)], threshold=60), [[0, 0, 1]])


def test_tie_goes_to_the_lower_region():
    image = np.array([[0.0, 50.0, 100.0]])
    # Region 0 grows from column 2 here; the middle pixel is 50 from both means.
    np.testing.assert_array_equal(region_growing(image, seeds=[(0, 2), (0, 0)], threshold=60), [[1, 0, 0]])


def test_outlier_pixel_becomes_its_own_region():
    image = np.full((5, 5), 100, dtype=np.uint8)
    image[2, 2] = 200
    expected = np.zeros((5, 5), dtype=int)
    expected[2, 2] = 1
    np.testing.assert_array_equal(region_growing(image, threshold=20), expected)


def test_colour_distance_is_euclidean():
    image = np.array([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]])  # the pixels are 5 apart
    assert region_growing(image, threshold=5).max() == 0
    assert region_growing(image, threshold=4.99).max() == 1


def test_default_threshold_is_a_tenth_of_the_dtype_range():
    assert region_growing(np.array([[0, 25]], dtype=np.uint8)).max() == 0  # 25 <= 25.5
    assert region_growing(np.array([[0, 26]], dtype=np.uint8)).max() == 1
    assert region_growing(np.array([[0.0, 0.1]])).max() == 0
    assert region_growing(np.array([[0.0, 0.11]])).max() == 1


def test_default_threshold_of_a_float_image_outside_0_1_is_a_tenth_of_its_span():
    # A float TIFF holding 0-255 values: 10% of 0..1 would make every pixel a region.
    image = np.array([[0.0, 25.0, 250.0]])  # span 250: threshold 25
    np.testing.assert_array_equal(region_growing(image), [[0, 0, 1]])
    np.testing.assert_array_equal(region_growing(image - 100), [[0, 0, 1]])  # negative values too
    np.testing.assert_array_equal(region_growing(np.array([[0.0, 26.0, 250.0]])), [[0, 1, 2]])


def test_regions_cover_the_image_do_not_overlap_and_are_connected():
    image = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    labels = region_growing(image, seeds=[(3, 4), (10, 20)], threshold=80)
    assert labels.shape == (20, 30) and labels.dtype == np.int64
    # One label per pixel by construction of a label map; the labels are exactly 0..R-1.
    assert set(np.unique(labels)) == set(range(labels.max() + 1))
    for region in range(labels.max() + 1):
        assert ndimage.label(labels == region)[1] == 1


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([(10, 0)], r"seed \(10, 0\) lies outside the 5x5 image"),
        ([(0, -1)], r"seed \(0, -1\) lies outside"),
        ([(1, 1), (1, 1)], r"seed \(1, 1\) is given more than once"),
        ([(1, 2, 3)], "pairs"),
        ([(1.5, 2)], "whole numbers"),
    ],
)
def test_bad_seeds(seeds, message):
    with pytest.raises(ValueError, match=message):
        region_growing(np.zeros((5, 5)), seeds=seeds)


def test_integral_float_seeds_are_accepted():
    np.testing.assert_array_equal(region_growing(two_halves(), seeds=[(0.0, 7.0)])[0], [1] * 4 + [0] * 4)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5)), "empty"),
        (np.zeros((2, 2, 2, 2)), "HxW"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([["a", "b"]]), "dtype"),
    ],
)
def test_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        region_growing(image)


def test_bad_options():
    with pytest.raises(ValueError, match="connectivity"):
        region_growing(np.zeros((3, 3)), connectivity=6)
    with pytest.raises(ValueError, match="not both"):
        region_growing(np.zeros((3, 3)), threshold=3, predicate=MaxRange(3))


@pytest.mark.parametrize("predicate", [None, MaxRange(60)], ids=["mean-distance", "max-range"])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_python_and_array_steps_give_the_same_regions(monkeypatch, predicate, connectivity):
    # Small frontiers are grown in plain Python, large ones on arrays; both implement the same
    # step. Integer pixel values keep every sum exact, so the two must agree pixel for pixel.
    # The package's `region_growing` attribute is the function; the module is in sys.modules.
    module = importlib.import_module("cnnzoo.classical.region_growing")

    rng = np.random.default_rng(5)
    blocks = np.kron(rng.integers(0, 200, size=(6, 8, 3)), np.ones((5, 5, 1)))
    image = np.clip(blocks + rng.integers(-20, 21, size=blocks.shape), 0, 255).astype(np.uint8)
    options = {"threshold": 35} if predicate is None else {"predicate": predicate}
    seeds = [(0, 0), (29, 39), (12, 17)]
    results = []
    for smallest_array_frontier in (1, 10**9):  # always arrays, then always Python
        monkeypatch.setattr(module, "ARRAY_STEP_MIN_FRONTIER", smallest_array_frontier)
        results.append([region_growing(image, s, connectivity=connectivity, **options) for s in (None, seeds)])
    for on_arrays, in_python in zip(*results):
        assert on_arrays.max() > 5  # a meaningful comparison: many regions
        np.testing.assert_array_equal(on_arrays, in_python)
