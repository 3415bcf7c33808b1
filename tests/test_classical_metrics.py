"""Segmentation scores and region-to-class matching against hand computations."""

import numpy as np
import pytest

from cnnzoo.classical import (
    UNASSIGNED,
    compare_methods,
    confusion_matrix,
    evaluate_method,
    format_table,
    hungarian_mapping,
    iou_per_class,
    majority_mapping,
    mean_iou,
    pixel_accuracy,
    region_class_overlap,
    regions_to_classes,
    score_regions,
    score_segmentation,
)
from cnnzoo.classical.metrics import true_class_totals

TRUTH = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])


def test_confusion_matrix_by_hand():
    # Rows are true classes: class 0 -> predicted 0 and 1; class 1 -> 1, 1; class 2 -> 2 and 0.
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    np.testing.assert_array_equal(confusion_matrix(TRUTH, PRED, 3), expected)


def test_true_class_totals_count_scored_pixels_per_class():
    np.testing.assert_array_equal(true_class_totals(TRUTH, 4), [2, 2, 2, 0])
    np.testing.assert_array_equal(true_class_totals(np.array([[0, 0, 5], [1, 5, 2]]), 3, ignore_index=5), [2, 1, 1])
    with pytest.raises(ValueError, match="truth holds label 3"):
        true_class_totals(np.array([0, 3]), 3)


def test_iou_and_accuracy_by_hand():
    scores = score_segmentation(TRUTH, PRED, 3)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    np.testing.assert_allclose(scores.iou, [1 / 3, 2 / 3, 1 / 2])
    assert scores.mean_iou == pytest.approx(0.5)
    assert scores.pixel_accuracy == pytest.approx(4 / 6)


def test_mean_iou_skips_classes_absent_from_truth_and_prediction():
    scores = score_segmentation(TRUTH, PRED, 4)
    assert np.isnan(scores.iou[3])
    assert scores.mean_iou == pytest.approx(0.5)
    # A class that is only predicted has IoU 0 and does count.
    scores = score_segmentation(np.array([0, 0]), np.array([0, 1]), 2)
    np.testing.assert_allclose(scores.iou, [0.5, 0.0])
    assert scores.mean_iou == pytest.approx(0.25)


def test_ignore_index_pixels_are_not_scored():
    truth = np.array([0, 255, 1, 255])
    prediction = np.array([0, 1, 1, 0])
    scores = score_segmentation(truth, prediction, 2, ignore_index=255)
    np.testing.assert_array_equal(scores.confusion, [[1, 0], [0, 1]])
    assert scores.pixel_accuracy == 1.0 and scores.mean_iou == 1.0


def test_unassigned_pixels_are_wrong_and_count_as_false_negatives():
    scores = score_segmentation(np.array([0, 0, 1, 1]), np.array([0, UNASSIGNED, 1, 1]), 2)
    np.testing.assert_array_equal(scores.confusion, [[1, 0], [0, 2]])
    np.testing.assert_allclose(scores.iou, [1 / 2, 1.0])  # class 0: TP 1, FN 1
    assert scores.pixel_accuracy == pytest.approx(3 / 4)


def test_functions_on_a_plain_confusion_matrix():
    confusion = np.array([[3, 1], [0, 4]])
    np.testing.assert_allclose(iou_per_class(confusion), [3 / 4, 4 / 5])
    assert mean_iou(iou_per_class(confusion)) == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert pixel_accuracy(confusion) == pytest.approx(7 / 8)
    assert np.isnan(mean_iou(np.array([np.nan])))


def test_scores_pool_over_images():
    a = score_segmentation(np.array([0, 1]), np.array([0, 0]), 2)
    b = score_segmentation(np.array([1, 1]), np.array([1, 1]), 2)
    pooled = a + b
    np.testing.assert_array_equal(pooled.confusion, [[1, 0], [1, 2]])
    assert pooled.pixel_accuracy == pytest.approx(3 / 4)
    np.testing.assert_allclose(pooled.iou, [1 / 2, 2 / 3])


