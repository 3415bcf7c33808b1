"""Losses against hand computations and explicit loops; errors for bad targets and shapes."""

from __future__ import annotations

import math

import pytest
import torch

from cnnzoo.data import weight_map
from cnnzoo.engine import losses
from cnnzoo.engine.losses import LOSSES, DiceCE, SoftDiceLoss, WeightedCrossEntropy, build_loss


def log_softmax_by_hand(scores: list[float]) -> list[float]:
    top = max(scores)
    log_total = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - log_total for s in scores]


def pixel_terms(logits: torch.Tensor, target: torch.Tensor, ignore: int | None, smoothing: float = 0.0):
    """(cross-entropy, n, y, x) of every scored pixel, each by an explicit log-softmax."""
    terms = []
    n_images, n_classes, height, width = logits.shape
    for n in range(n_images):
        for y in range(height):
            for x in range(width):
                label = int(target[n, y, x])
                if label == ignore:
                    continue
                log_p = log_softmax_by_hand([float(logits[n, k, y, x]) for k in range(n_classes)])
                ce = -(1 - smoothing) * log_p[label] - smoothing * sum(log_p) / n_classes
                terms.append((ce, n, y, x))
    return terms


def random_batch(seed: int = 0, ignore: int | None = 255):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 3, 4, generator=generator, dtype=torch.float64) * 2
    target = torch.randint(0, 3, (2, 3, 4), generator=generator)
    if ignore is not None:
        target[0, 0, :2] = ignore
        target[1, 2, 3] = ignore
    weight = torch.rand(2, 3, 4, generator=generator, dtype=torch.float64) * 5
    return logits, target, weight


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_weighted_cross_entropy_matches_explicit_loops(smoothing):
    logits, target, weight = random_batch()
    terms = pixel_terms(logits, target, ignore=255, smoothing=smoothing)
    # Normalization: sum_x w(x) ce(x) / sum_x w(x) over the scored pixels.
    numerator = sum(float(weight[n, y, x]) * ce for ce, n, y, x in terms)
    denominator = sum(float(weight[n, y, x]) for _, n, y, x in terms)
    loss = build_loss("weighted-ce", task="segmentation", num_classes=3, ignore_index=255, label_smoothing=smoothing)
    assert float(loss(logits, target, weight)) == pytest.approx(numerator / denominator, rel=1e-10)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_segmentation_cross_entropy_is_the_mean_over_scored_pixels(smoothing):
    logits, target, weight = random_batch()
    terms = pixel_terms(logits, target, ignore=255, smoothing=smoothing)
    loss = build_loss("ce", task="segmentation", num_classes=3, ignore_index=255, label_smoothing=smoothing)
    expected = sum(ce for ce, *_ in terms) / len(terms)
    assert float(loss(logits, target)) == pytest.approx(expected, rel=1e-10)
    assert float(loss(logits, target, weight)) == pytest.approx(expected, rel=1e-10)  # "ce" ignores the map
    # A constant weight map turns the weighted loss into plain cross-entropy.
    weighted = WeightedCrossEntropy(3, ignore_index=255, label_smoothing=smoothing)
    assert float(weighted(logits, target, torch.full_like(weight, 7.0))) == pytest.approx(expected, rel=1e-10)


def test_classification_cross_entropy_with_label_smoothing():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    loss = build_loss("ce", task="classification", num_classes=3, label_smoothing=0.1)
    expected = 0.0
    for row, label in zip(logits.tolist(), target.tolist()):
        log_p = log_softmax_by_hand(row)
        expected += -0.9 * log_p[label] - 0.1 * sum(log_p) / 3
    assert float(loss(logits, target)) == pytest.approx(expected / 2, rel=1e-10)


def dice_example():
    """One image, 2 classes, pixels a, b (and c, ignored).

    a: logits (0, 0)      -> p = (0.5, 0.5),   target 0
    b: logits (0, ln 3)   -> p = (0.25, 0.75), target 1
    c: logits (5, -5)     -> anything,         target 255 (ignored)
    """
    logits = torch.tensor([[[[0.0, 0.0, 5.0]], [[0.0, math.log(3), -5.0]]]], dtype=torch.float64)
    target = torch.tensor([[[0, 1, 255]]])
    return logits, target


def test_soft_dice_hand_computation():
    logits, target = dice_example()
    # smooth = 1:
    #   class 0: intersection 0.5 (pixel a), sum p = 0.5 + 0.25 = 0.75, sum g = 1
    #            dice = (2 * 0.5 + 1) / (0.75 + 1 + 1) = 2 / 2.75
    #   class 1: intersection 0.75 (pixel b), sum p = 0.5 + 0.75 = 1.25, sum g = 1
    #            dice = (2 * 0.75 + 1) / (1.25 + 1 + 1) = 2.5 / 3.25
    expected = 1 - (2 / 2.75 + 2.5 / 3.25) / 2
    assert float(SoftDiceLoss(2, ignore_index=255, smooth=1.0)(logits, target)) == pytest.approx(expected, rel=1e-12)
    # smooth = 0: dice_0 = 1 / 1.75, dice_1 = 1.5 / 2.25.
    expected = 1 - (1 / 1.75 + 1.5 / 2.25) / 2
    assert float(SoftDiceLoss(2, ignore_index=255, smooth=0.0)(logits, target)) == pytest.approx(expected, rel=1e-12)


