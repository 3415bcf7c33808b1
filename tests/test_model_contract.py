"""The contract every registered classifier keeps (DESIGN.md, "Conventions that matter")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models import Classifier
from cnnzoo.models._base import he_normal_init

CLASSIFIERS = cnnzoo.list_models(task="classification")
NUM_CLASSES = 7


def small_input_size(name: str) -> int:
    """A small input the model accepts: its minimum, rounded up to a multiple of 32."""
    minimum = cnnzoo.model_info(name).min_input_size
    return max(32, -(-minimum // 32) * 32)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_and_features(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=NUM_CLASSES, in_chans=2)
    assert isinstance(model, Classifier)
    size = small_input_size(name)
    x = torch.randn(2, 2, size, size)

    model.train()
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, NUM_CLASSES)
    loss = sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters that got no gradient: {no_grad[:5]}"

    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert model(x).shape == (2, NUM_CLASSES)
    assert len(features) == len(model.feature_info)
    strides = [info.stride for info in model.feature_info]
    assert strides == sorted(strides), "stages go shallow to deep"
    for fmap, info in zip(features, model.feature_info):
        assert fmap.shape[:2] == (2, info.channels), info
        # The stride is nominal: valid convs and odd sizes may lose a few border pixels.
        for extent in fmap.shape[-2:]:
            assert size - 3 * info.stride <= extent * info.stride <= size + info.stride, (info, fmap.shape)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_input_checks(name):
    model = cnnzoo.create_model(name, num_classes=NUM_CLASSES).eval()
    minimum = cnnzoo.model_info(name).min_input_size
    assert model.min_input_size == minimum
    with torch.no_grad():
        model(torch.randn(1, 3, minimum, minimum))  # the documented minimum works
        with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
            model(torch.randn(1, 3, minimum - 1, minimum))
        with pytest.raises(ValueError, match="input channel"):
            model(torch.randn(1, 1, minimum, minimum))
        with pytest.raises(ValueError, match="4-D batch"):
            model(torch.randn(3, minimum, minimum))
        # The minimum is the true one: a pixel less and the layers themselves fail.
        if minimum > 1:
            with pytest.raises(RuntimeError):
                model.forward_head(model._forward_stages(torch.randn(1, 3, minimum - 1, minimum - 1))[-1])


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("option, value", [
    ("num_classes", 0), ("num_classes", -1), ("num_classes", 2.5), ("in_chans", 0), ("in_chans", -3),
])
def test_bad_class_or_channel_counts_are_value_errors(name, option, value):
    with torch.device("meta"), pytest.raises(ValueError, match=f"{option} must be a positive integer"):
        cnnzoo.create_model(name, **{option: value})


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_registered_defaults_build_the_model(name):
    # model_info().defaults are what create_model(name) uses, so passing them changes nothing.
    defaults = cnnzoo.model_info(name).defaults
    assert defaults["num_classes"] in (10, 1000) and defaults["in_chans"] == 3
    with torch.device("meta"):
        cnnzoo.create_model(name, **defaults)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_info_is_complete(name):
    info = cnnzoo.model_info(name)
    assert info.paper and info.year > 1990 and info.family
    if info.params is not None or info.macs is not None or info.top1 is not None:
        assert info.source, "published numbers name their source"


def test_unknown_model_names_the_closest():
    with pytest.raises(cnnzoo.UnknownModelError, match="resnet50"):
        cnnzoo.create_model("resnet5O")


@pytest.mark.parametrize("mode, fan", [("fan_out", 64 * 9), ("fan_in", 16 * 9)])
def test_he_normal_init_has_std_sqrt_2_over_fan(mode, fan):
    # He et al. 2015, eq. 10 / 14: std = sqrt(2 / n), n = k^2 * C of the chosen side.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 64, 3, bias=True), nn.BatchNorm2d(64))
    nn.init.constant_(model[0].bias, 3.0)
    nn.init.constant_(model[1].weight, 5.0)
    nn.init.constant_(model[1].bias, -1.0)
    he_normal_init(model, mode=mode)
    weight = model[0].weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / fan), rel=0.05)  # 9216 draws
    assert abs(weight.mean().item()) < 0.05 * math.sqrt(2 / fan)  # zero mean, 5 standard errors
    assert torch.count_nonzero(model[0].bias) == 0
    assert torch.equal(model[1].weight, torch.ones(64)) and torch.equal(model[1].bias, torch.zeros(64))


def test_unknown_option_is_a_value_error():
    name = CLASSIFIERS[0]
    with pytest.raises(ValueError, match="bad option"):
        cnnzoo.create_model(name, no_such_option=1)
