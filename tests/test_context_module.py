"""The context module of Yu and Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions" (ICLR 2016): Table 1 and the identity initialization of section 3."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo.analysis import summarize
from cnnzoo.layers.context import ContextModule, identity_init_

# Table 1 of the paper, column by column for layers 1-8.
TABLE_DILATIONS = (1, 1, 2, 4, 8, 16, 1, 1)
TABLE_RECEPTIVE_FIELDS = (3, 5, 9, 17, 33, 65, 67, 67)
TABLE_OUTPUT_CHANNELS = {"basic": (1, 1, 1, 1, 1, 1, 1, 1), "large": (2, 2, 4, 8, 16, 32, 32, 1)}  # times C


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("variant", ["basic", "large"])
def test_layers_follow_table_1(variant):
    channels = 3
    module = ContextModule(channels, variant)
    layers = convs(module)
    assert len(layers) == 8
    assert [conv.dilation[0] for conv in layers] == list(TABLE_DILATIONS)
    assert [conv.kernel_size for conv in layers] == [(3, 3)] * 7 + [(1, 1)]
    assert [conv.padding[0] for conv in layers] == list(TABLE_DILATIONS[:7]) + [0]  # padding = dilation
    assert [conv.out_channels for conv in layers] == [channels * m for m in TABLE_OUTPUT_CHANNELS[variant]]
    # ReLU ("truncation") after each of the seven 3x3 layers, none after the 1x1.
    relus = [name for name, m in module.named_modules() if isinstance(m, nn.ReLU)]
    assert relus == [f"layer{i}.act" for i in range(1, 8)]
    assert isinstance(module[-1], nn.Conv2d)


@pytest.mark.parametrize("variant", ["basic", "large"])
def test_receptive_field_grows_as_in_table_1(variant):
    summary = summarize(ContextModule(2, variant), (2, 80, 80))
    fields = [row.rf for row in summary.rows if row.type == "Conv2d"]
    assert fields == [(float(r), float(r)) for r in TABLE_RECEPTIVE_FIELDS]
    assert summary.total.rf == (67.0, 67.0) and summary.total.jump == (1.0, 1.0)


@pytest.mark.parametrize("variant", ["basic", "large"])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (70, 33)])
def test_resolution_is_kept(variant, size):
    module = ContextModule(4, variant)
    assert module(torch.rand(2, 4, *size)).shape == (2, 4, *size)


def test_parameters_and_macs():
    c = 5
    basic = ContextModule(c)
    # Seven 3x3 layers C -> C and one 1x1, with biases: 7 (9 C^2 + C) + C^2 + C.
    assert sum(p.numel() for p in basic.parameters()) == 7 * (9 * c * c + c) + c * c + c == 64 * c * c + 8 * c
    widths = [c] + [c * m for m in TABLE_OUTPUT_CHANNELS["large"]]
    kernels = [9] * 7 + [1]
    expected = sum(k * a * b + b for k, a, b in zip(kernels, widths, widths[1:]))
    assert sum(p.numel() for p in ContextModule(c, "large").parameters()) == expected
    # Every layer keeps the resolution: MACs = H W (7 * 9 C^2 + C^2).
    summary = summarize(basic, (c, 20, 30))
    assert summary.total.macs == 20 * 30 * 64 * c * c


def test_basic_module_starts_as_the_identity_on_non_negative_inputs():
    module = ContextModule(6)
    x = torch.rand(2, 6, 17, 23)
    with torch.no_grad():
        torch.testing.assert_close(module(x), x, atol=0, rtol=0)
        # The truncation after layer 1 drops the negative part: the module starts as ReLU.
        y = torch.randn(2, 6, 17, 23)
        torch.testing.assert_close(module(y), y.clamp(min=0), atol=0, rtol=0)


def test_large_module_starts_as_the_identity():
    x = torch.rand(2, 4, 19, 21)
    with torch.no_grad():
        exact = ContextModule(4, "large", init_noise=0.0)
        torch.testing.assert_close(exact(x), x, atol=1e-6, rtol=1e-6)
        torch.manual_seed(0)
        noisy = ContextModule(4, "large")
        # Noise breaks the symmetry between copies of a channel, and stays small.
        assert (noisy(x) - x).abs().max() < 0.05
    first = convs(noisy)[0].weight
    assert torch.count_nonzero(first) == first.numel()


def test_identity_init_eq_5_by_hand():
    # C = 2, a layer 2 -> 4: output b copies input floor(b / 2) scaled by C / c_out = 1/2;
    # then 4 -> 2: output b averages inputs 2b and 2b + 1 with weight C / c_out = 1.
    widen = nn.Conv2d(2, 4, 3, padding=1)
    identity_init_(widen, channels=2)
    expected = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.0, 0.5], [0.0, 0.5]])
    torch.testing.assert_close(widen.weight[:, :, 1, 1], expected)
    off_centre = widen.weight.clone()
    off_centre[:, :, 1, 1] = 0
    assert torch.count_nonzero(off_centre) == 0 and torch.count_nonzero(widen.bias) == 0
    narrow = nn.Conv2d(4, 2, 1)
    identity_init_(narrow, channels=2)
    torch.testing.assert_close(narrow.weight[:, :, 0, 0], torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
    x = torch.rand(1, 2, 5, 5)
    torch.testing.assert_close(narrow(widen(x)), x)


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="variant must be one of basic, large"):
        ContextModule(3, "huge")
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        ContextModule(0)
    with pytest.raises(ValueError, match="init_noise must be non-negative"):
        ContextModule(3, "large", init_noise=-1.0)
