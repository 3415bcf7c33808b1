"""The contract every registered classifier keeps (DESIGN.md, "Conventions that matter")."""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.models import Classifier

CLASSIFIERS = cnnzoo.list_models(task="classification")
NUM_CLASSES = 7


def small_input_size(name: str) -> int:
    """A small input the model accepts: its minimum, rounded up to a multiple of 32."""
    minimum = cnnzoo.model_info(name).min_input_size
    return max(32, -(-minimum // 32) * 32)


def test_zoo_is_populated():
    assert len(CLASSIFIERS) >= 1


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


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_info_is_complete(name):
    info = cnnzoo.model_info(name)
    assert info.paper and info.year > 1990 and info.family
    if info.params is not None or info.macs is not None or info.top1 is not None:
        assert info.source, "published numbers name their source"


def test_unknown_model_names_the_closest():
    with pytest.raises(cnnzoo.UnknownModelError, match="resnet50"):
        cnnzoo.create_model("resnet5O")


def test_unknown_option_is_a_value_error():
    name = CLASSIFIERS[0]
    with pytest.raises(ValueError, match="bad option"):
        cnnzoo.create_model(name, no_such_option=1)