@pytest.mark.parametrize(
    ("truth", "prediction", "message"),
    [
        (np.array([0, 3]), np.array([0, 0]), "truth holds label 3"),
        (np.array([0, 1]), np.array([0, 5]), "prediction holds label 5"),
        (np.array([0, 1]), np.array([0, 1, 1]), "shape"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer"),
    ],
)
def test_bad_label_maps(truth, prediction, message):
    with pytest.raises(ValueError, match=message):
        score_segmentation(truth, prediction, 3)


# Matching regions to classes -------------------------------------------------------------

REGIONS = np.array([[0, 0, 1, 1], [2, 2, 2, 3]])
CLASSES = np.array([[0, 0, 0, 1], [1, 1, 0, 1]])


def test_region_class_overlap_by_hand():
    np.testing.assert_array_equal(region_class_overlap(REGIONS, CLASSES, 2), [[2, 0], [1, 1], [1, 2], [0, 1]])


def test_majority_mapping_ties_go_to_the_lower_class():
    np.testing.assert_array_equal(majority_mapping(region_class_overlap(REGIONS, CLASSES, 2)), [0, 0, 1, 1])


def test_hungarian_matching_differs_from_majority():
    overlap = np.array([[5, 4], [6, 0], [0, 1]])
    np.testing.assert_array_equal(majority_mapping(overlap), [0, 0, 1])
    # One-to-one: region 0 -> class 1 and region 1 -> class 0 share 4 + 6 = 10 pixels, more
    # than any other assignment; region 2 is left without a class.
    np.testing.assert_array_equal(hungarian_mapping(overlap), [1, 0, UNASSIGNED])


def test_hungarian_leaves_a_zero_overlap_match_unassigned():
    np.testing.assert_array_equal(hungarian_mapping(np.array([[3, 0], [0, 0]])), [0, UNASSIGNED])


def test_region_without_scored_pixels_is_unassigned():
    regions = np.array([0, 0, 1])
    truth = np.array([1, 1, 255])
    np.testing.assert_array_equal(regions_to_classes(regions, truth, 2, ignore_index=255), [1, 1, UNASSIGNED])


def test_score_regions_by_hand():
    # Majority: class map [[0,0,0,0],[1,1,1,1]]: 6 of 8 right.
    majority = score_regions(REGIONS, CLASSES, 2, "majority")
    assert majority.pixel_accuracy == pytest.approx(6 / 8)
    # Hungarian on overlap [[2,0],[1,1],[1,2],[0,1]]: region 0 -> 0 and region 2 -> 1 (4 pixels);
    # regions 1 and 3 unassigned. Class 0 (4 pixels): TP 2, FP 0, FN 2 -> 1/2;
    # class 1 (4 pixels): TP 2, FP 1 (region 2's class-0 pixel), FN 2 -> 2/5.
    hungarian = score_regions(REGIONS, CLASSES, 2, "hungarian")
    assert hungarian.pixel_accuracy == pytest.approx(4 / 8)
    np.testing.assert_allclose(hungarian.iou, [1 / 2, 2 / 5])
    with pytest.raises(ValueError, match="unknown matching"):
        score_regions(REGIONS, CLASSES, 2, "greedy")


# Evaluating methods over (image, mask) pairs ------------------------------------------------


def halves_pair(width=8, value=200):
    image = np.zeros((6, width), dtype=np.uint8)
    image[:, width // 2 :] = value
    return image, (image > 0).astype(np.int64)


def test_evaluate_method_pools_the_images():
    pairs = [halves_pair(8), halves_pair(12)]
    result = evaluate_method("split-merge", iter(pairs), num_classes=2)
    assert result.method == "split_and_merge" and result.num_images == 2
    assert result.scores.pixel_accuracy == 1.0 and result.scores.mean_iou == 1.0
    np.testing.assert_array_equal(result.scores.confusion, [[60, 0], [0, 60]])  # 24 + 36 per class
    assert result.mean_regions == 2.0


def test_evaluate_method_scores_over_segmentation_with_hungarian():
    # Three flat stripes against two classes: the third stripe's region finds no class left.
    image = np.repeat(np.array([[0, 0, 100, 100, 200, 200]], dtype=np.uint8), 2, axis=0)
    mask = (image > 0).astype(np.int64)
    result = evaluate_method("region_growing", [(image, mask)], 2, matching="hungarian", threshold=10)
    assert result.scores.pixel_accuracy == pytest.approx(8 / 12)
    np.testing.assert_allclose(result.scores.iou, [1.0, 1 / 2])
    majority = evaluate_method("region_growing", [(image, mask)], 2, matching="majority", threshold=10)
    assert majority.scores.pixel_accuracy == 1.0


def test_compare_methods_and_table():
    pairs = (halves_pair() for _ in range(2))  # a generator: compare_methods must keep it
    results = compare_methods(pairs, num_classes=2)
    assert [r.method for r in results] == ["region_growing", "kmeans", "split_and_merge"]
    assert all(r.num_images == 2 for r in results)
    table = format_table(results)
    assert table.splitlines()[0].startswith("| method |")
    assert "| split and merge | majority | 2 | 1.000 | 1.000 |" in table


def test_evaluate_method_errors():
    image, mask = halves_pair()
    with pytest.raises(ValueError, match="no .image, mask. pairs"):
        evaluate_method("kmeans", [], 2, k=2)
    with pytest.raises(ValueError, match="mask shape"):
        evaluate_method("kmeans", [(image, mask[:, :3])], 2, k=2)
    with pytest.raises(ValueError, match="unknown segmentation method"):
        evaluate_method("watershed", [(image, mask)], 2)
    with pytest.raises(ValueError, match="has no option"):
        evaluate_method("kmeans", [(image, mask)], 2, k=2, threshold=3)
    with pytest.raises(ValueError, match="needs k"):
        evaluate_method("kmeans", [(image, mask)], 2)
