"""Optimizers without weight decay on norms and biases, and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnzoo.engine.optim import (
    build_optimizer,
    build_scheduler,
    parameter_groups,
    split_decay_parameters,
    warmup_cosine,
)
from cnnzoo.registry import create_model


def test_resnet20_decays_only_conv_and_linear_weights():
    model = create_model("resnet20", in_chans=1)
    decay, no_decay = split_decay_parameters(model)
    # He et al. 2016, section 4.2: 6n + 2 = 20 weighted layers for n = 3: 19 convolutions
    # (stem + 9 blocks x 2; option A shortcuts have no parameters) and the fc layer.
    assert len(decay) == 20
    assert all(name.endswith("conv.weight") for name in decay if name != "head.fc.weight")
    assert "head.fc.weight" in decay
    # Every conv is followed by a BN (weight + bias): 19 x 2, plus the fc bias.
    assert len(no_decay) == 19 * 2 + 1
    assert "head.fc.bias" in no_decay and "stem.bn.weight" in no_decay and "layer3.2.conv2.bn.bias" in no_decay
    assert sorted(decay + no_decay) == sorted(name for name, _ in model.named_parameters())


def test_norm_layers_of_every_kind_and_biases_get_no_decay():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=True), nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 1, bias=False),
        nn.InstanceNorm2d(4, affine=True), nn.Flatten(), nn.Linear(4, 3),
        nn.LayerNorm(3),
    )
    decay, no_decay = split_decay_parameters(model)
    assert decay == ["0.weight", "2.weight", "5.weight"]
    assert no_decay == ["0.bias", "1.weight", "1.bias", "3.weight", "3.bias", "5.bias", "6.weight", "6.bias"]


def test_frozen_parameters_are_left_out():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    decay, no_decay = split_decay_parameters(model)
    assert decay == ["weight"] and no_decay == []


def test_sgd_step_shrinks_only_the_decayed_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    nn.init.normal_(model[1].weight)
    nn.init.normal_(model[1].bias)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(model, "sgd", lr=0.1, weight_decay=0.01, momentum=0.9, nesterov=True)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    # With a zero gradient the SGD update is -lr * wd * w (first step: momentum buffer = wd * w,
    # Nesterov adds momentum * buffer: factor 1 + 0.9).
    expected = before["0.weight"] * (1 - 0.1 * 0.01 * (1 + 0.9))
    torch.testing.assert_close(model[0].weight.detach(), expected)
    for name in ("0.bias", "1.weight", "1.bias"):
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), before[name])
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


def test_adamw_takes_momentum_as_beta1_and_two_groups():
    model = nn.Linear(4, 2)
    optimizer = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05, momentum=0.8)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.8, 0.999)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
    assert [len(g["params"]) for g in parameter_groups(model, 0.05)] == [1, 1]


def test_unknown_optimizer_is_a_value_error():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        build_optimizer(nn.Linear(2, 2), "rmsprop", lr=0.1)


def lrs_over(total: int, warmup: int, base_lr: float = 0.1) -> list[float]:
    """The learning rate the optimizer uses at each step 0..total (scheduler stepped after
    each optimizer step, as the trainer does)."""
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=base_lr)
    scheduler = build_scheduler(optimizer, total, warmup)
    rates = []
    for _ in range(total + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_schedule_follows_warmup_then_cosine_formula():
    total, warmup, lr = 100, 10, 0.1
    rates = lrs_over(total, warmup, lr)
    assert rates[0] == pytest.approx(lr / warmup)  # (0 + 1) / W
    assert rates[4] == pytest.approx(lr * 5 / warmup)
    assert rates[warmup - 1] == pytest.approx(lr)  # end of the warm-up: the peak
    assert rates[warmup] == pytest.approx(lr)  # start of the cosine part
    assert rates[warmup + (total - warmup) // 2] == pytest.approx(lr / 2)  # its midpoint
    assert rates[30] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 20 / 90)))
    assert rates[total] == pytest.approx(0.0, abs=1e-12)  # the end
    assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1:]))  # decays monotonically


def test_schedule_without_warmup_starts_at_the_peak():
    rates = lrs_over(8, 0, 0.5)
    assert rates[0] == pytest.approx(0.5)
    assert rates[4] == pytest.approx(0.25)
    assert rates[8] == pytest.approx(0.0, abs=1e-12)


def test_warmup_over_the_whole_run_stays_at_the_peak_afterwards():
    factor = warmup_cosine(4, 4)
    assert [factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.parametrize("total, warmup", [(0, 0), (10, 11), (10, -1)])
def test_schedule_rejects_bad_lengths(total, warmup):
    with pytest.raises(ValueError):
        warmup_cosine(total, warmup)
