"""``cnnzoo explain``'s topics on what the lecture notes leave as a picture or get wrong.

* convolution-as-sums (seed 001): a standard conv equals depthwise convs summed by a 1x1
  conv of ones, to float64 rounding, and stops being equal when the ones matrix changes;
* the corrections (seeds 000-003): every quote stands in its seed file (checked when the
  seed files are there: ``../shared/seeds/`` beside the repository, absent from a fresh
  clone), and every figure printed equals an independent formula written out here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.analysis import count_params, explain, topics
from cnnzoo.analysis.explain_corrections import CORRECTIONS, SEED_FILES, transposed_as_upsample_conv
from cnnzoo.analysis.explain_layers import channel_sum_ones, conv_as_depthwise_sum, depthwise_products_weight
from cnnzoo.cli.main import main
from cnnzoo.registry import create_meta_model

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def largest_difference(text: str, label: str) -> float:
    match = re.search(re.escape(label) + r"[^\n]*?([0-9.]+e[+-][0-9]+)", text)  # the first number like 1.1e-14
    assert match, f"no {label!r} line in the text"
    return float(match.group(1))


# ----------------------------------------------------------------------------- a conv is depthwise convs summed

@pytest.mark.parametrize("c_in, c_out, k", [(6, 3, 3), (1, 4, 5), (5, 1, 1), (3, 7, 2)])
def test_standard_conv_is_depthwise_convs_summed_by_ones(c_in, c_out, k):
    gen = torch.Generator().manual_seed(c_in * 100 + c_out * 10 + k)
    x = torch.randn(2, c_in, 9, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, k, k, generator=gen, dtype=torch.float64)
    expected = F.conv2d(x, weight)
    assert (conv_as_depthwise_sum(x, weight) - expected).abs().max().item() < 1e-12
    # the same with the sums written out channel by channel, no grouped conv at all
    by_hand = torch.stack([sum(F.conv2d(x[:, c:c + 1], weight[o:o + 1, c:c + 1]) for c in range(c_in))[:, 0]
                           for o in range(c_out)], dim=1)
    assert (by_hand - expected).abs().max().item() < 1e-12


def test_the_ones_matrix_and_the_product_filters():
    ones = channel_sum_ones(6, 3)
    assert ones.shape == (3, 18, 1, 1)
    for o in range(3):
        for j in range(18):  # product j = c * C_out + o' belongs to output o'
            assert ones[o, j, 0, 0].item() == (1.0 if j % 3 == o else 0.0)
    weight = torch.arange(3 * 6 * 2 * 2, dtype=torch.float64).reshape(3, 6, 2, 2)
    filters = depthwise_products_weight(weight)
    assert filters.shape == (18, 1, 2, 2)
    assert all(torch.equal(filters[c * 3 + o, 0], weight[o, c]) for o in range(3) for c in range(6))


@pytest.mark.parametrize("change", ["drop a one", "move a one", "scale a one"])
def test_an_altered_ones_matrix_breaks_the_equality(change):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 6, 8, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(3, 6, 3, 3, generator=gen, dtype=torch.float64)
    ones = channel_sum_ones(6, 3)
    if change == "drop a one":
        ones[0, 0] = 0.0
    elif change == "move a one":
        ones[1, 1], ones[1, 2] = 0.0, 1.0
    else:
        ones[2, 5] = 2.0
    assert (conv_as_depthwise_sum(x, weight, ones) - F.conv2d(x, weight)).abs().max().item() > 1e-3


def test_convolution_as_sums_prints_the_formulas_figures():
    text = explain("convolution-as-sums")
    assert explain("depthwise-sum") == text and "convolution-as-sums" in topics()
    assert largest_difference(text, "largest |F.conv2d(x, W)") < 1e-12
    assert largest_difference(text, "largest difference") < 1e-12
    out = 8 - 3 + 1  # 6x6 output of a 3x3 conv on 8x8
    standard = 3 * 3 * 6 * 3
    assert f"{standard} weights (3 x 3 x 6 x 3), {out * out * 3 * (3 * 3 * 6):,} MACs" in text  # 162, 5,832
    assert f"{6 * 3 * 3 * 3} weights (the same W),     {out * out * 18 * 3 * 3:,} MACs" in text
    assert f"{3 * 18} fixed weights, 18 ones,    {out * out * 3 * 18:,} MACs" in text  # 54, 1,944
    assert f"({out * out * 3 * 6:,} of them multiply by a one" in text  # 648
    assert f"{3 * 3 * 6} weights, {out * out * 6 * 9:,} MACs" in text  # depthwise: 54, 1,944
    assert f"{6 * 3} weights,   {out * out * 3 * 6:,} MACs" in text  # learned 1x1: 18, 648
    assert f"together {54 + 18} weights, {out * out * 6 * (9 + 3):,} MACs against 162 and 5,832 (4/9" in text
    assert "1..1..1..1..1..1..\n    .1..1..1..1..1..1.\n    ..1..1..1..1..1..1" in text


# ----------------------------------------------------------------------------- the corrections

def normalized(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the lecture notes (../shared/seeds/) are not beside this checkout")
def test_every_quote_stands_in_its_seed_file():
    for quotes, _ in CORRECTIONS.values():
        for quote in quotes:
            assert normalized(quote.text) in normalized((SEEDS / SEED_FILES[quote.seed]).read_text()), quote


def test_every_correction_has_a_topic_quoting_it_and_the_index_lists_them():
    index = explain("notes")
    assert explain("corrections") == index
    for topic, (quotes, truth) in CORRECTIONS.items():
        assert topic in topics() and f"cnnzoo explain {topic}" in index
        assert re.fullmatch(r"[0-9]{3}_[0-9a-f]{16}\.txt", SEED_FILES[quotes[0].seed])
        text = explain(topic)
        assert all(quote.text in text for quote in quotes) and truth in normalized(text)


def test_max_pooling_has_no_parameters_it_shrinks_the_later_layers():
    assert count_params(nn.MaxPool2d(2)) == 0
    text = explain("pooling-params")
    assert "count_params(nn.MaxPool2d(2)) = 0,\ncount_macs = 0." in text
    c, side = 64, 64
    conv_weights = 3 * 3 * c * 2 * c  # 73,728 whatever the map's size
    assert f"on the 64x64 map:             {conv_weights:,} weights, {side * side * 2 * c * 9 * c:,} MACs" in text
    assert f"after the pooling (32x32):    {conv_weights:,} weights,  {(side // 2) ** 2 * 2 * c * 9 * c:,} MACs" in text
    full, pooled = c * side * side, c * (side // 2) ** 2  # flattened inputs of the dense layer
    assert f"on the 64x64 map:          {full * 10 + 10:,} weights,   {full * 10:,} MACs" in text
    assert f"after the pooling (32x32):   {pooled * 10 + 10:,} weights,     {pooled * 10:,} MACs" in text


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_fcn_keeps_the_pooling_and_drops_the_dense_layers():
    text = explain("fcn-pooling", create_model=create_meta_model)
    fcn, vgg = create_meta_model("fcn32s"), create_meta_model("vgg16")
    assert count(fcn, nn.MaxPool2d) == count(vgg, nn.MaxPool2d) == 5  # VGG16's five pools (Simonyan and Zisserman)
    assert count(fcn, nn.Linear) == 0 and count(vgg, nn.Linear) == 3
    assert f"fcn32s  5 nn.MaxPool2d (strides multiply to {2 ** 5}), 0 nn.Linear, {count(fcn, nn.Conv2d)} nn.Conv2d" in text
    assert "vgg16   5 nn.MaxPool2d (strides multiply to 32), 3 nn.Linear, 13 nn.Conv2d" in text
    # without a factory the library says how to get the counts, and still quotes and explains
    bare = explain("fcn-pooling")
    assert "nn.MaxPool2d (strides" not in bare and "create_model=cnnzoo.registry.create_meta_model" in bare


@pytest.mark.parametrize("c_in, c_out, side", [(4, 3, 5), (1, 1, 1), (2, 6, 3)])
def test_a_2x2_stride_2_transposed_conv_is_upsampling_then_a_2x2_conv(c_in, c_out, side):
    gen = torch.Generator().manual_seed(side)
    x = torch.randn(2, c_in, side, side + 1, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_in, c_out, 2, 2, generator=gen, dtype=torch.float64)
    expected = F.conv_transpose2d(x, weight, stride=2)
    assert (transposed_as_upsample_conv(x, weight) - expected).abs().max().item() < 1e-12
    # output[2a + p, 2b + q] = sum_c x[c, a, b] W[c, :, p, q]: each pixel gets exactly one tap
    scattered = torch.einsum("ncab,cdpq->ndapbq", x, weight).reshape(2, c_out, 2 * side, 2 * (side + 1))
    assert (scattered - expected).abs().max().item() < 1e-12


def test_unet_upconv_costs_the_same_weights_either_way():
    text = explain("unet-upconv", create_model=create_meta_model)
    assert largest_difference(text, "largest |conv_transpose2d") < 1e-12
    c_in, c_out, side = 128, 64, 52
    weights = 2 * 2 * c_in * c_out + c_out  # 32,832 for the transposed conv and the 2x2 conv alike
    assert f"2x2 stride-2 transposed conv:   {weights:,} weights,  {side * side * c_in * c_out * 4:,} MACs" in text
    assert f"nearest upsampling, 2x2 conv:   {weights:,} weights, {(2 * side) ** 2 * c_out * c_in * 4:,} MACs" in text
    assert f"4x4 stride-2 transposed conv:  {4 * 4 * c_in * c_out + c_out:,} weights" in text
    assert "2x2: [1, 1, 1, 1, 1, 1, 1, 1]" in text and "3x3: [2, 4, 2, 4, 2, 4, 2, 4]" in text
    # U-Net: 31,030,658 parameters for 1 input channel and 2 classes (Ronneberger et al. 2015;
    # the model file's docstring), whichever upsampling
    for mode in ("transposed", "nearest", "bilinear"):
        assert count_params(create_meta_model("unet", upsampling=mode)) == 31_030_658
        assert f'upsampling="{mode}": 31,030,658' in text


def test_the_cli_counts_the_zoo_models(capsys):
    assert main(["explain", "fcn-pooling"]) == 0
    assert "fcn32s  5 nn.MaxPool2d" in capsys.readouterr().out
