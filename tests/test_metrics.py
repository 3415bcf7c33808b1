"""Metrics against hand computations, against cnnzoo.classical.metrics, and under
torch.distributed (two gloo processes must agree with one process on all the data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cnnzoo.classical.metrics import score_segmentation
from cnnzoo.engine.metrics import (
    MAIN_METRIC,
    ClassificationMetrics,
    SegmentationMetrics,
    build_metrics,
    dice_per_class,
    is_improvement,
    psnr_from_mse,
)


def as_logits(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits whose argmax is ``labels`` (N x H x W -> N x K x H x W)."""
    return F.one_hot(labels, num_classes).movedim(-1, 1).float() * 3 - 1


def test_segmentation_hand_example():
    truth = torch.tensor([[[0, 0, 1], [2, 1, 255]]])
    prediction = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    # Scored pixels (the 255 is not): confusion rows = truth, columns = prediction
    #   truth 0: predicted 0, 1      -> [1, 1, 0]
    #   truth 1: predicted 1, 2      -> [0, 1, 1]
    #   truth 2: predicted 2         -> [0, 0, 1]
    # TP = (1, 1, 1); FP = column sums - TP = (0, 1, 1); FN = row sums - TP = (1, 1, 0).
    # IoU = TP / (TP + FP + FN) = (1/2, 1/3, 1/2), mean 4/9; pixel accuracy 3/5.
    # Dice = 2TP / (2TP + FP + FN) = (2/3, 1/2, 2/3), mean 11/18.
    metrics = build_metrics("segmentation", 3, ignore_index=255)
    metrics.update(as_logits(prediction, 3), truth)
    scores = metrics.compute()
    assert scores["confusion"].tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert scores["confusion"].dtype == torch.int64
    assert scores["iou_per_class"] == pytest.approx([1 / 2, 1 / 3, 1 / 2])
    assert scores["miou"] == pytest.approx(4 / 9)
    assert scores["pixel_acc"] == pytest.approx(3 / 5)
    assert scores["dice_per_class"] == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert scores["dice"] == pytest.approx(11 / 18)


def test_absent_class_is_nan_and_left_out_of_the_means():
    truth = torch.tensor([[[0, 0, 1], [2, 1, 255]]])
    prediction = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    metrics = SegmentationMetrics(4, ignore_index=255)  # class 3 in neither truth nor prediction
    metrics.update(as_logits(prediction, 4), truth)
    scores = metrics.compute()
    assert math.isnan(scores["iou_per_class"][3]) and math.isnan(scores["dice_per_class"][3])
    assert scores["miou"] == pytest.approx(4 / 9)
    assert scores["dice"] == pytest.approx(11 / 18)


def test_segmentation_agrees_with_classical_metrics_on_random_maps():
    generator = torch.Generator().manual_seed(0)
    metrics = SegmentationMetrics(5, ignore_index=255)
    truths, predictions = [], []
    for _ in range(3):  # several batches accumulate into one confusion matrix
        logits = torch.randn(2, 5, 9, 11, generator=generator)
        truth = torch.randint(0, 5, (2, 9, 11), generator=generator)
        truth[torch.rand(2, 9, 11, generator=generator) < 0.1] = 255
        metrics.update(logits, truth)
        truths.append(truth.numpy())
        predictions.append(logits.argmax(1).numpy())
    expected = score_segmentation(np.concatenate(truths), np.concatenate(predictions), 5, ignore_index=255)
    scores = metrics.compute()
    np.testing.assert_array_equal(scores["confusion"].numpy(), expected.confusion)
    np.testing.assert_allclose(scores["iou_per_class"], expected.iou)
    assert scores["miou"] == pytest.approx(expected.mean_iou)
    assert scores["pixel_acc"] == pytest.approx(expected.pixel_accuracy)
    # Dice and IoU of one class are tied by dice = 2 IoU / (1 + IoU).
    np.testing.assert_allclose(scores["dice_per_class"], 2 * expected.iou / (1 + expected.iou))


def test_integer_predictions_equal_logits():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    truth = torch.randint(0, 3, (2, 4, 4), generator=generator)
    from_logits, from_labels = SegmentationMetrics(3), SegmentationMetrics(3)
    from_logits.update(logits, truth)
    from_labels.update(logits.argmax(1), truth)
    assert torch.equal(from_logits.compute()["confusion"], from_labels.compute()["confusion"])


def test_reset_starts_over():
    metrics = SegmentationMetrics(2)
    metrics.update(as_logits(torch.tensor([[[0, 1]]]), 2), torch.tensor([[[1, 1]]]))
    metrics.reset()
    metrics.update(as_logits(torch.tensor([[[1, 1]]]), 2), torch.tensor([[[1, 1]]]))
    assert metrics.compute()["confusion"].tolist() == [[0, 0], [0, 2]]


def test_dice_per_class_formula():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    # class 0: TP 5, FP 2, FN 1 -> 10 / 13; class 1: TP 3, FP 1, FN 2 -> 6 / 9; class 2: undefined.
    dice = dice_per_class(confusion)
    np.testing.assert_allclose(dice[:2], [10 / 13, 6 / 9])
    assert np.isnan(dice[2])


