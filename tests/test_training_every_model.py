"""Training with auxiliary heads (GoogLeNet, Inception v3), and one training step of every
registered model with its default options.

The weighted objective is checked against cross-entropies computed here from the model's
own outputs: GoogLeNet's auxiliary losses weigh 0.3 (Szegedy et al. 2015, section 6),
Inception v3's 0.4 (its authors' released training code)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.engine.batches import ModelFeed
from cnnzoo.engine.config import resolve_config
from cnnzoo.engine.losses import build_loss, choose_loss
from cnnzoo.engine.objective import EpochLosses, StepLoss, auxiliary_weight, split_outputs, step_loss
from cnnzoo.engine.speed import training_step
from cnnzoo.engine.trainer import train
from cnnzoo.registry import create_model, data_options, list_models, model_info
from tests.test_engine_train import make_class_folder

AUXILIARY = {  # model, options that turn its auxiliary heads on, input side, weight, head names
    "googlenet": ({"aux_logits": True}, 64, 0.3, ("aux2", "aux1")),
    "inception_v3": ({}, 80, 0.4, ("aux",)),
}


def plain_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return F.cross_entropy(logits, target)


@pytest.mark.parametrize("name", sorted(AUXILIARY))
def test_the_objective_adds_the_weighted_auxiliary_losses(name):
    options, side, weight, heads = AUXILIARY[name]
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, **options).train()
    assert auxiliary_weight(model) == weight
    images, target = torch.randn(2, 3, side, side), torch.tensor([1, 3])
    outputs = model(images)
    step = step_loss(plain_ce, outputs, target, None, auxiliary_weight(model))
    main = F.cross_entropy(outputs[0], target)
    auxiliary = [F.cross_entropy(getattr(outputs, head), target) for head in heads]
    assert torch.allclose(step.total, main + weight * sum(auxiliary))
    assert set(step.terms) == {"loss", *(f"{head}_loss" for head in heads)}
    assert torch.equal(step.logits, outputs[0])


def test_a_model_without_auxiliary_heads_is_scored_on_its_logits_alone():
    model = create_model("resnet20", num_classes=3)
    logits, auxiliary = split_outputs(model(torch.randn(2, 3, 32, 32)))
    assert auxiliary == {} and auxiliary_weight(model) == 0.0
    target = torch.tensor([0, 2])
    step = step_loss(plain_ce, logits, target, None, 0.0)
    assert torch.equal(step.total, F.cross_entropy(logits, target)) and list(step.terms) == ["loss"]


def test_epoch_losses_are_sample_weighted_means():
    losses = EpochLosses()
    for value, aux, count in ((1.0, 4.0, 3), (2.0, 0.0, 1)):
        terms = {"loss": torch.tensor(value), "aux1_loss": torch.tensor(aux)}
        total = terms["loss"] + 0.3 * terms["aux1_loss"]
        assert losses.add(StepLoss(total, torch.zeros(1, 2), torch.zeros(1), terms), count) == pytest.approx(
            value + 0.3 * aux)
    assert losses.mean() == pytest.approx((1.0 * 3 + 2.0) / 4)
    assert losses.mean("aux1_loss") == pytest.approx(12.0 / 4)
    assert losses.names() == ["loss", "aux1_loss"]


def test_googlenet_trains_with_its_auxiliary_heads_and_logs_each(tmp_path):
    flags = {"model": "googlenet", "model_kwargs": {"aux_logits": True}, "image_size": 32, "epochs": 1,
             "data": str(make_class_folder(tmp_path / "images", per_class=4)), "batch_size": 8, "out": str(tmp_path / "run"),
             "progress": "log", "workers": 0}
    result = train(resolve_config({}, flags))
    with open(result.run_dir / "metrics.csv") as handle:
        row = next(csv.DictReader(handle))
    for column in ("train_loss", "train_aux1_loss", "train_aux2_loss", "val_loss"):
        assert math.isfinite(float(row[column])), column
    # Evaluation scores the main head alone: a plain tensor of logits in eval mode.
    model = create_model("googlenet", num_classes=3, aux_logits=True).eval()
    assert isinstance(model(torch.randn(1, 3, 32, 32)), torch.Tensor)


def input_side(name: str) -> int:
    return max(model_info(name).min_input_size, 32)


@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_one_training_step(name):
    """No registered model with its default options fails a training step; every one of
    its parameters that took part moves."""
    info = model_info(name)
    torch.manual_seed(0)
    model = create_model(name, **data_options(name, num_classes=3, in_chans=3)).train()
    side = input_side(name)
    image = torch.rand(2, 3, side, side)
    target_shape = (2,) if info.task == "classification" else (2, side, side)
    target = image if info.task == "reconstruction" else torch.randint(0, 3, target_shape)
    batch = {"image": image, "target": target}
    before = {key: value.detach().clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    feed = ModelFeed.create([0.5] * 3, [0.25] * 3, torch.device("cpu"), model)
    loss_fn = build_loss(choose_loss(None, info.task, False), task=info.task, num_classes=3)
    with torch.no_grad():
        outputs = feed.logits(model, batch["image"])
        loss = step_loss(loss_fn, outputs, batch["target"], None, auxiliary_weight(model)).total
    assert math.isfinite(float(loss))
    training_step(model, loss_fn, feed, batch, optimizer)()
    moved = [key for key, value in model.named_parameters() if not torch.equal(value, before[key])]
    assert moved, f"{name}: no parameter changed"
    for key, value in model.named_parameters():
        assert torch.isfinite(value).all(), f"{name}: {key} is not finite after one step"
