"""k-means clustering segmentation on images whose right answer is known by construction."""

import numpy as np
import pytest

from cnnzoo.classical import MaxRange, kmeans_clusters, kmeans_segmentation, pixel_features

RED, BLUE, GREEN = (200, 30, 30), (20, 40, 200), (20, 200, 40)


def stripes(widths, colours, height=10):
    """An image of vertical flat stripes, and the stripe index of every column."""
    image = np.concatenate([np.full((height, w, 3), c, dtype=np.uint8) for w, c in zip(widths, colours)], axis=1)
    index = np.repeat(np.arange(len(widths)), widths)[None, :].repeat(height, axis=0)
    return image, index


def test_flat_stripes_by_colour_alone():
    image, index = stripes([5, 16, 9], [RED, BLUE, GREEN])
    np.testing.assert_array_equal(kmeans_segmentation(image, 3, window=1, texture=None), index)


def test_a_cluster_is_cut_into_its_connected_pieces():
    image, index = stripes([4, 4, 4], [RED, BLUE, RED])
    np.testing.assert_array_equal(kmeans_clusters(image, 2, window=1, texture=None), index % 2)
    np.testing.assert_array_equal(kmeans_segmentation(image, 2, window=1, texture=None), index)


def test_default_features_label_the_interior_of_flat_regions_exactly():
    # Near a boundary the window mixes both colours and either answer is defensible; a pixel
    # whose 7x7 window lies inside one region has exactly that region's features.
    image, index = stripes([12, 20], [RED, BLUE], height=16)
    labels = kmeans_segmentation(image, 2)
    interior = np.abs(np.arange(32) - 11.5)[None, :].repeat(16, axis=0) > 3
    np.testing.assert_array_equal(labels[interior], index[interior])


def test_texture_pair_with_the_same_mean_and_different_variance():
    # Two checkerboards around 128: amplitude 5 on the left, 50 on the right. Their local
    # means are equal; only the local deviation (and texture) tells them apart.
    rows, cols = np.mgrid[:32, :32]
    sign = np.where((rows + cols) % 2 == 0, 1, -1)
    image = (128 + np.where(cols < 16, 5, 50) * sign).astype(np.uint8)
    interior = np.abs(cols - 15.5) > 3.5  # 7x7 window wholly inside one half
    for texture in ("lbp", "oriented", None):
        labels = kmeans_segmentation(image, 2, texture=texture)
        left, right = np.unique(labels[interior & (cols < 16)]), np.unique(labels[interior & (cols >= 16)])
        assert len(left) == 1 and len(right) == 1 and left[0] != right[0], texture


def test_ramp_is_cut_in_the_middle():
    # The best 2-means split of 16 evenly spaced values is into the lower and upper 8.
    ramp = np.tile(np.arange(16, dtype=float), (4, 1))
    np.testing.assert_array_equal(kmeans_clusters(ramp, 2, window=1, texture=None), np.tile(np.arange(16) >= 8, (4, 1)))


def test_position_separates_identical_pixels():
    flat = np.zeros((1, 2))
    np.testing.assert_array_equal(kmeans_clusters(flat, 2, texture=None), [[0, 0]])
    np.testing.assert_array_equal(kmeans_clusters(flat, 2, texture=None, use_position=True), [[0, 1]])


def test_fewer_distinct_pixels_than_k_gives_fewer_clusters():
    np.testing.assert_array_equal(kmeans_clusters(np.full((5, 5), 7, dtype=np.uint8), 3), np.zeros((5, 5)))


def test_predicate_merges_adjacent_regions():
    image = np.zeros((4, 6))
    image[:, 3:] = 10
    assert kmeans_segmentation(image, 2, window=1, texture=None).max() == 1
    assert kmeans_segmentation(image, 2, window=1, texture=None, predicate=MaxRange(20)).max() == 0


def test_feature_layout():
    image = np.zeros((6, 5, 3), dtype=np.uint8)
    # colour mean (3) + colour deviation (3) + 10 uniform LBP codes (+ 2 positions)
    assert pixel_features(image).shape == (30, 16)
    assert pixel_features(image, texture="oriented").shape == (30, 10)
    assert pixel_features(image, texture=None, use_position=True).shape == (30, 8)


def test_same_random_state_same_answer():
    image = np.random.default_rng(1).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    first, again = kmeans_segmentation(image, 4, random_state=3), kmeans_segmentation(image, 4, random_state=3)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
    ("image", "options", "message"),
    [
        (np.zeros((0, 0)), {"k": 2}, "empty"),
        (np.zeros((2, 3)), {"k": 7}, r"k=7 is larger than the number of pixels \(6\)"),
        (np.zeros((2, 3)), {"k": 0}, "positive integer"),
        (np.zeros((2, 3)), {"k": 2, "window": 4}, "odd"),
        (np.zeros((2, 3)), {"k": 2, "texture": "gabor"}, "texture"),
        (np.zeros((2, 3)), {"k": 2, "texture_weight": -1}, "texture_weight"),
        (np.zeros((2, 3)), {"k": 2, "connectivity": 5}, "connectivity"),
        (np.zeros((2, 3)), {"k": 2, "random_state": -1}, "random_state"),
        (np.zeros((2, 3)), {"k": 2, "random_state": 2**32}, "random_state"),
    ],
)
def test_bad_input(image, options, message):
    with pytest.raises(ValueError, match=message):
        kmeans_segmentation(image, **options)