def classification_example():
    """7 classes, 4 samples. Logits rank the classes; targets sit at known ranks:

    sample 0: target 3 is the top score                     -> top-1 and top-5 hit
    sample 1: target 5 has the 3rd highest score            -> top-5 hit only
    sample 2: target 0 has the lowest (7th) score           -> miss
    sample 3: target 255 (ignored)
    """
    logits = torch.tensor([
        [0.0, 1.0, 2.0, 9.0, 3.0, 4.0, 5.0],
        [6.0, 5.0, 0.0, 1.0, 2.0, 4.0, 3.0],
        [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ])
    target = torch.tensor([3, 5, 0, 255])
    return logits, target


def test_classification_hand_example():
    metrics = build_metrics("classification", 7, ignore_index=255)
    metrics.update(*classification_example())
    scores = metrics.compute()
    assert scores["acc1"] == pytest.approx(1 / 3)
    assert scores["acc5"] == pytest.approx(2 / 3)
    confusion = scores["confusion"]
    assert confusion.shape == (7, 7) and confusion.sum() == 3
    # Predictions: sample 0 -> 3, sample 1 -> 0, sample 2 -> 6.
    assert confusion[3, 3] == 1 and confusion[5, 0] == 1 and confusion[0, 6] == 1


def test_no_top5_with_five_classes_or_fewer():
    metrics = ClassificationMetrics(5)
    metrics.update(torch.eye(5), torch.arange(5))
    scores = metrics.compute()
    assert "acc5" not in scores and scores["acc1"] == 1.0


def test_main_metric_names_exist():
    assert MAIN_METRIC == {"classification": "acc1", "segmentation": "miou", "reconstruction": "psnr"}
    for task, name in MAIN_METRIC.items():
        metrics = build_metrics(task, 6)
        shape = (2, 6) if task == "classification" else (2, 6, 3, 3)
        target = torch.rand(shape) if task == "reconstruction" else torch.zeros(shape[:1] + shape[2:], dtype=torch.long)
        metrics.update(torch.randn(shape), target)
        assert name in metrics.compute()


def test_bad_inputs_raise_value_error():
    metrics = SegmentationMetrics(3, ignore_index=255)
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\).*\(1, 5, 5\)"):
        metrics.update(torch.randn(1, 3, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"label 3.*0\.\.2"):
        metrics.update(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 1], [3, 255]]]))
    with pytest.raises(ValueError, match="N x 3"):
        metrics.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="prediction holds label 7"):
        metrics.update(torch.full((1, 2, 2), 7), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown task"):
        build_metrics("detection", 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_metrics("segmentation", 0)


# --- torch.distributed -------------------------------------------------------------------


def _shards():
    generator = torch.Generator().manual_seed(5)
    seg_logits = torch.randn(5, 4, 6, 7, generator=generator)
    seg_target = torch.randint(0, 4, (5, 6, 7), generator=generator)
    seg_target[0, :2] = 255
    cls_logits = torch.randn(13, 8, generator=generator)
    cls_target = torch.randint(0, 8, (13,), generator=generator)
    # Uneven shards: rank 0 gets 2 images / 5 samples, rank 1 the rest.
    return {
        "all": (seg_logits, seg_target, cls_logits, cls_target),
        0: (seg_logits[:2], seg_target[:2], cls_logits[:5], cls_target[:5]),
        1: (seg_logits[2:], seg_target[2:], cls_logits[5:], cls_target[5:]),
    }


def _scores(seg_logits, seg_target, cls_logits, cls_target) -> dict:
    seg = build_metrics("segmentation", 4, ignore_index=255)
    seg.update(seg_logits, seg_target)
    cls = build_metrics("classification", 8)
    cls.update(cls_logits, cls_target)
    return {"segmentation": seg.compute(), "classification": cls.compute()}


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.save(_scores(*_shards()[rank]), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_results_equal_single_process(tmp_path):
    # fork, like DataLoader workers: the children need not import torch and torchmetrics again
    # (seconds each on a loaded machine); each sets one thread first thing.
    mp.start_processes(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                       join=True, start_method="fork")
    expected = _scores(*_shards()["all"])
    for rank in range(2):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        for task in ("segmentation", "classification"):
            for name, value in expected[task].items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(synced[task][name], value), (rank, task, name)
                else:
                    np.testing.assert_allclose(synced[task][name], value, err_msg=f"{rank} {task} {name}")
    # The shards alone score differently, so agreement above is the reduction's doing.
    alone = _scores(*_shards()[0])
    assert not torch.equal(alone["segmentation"]["confusion"], expected["segmentation"]["confusion"])


@pytest.mark.parametrize("value, best, expected", [
    (0.5, None, True), (0.5, 0.4, True), (0.4, 0.5, False), (0.5, 0.5, False),
    (0.1, float("nan"), True), (float("nan"), None, True), (float("nan"), 0.2, False), (None, 0.2, False),
])
def test_an_improvement_beats_the_best_so_far(value, best, expected):
    assert is_improvement(value, best) is expected


def test_psnr_is_ten_log10_of_one_over_the_mse():
    assert psnr_from_mse(0.01) == pytest.approx(20.0) and psnr_from_mse(1e-4) == pytest.approx(40.0)
    assert psnr_from_mse(0.0) == float("inf")