def test_dice_sums_over_the_whole_batch():
    logits, target = dice_example()
    # The same two pixels split over two images of one pixel each: the same sums, the same loss.
    split_logits = torch.cat([logits[..., :1], logits[..., 1:2]], dim=0)
    split_target = torch.cat([target[..., :1], target[..., 1:2]], dim=0)
    dice = SoftDiceLoss(2, ignore_index=255)
    assert float(dice(split_logits, split_target)) == pytest.approx(float(dice(logits, target)), rel=1e-12)


def test_dice_ce_is_the_sum():
    logits, target, _ = random_batch(seed=1)
    combined = build_loss("ce+dice", task="segmentation", num_classes=3, ignore_index=255)
    assert isinstance(combined, DiceCE)
    ce = build_loss("ce", task="segmentation", num_classes=3, ignore_index=255)
    dice = build_loss("dice", task="segmentation", num_classes=3, ignore_index=255)
    assert float(combined(logits, target)) == pytest.approx(float(ce(logits, target) + dice(logits, target)), rel=1e-12)


@pytest.mark.parametrize("name", [name for name in LOSSES if name != "mse"])  # mse: tests/test_autoencoder.py
def test_gradients_are_finite(name):
    generator = torch.Generator().manual_seed(2)
    logits = (torch.randn(2, 4, 5, 6, generator=generator) * 1e4).requires_grad_()  # saturated softmax
    target = torch.randint(0, 4, (2, 5, 6), generator=generator)
    target[0] = 255
    weight = torch.rand(2, 5, 6, generator=generator)
    loss = build_loss(name, task="segmentation", num_classes=4, ignore_index=255)(logits, target, weight=weight)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert (logits.grad[0] == 0).all()  # ignored pixels get no gradient


@pytest.mark.parametrize("name", ["ce", "weighted-ce", "ce+dice"])
def test_all_ignored_batch_gives_zero_loss(name):
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    loss = build_loss(name, task="segmentation", num_classes=3, ignore_index=255)
    value = loss(logits, target, weight=torch.ones(1, 2, 2))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    # Nothing is scored: 0 for the cross-entropies; the Dice part of an empty batch is
    # 1 - (0 + smooth) / (0 + smooth) = 0 as well.
    assert value.item() == pytest.approx(0.0, abs=1e-12)


def test_target_out_of_range_names_label_and_classes():
    loss = build_loss("ce", task="segmentation", num_classes=3, ignore_index=255)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    target[0, 1, 1] = 7
    with pytest.raises(ValueError, match=r"label 7.*0\.\.2"):
        loss(torch.randn(1, 3, 2, 2), target)
    target[0, 1, 1] = -1
    with pytest.raises(ValueError, match=r"label -1"):
        build_loss("dice", task="segmentation", num_classes=3)(torch.randn(1, 3, 2, 2), target)
    with pytest.raises(ValueError, match=r"label 5.*0\.\.4"):
        build_loss("ce", task="classification", num_classes=5)(torch.randn(2, 5), torch.tensor([1, 5]))


def test_shape_mismatch_names_both_shapes():
    loss = build_loss("ce", task="segmentation", num_classes=2)
    with pytest.raises(ValueError, match=r"\(1, 2, 4, 4\).*\(1, 6, 6\)"):
        loss(torch.randn(1, 2, 4, 4), torch.zeros(1, 6, 6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"N x 2"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        loss(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4))
    weighted = build_loss("weighted-ce", task="segmentation", num_classes=2)
    with pytest.raises(ValueError, match=r"weight map shape \(1, 3, 3\)"):
        weighted(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(1, 3, 3))


def test_weighted_ce_without_weight_is_a_clear_error():
    loss = build_loss("weighted-ce", task="segmentation", num_classes=2)
    with pytest.raises(ValueError, match="weight map"):
        loss(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("dice", {"task": "classification", "num_classes": 3}, "classification takes only 'ce'"),
        ("focal", {"task": "segmentation", "num_classes": 3}, "unknown loss 'focal'"),
        ("ce", {"task": "detection", "num_classes": 3}, "unknown task"),
        ("ce", {"task": "segmentation", "num_classes": 0}, "num_classes"),
        ("ce", {"task": "segmentation", "num_classes": 3, "label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_build_loss_rejects_bad_options(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_loss(name, **kwargs)


def test_losses_tuple_and_reexport():
    assert LOSSES == ("ce", "dice", "ce+dice", "weighted-ce", "mse")
    assert losses.unet_weight_map is weight_map.unet_weight_map
