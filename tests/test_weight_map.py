"""The U-Net weight map (Ronneberger et al. 2015, eq. 2) against hand-worked values and a
brute-force distance computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnzoo.data.weight_map import border_distances, class_balance_weights, unet_weight_map


def two_squares() -> np.ndarray:
    """8 x 12 map: cell 1 in rows 2-5, columns 1-3; cell 2 in rows 2-5, columns 6-8.
    Columns 4 and 5 are a 2-pixel background gap between them."""
    instances = np.zeros((8, 12), dtype=np.int64)
    instances[2:6, 1:4] = 1
    instances[2:6, 6:9] = 2
    return instances


def test_gap_pixel_matches_the_hand_computation():
    w = unet_weight_map(two_squares(), w0=10.0, sigma=5.0)
    # Class balance: 96 pixels, 24 in cells, 72 background. w_c[k] = 96 / (2 * count_k):
    # background 96 / 144 = 2/3, cells 96 / 48 = 2.
    w_background, w_cell = 2 / 3, 2.0
    # Pixel (3, 4), the gap column next to cell 1: cell 1's pixel (3, 3) is 1 away (d1 = 1),
    # cell 2's nearest pixel (3, 6) is 2 away (d2 = 2): border term 10 exp(-(1+2)^2 / 50).
    assert w[3, 4] == pytest.approx(w_background + 10 * math.exp(-9 / 50), rel=1e-6)
    # (3, 5) mirrors it: d1 = 1 (cell 2), d2 = 2 (cell 1).
    assert w[3, 5] == pytest.approx(w[3, 4], rel=1e-6)
    # Corner (0, 0): cell 1's nearest pixel is (2, 1), sqrt(4 + 1) away; cell 2's is (2, 6),
    # sqrt(4 + 36) away.
    d1, d2 = math.sqrt(5), math.sqrt(40)
    assert w[0, 0] == pytest.approx(w_background + 10 * math.exp(-((d1 + d2) ** 2) / 50), rel=1e-6)
    # Inside a cell there is no border term (it is given to background pixels only).
    assert w[3, 2] == pytest.approx(w_cell, rel=1e-6)
    assert w.dtype == np.float32 and w.shape == (8, 12)


def test_border_distances_hand_values():
    d1, d2 = border_distances(two_squares())
    assert (d1[3, 4], d2[3, 4]) == (1.0, 2.0)
    assert d1[3, 2] == 0.0 and d2[3, 2] == 4.0  # inside cell 1; cell 2 starts 4 columns right
    assert d1[0, 0] == pytest.approx(math.sqrt(5)) and d2[0, 0] == pytest.approx(math.sqrt(40))


def test_single_cell_gives_no_border_term():
    instances = np.zeros((10, 10), dtype=np.int64)
    instances[3:6, 3:6] = 7
    w = unet_weight_map(instances)
    # 9 cell pixels, 91 background: w_c = 100 / (2 * count).
    expected = np.where(instances > 0, 100 / 18, 100 / 182)
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_far_pixels_get_the_class_weight_only():
    instances = np.zeros((200, 200), dtype=np.int64)
    instances[2:5, 2:5] = 1
    instances[2:5, 7:10] = 2
    w = unet_weight_map(instances)
    background = 40000 / (2 * (40000 - 18))
    # (199, 199) is > 270 pixels from both cells: exp(-(540)^2 / 50) is 0 in float32.
    assert w[199, 199] == pytest.approx(background, rel=1e-7)
    assert w[100:, 100:].max() == pytest.approx(background, rel=1e-7)


def brute_force_weight_map(instances: np.ndarray, classes: np.ndarray, class_weights: np.ndarray,
                           w0: float, sigma: float) -> np.ndarray:
    """Eq. 2 by explicit loops: every background pixel's distance to every cell pixel."""
    ids = [i for i in np.unique(instances) if i != 0]
    points = {i: np.argwhere(instances == i) for i in ids}
    weight = class_weights[classes].astype(np.float64)
    for y, x in np.ndindex(instances.shape):
        if instances[y, x] != 0 or len(ids) < 2:
            continue
        distances = sorted(np.sqrt(((points[i] - (y, x)) ** 2).sum(axis=1)).min() for i in ids)
        weight[y, x] += w0 * math.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
    return weight


def test_matches_brute_force_on_many_cells():
    instances = np.zeros((22, 30), dtype=np.int64)
    # Rectangles (rows, columns) with 1- to 4-pixel gaps; ids need not be consecutive.
    cells = [((1, 5), (1, 5)), ((1, 5), (6, 10)), ((6, 10), (2, 7)), ((7, 12), (9, 13)),
             ((14, 18), (3, 9)), ((13, 17), (16, 21)), ((2, 6), (24, 29)), ((18, 21), (23, 28))]
    for number, ((top, bottom), (left, right)) in enumerate(cells, start=1):
        instances[top:bottom, left:right] = number * 11
    classes = (instances > 0).astype(np.int64)
    expected = brute_force_weight_map(instances, classes, class_balance_weights(classes), w0=10.0, sigma=3.0)
    assert (expected - class_balance_weights(classes)[classes]).max() > 1  # the border term is exercised
    np.testing.assert_allclose(unet_weight_map(instances, sigma=3.0), expected, rtol=1e-5, atol=1e-6)
    # Sparse huge ids give the same map as small ones.
    np.testing.assert_allclose(unet_weight_map(instances * 10**9, sigma=3.0), expected, rtol=1e-5, atol=1e-6)


def test_explicit_classes_and_class_weights():
    instances = two_squares()
    classes = np.zeros_like(instances)
    classes[instances == 1] = 1
    classes[instances == 2] = 2
    table = np.array([1.0, 3.0, 5.0])
    w = unet_weight_map(instances, classes, w0=0.0, class_weights=table)
    np.testing.assert_array_equal(w, table[classes].astype(np.float32))
    # Default class balance with three classes: 72 background, 12 + 12 cell pixels,
    # w_c[k] = 96 / (3 * count_k).
    w = unet_weight_map(instances, classes, w0=0.0)
    np.testing.assert_allclose(w[0, 0], 96 / (3 * 72), rtol=1e-6)
    np.testing.assert_allclose(w[3, 2], 96 / (3 * 12), rtol=1e-6)


def test_class_balance_weights_mean_is_one():
    classes = np.array([[0, 0, 0, 1], [0, 0, 2, 2]])
    weights = class_balance_weights(classes)
    np.testing.assert_allclose(weights, [8 / (3 * 5), 8 / 3, 8 / 6])
    assert weights[classes].mean() == pytest.approx(1.0)


def test_no_cells():
    w = unet_weight_map(np.zeros((4, 5), dtype=np.int32))
    np.testing.assert_array_equal(w, np.ones((4, 5), dtype=np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"instances": np.zeros((2, 3, 4), dtype=int)}, "2-D"),
        ({"instances": np.zeros((3, 4))}, "integer"),
        ({"instances": -np.ones((3, 4), dtype=int)}, "negative"),
        ({"instances": np.zeros((3, 4), dtype=int), "classes": np.zeros((3, 5), dtype=int)}, "shape"),
        ({"instances": np.zeros((3, 4), dtype=int), "classes": np.full((3, 4), 2), "class_weights": np.ones(2)},
         "class_weights has only 2"),
        ({"instances": np.zeros((3, 4), dtype=int), "sigma": 0.0}, "sigma"),
        ({"instances": np.zeros((3, 4), dtype=int), "w0": -1.0}, "w0"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        unet_weight_map(**kwargs)
