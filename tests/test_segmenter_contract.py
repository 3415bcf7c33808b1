"""The contract every registered segmenter keeps (models/_segmenter.py).

Everything runs on the meta device at the model's default input, so the paper-size
networks (U-Net at 572x572, FCN at 500x500) cost nothing to check; the model files' own
tests run real forward passes on small variants.
"""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.analysis import summarize
from cnnzoo.models._segmenter import Segmenter

SEGMENTERS = cnnzoo.list_models(task="segmentation")
NUM_CLASSES = 5


def test_the_segmenters_the_issue_names_are_registered():
    assert {"fcn32s", "fcn16s", "fcn8s", "unet", "segnet"} <= set(SEGMENTERS)


def meta_model(name: str, **options) -> Segmenter:
    with torch.device("meta"):
        return cnnzoo.create_model(name, **options).eval()


@pytest.mark.parametrize("name", SEGMENTERS)
def test_output_is_one_score_per_class_and_pixel(name):
    info = cnnzoo.model_info(name)
    channels, height, width = info.default_input
    model = meta_model(name, num_classes=NUM_CLASSES, in_chans=channels + 1)
    assert isinstance(model, Segmenter)
    assert (model.num_classes, model.in_chans) == (NUM_CLASSES, channels + 1)
    with torch.no_grad():
        out = model(torch.zeros(2, channels + 1, height, width, device="meta"))
    assert tuple(out.shape) == (2, NUM_CLASSES, *model.output_size(height, width))
    # The cost calculus follows the same graph: its output shape is the model's.
    summary = summarize(model, (channels + 1, height, width))
    assert tuple(summary.rows[-1].output_shape[-3:]) == (NUM_CLASSES, *model.output_size(height, width))
    assert summary.total.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", SEGMENTERS)
def test_input_checks(name):
    info = cnnzoo.model_info(name)
    channels = info.default_input[0]
    model = meta_model(name)
    assert model.min_input_size == info.min_input_size
    minimum = info.min_input_size
    if minimum > 1:
        with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
            model(torch.zeros(1, channels, minimum - 1, minimum, device="meta"))
    with pytest.raises(ValueError, match="input channel"):
        model(torch.zeros(1, channels + 1, *info.default_input[1:], device="meta"))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.zeros(channels, *info.default_input[1:], device="meta"))


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("option, value", [("num_classes", 0), ("in_chans", -3), ("num_classes", 2.5)])
def test_bad_class_or_channel_counts_are_value_errors(name, option, value):
    with torch.device("meta"), pytest.raises(ValueError, match=f"{option} must be a positive integer"):
        cnnzoo.create_model(name, **{option: value})


@pytest.mark.parametrize("name", SEGMENTERS)
def test_registered_defaults_build_the_model(name):
    info = cnnzoo.model_info(name)
    assert info.task == "segmentation" and info.paper and info.year > 1990
    with torch.device("meta"):
        cnnzoo.create_model(name, **info.defaults)
