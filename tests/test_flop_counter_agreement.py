"""``summarize`` against PyTorch's own counter, for every registered model.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of convolutions (transposed
included) and matrix products, 2 per multiply-add; ``summarize``'s MACs (conv + linear +
matmul) must be exactly half. Both run on the meta device, so nothing is computed.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import cnnzoo
from cnnzoo.analysis import summarize

MODELS = cnnzoo.list_models()
CLASSIFIERS = cnnzoo.list_models(task="classification")


def small_input(name: str) -> tuple[int, ...]:
    """The model's channels at a small size it accepts: its minimum, rounded up to a multiple
    of 32 for a classifier; a segmenter's default input (some take only certain sizes, and
    on the meta device the size costs nothing)."""
    info = cnnzoo.model_info(name)
    if info.task == "segmentation":
        return info.default_input
    side = max(32, -(-info.min_input_size // 32) * 32)
    return (info.default_input[0], *(side,) * (len(info.default_input) - 1))


def meta_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(name)


@pytest.mark.parametrize("name", MODELS)
def test_macs_agree_with_flop_counter(name):
    model = meta_model(name).eval()
    size = small_input(name)
    summary = summarize(model, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *size, device="meta"))
    flops = counter.get_total_flops()
    assert flops > 0
    assert 2 * summary.total.macs == flops
    assert summary.total.macs == sum(summary.total.macs_by_kind.values())
    assert summary.total.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_too_small_input_names_the_minimum(name):
    minimum = cnnzoo.model_info(name).min_input_size
    if minimum < 2:
        pytest.skip(f"{name} takes any input size")
    channels = cnnzoo.model_info(name).default_input[0]
    with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
        summarize(meta_model(name), (channels, minimum - 1, minimum))
