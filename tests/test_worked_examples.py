"""The lecture notes' worked numbers, reproduced by the library.

Each test names the seed file (``/work/shared/seeds/``, the lecture notes) its numbers come
from. The numbers are asserted three ways where possible: by the formula functions of
``cnnzoo.analysis.formulas``, by counting the parameters of real ``torch.nn`` modules, and
by ``summarize`` measuring the modules on the meta device.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from cnnzoo.analysis import count_macs, count_params, explain, summarize, topics
from cnnzoo.analysis import formulas as f


# --------------------------------------------------------------------------- seed 001: cost of a convolution

def test_convolution_cost_6_7_billion():
    # seed 001, "Cost of Convolution Layer": (128 x 128 x 64) x (5 x 5 x 256) = 6710886400
    assert f.conv_macs(256, 64, 5, 128) == (128 * 128 * 64) * (5 * 5 * 256) == 6_710_886_400
    layer = nn.Conv2d(256, 64, 5, padding=2, bias=False)
    assert summarize(layer, (256, 128, 128)).total.macs == 6_710_886_400
    assert count_macs(layer, (256, 128, 128)) == 6_710_886_400


def test_1x1_bottleneck_0_97_billion_almost_7_times():
    # seed 001, "1x1 Conv": = 973078528 = 0.97 billion; "Almost 7 times reduction"
    assert 128 * 128 * 32 * 1 * 1 * 256 + 128 * 128 * 64 * 5 * 5 * 32 == 973_078_528
    assert f.bottleneck_macs(256, 32, 64, 5, 128) == 973_078_528
    block = nn.Sequential(nn.Conv2d(256, 32, 1, bias=False), nn.Conv2d(32, 64, 5, padding=2, bias=False))
    summary = summarize(block, (256, 128, 128))
    assert summary.total.macs == 973_078_528
    assert summary.total.output_shape == (1, 64, 128, 128)  # an output volume of the same size
    ratio = 6_710_886_400 / 973_078_528
    assert 6.5 < ratio < 7 and round(ratio) == 7
    # the weights shrink too: 256 x 32 (1x1) + 5 x 5 x 32 x 64 against 5 x 5 x 256 x 64
    assert f.bottleneck_params(256, 32, 64, 5) == 256 * 32 + 5 * 5 * 32 * 64 == count_params(block) == 59_392
    assert f.conv_params(256, 64, 5) == 409_600


# --------------------------------------------------------------------------- seed 001: depthwise separable

def test_standard_162_against_separable_72_weights():
    # seed 001: "3 x 3 x 6 x 3 = 162" and "(3 x 3 x 6) + (6 x 3) = 72"
    assert f.conv_params(6, 3, 3) == 162
    assert f.separable_params(6, 3, 3) == 72
    standard = nn.Conv2d(6, 3, 3, bias=False)
    separable = nn.Sequential(nn.Conv2d(6, 6, 3, groups=6, bias=False), nn.Conv2d(6, 3, 1, bias=False))
    assert count_params(standard) == 162
    assert count_params(separable) == 72
    assert summarize(separable, (6, 8, 8)).total.params == 72


@pytest.mark.parametrize("n, k", [(3, 3), (64, 3), (1024, 3), (32, 5), (7, 7)])
def test_separable_reduction_factor_is_1_over_n_plus_1_over_k2(n, k):
    # seed 004 "Reduction factor - ?"; Howard et al. 2017, eq. 5: 1/N + 1/D_K^2
    factor = f.separable_reduction_factor(n, k)
    assert factor == Fraction(1, n) + Fraction(1, k * k)
    for m in (3, 16, 48):  # whatever the number of input channels
        assert Fraction(f.separable_params(m, n, k), f.conv_params(m, n, k)) == factor
        assert Fraction(f.separable_macs(m, n, k, 14), f.conv_macs(m, n, k, 14)) == factor
        standard = nn.Conv2d(m, n, k, padding=k // 2, bias=False)
        separable = nn.Sequential(nn.Conv2d(m, m, k, padding=k // 2, groups=m, bias=False), nn.Conv2d(m, n, 1, bias=False))
        assert Fraction(count_macs(separable, (m, 14, 14)), count_macs(standard, (m, 14, 14))) == factor


def test_notes_example_factor_is_4_9():
    # seed 001's 72 / 162 is 1/3 + 1/9
    assert f.separable_reduction_factor(3, 3) == Fraction(72, 162) == Fraction(4, 9)


# --------------------------------------------------------------------------- seeds 000 / 003: grouped, depthwise

@pytest.mark.parametrize("groups", [1, 2, 4, 8, 16])
def test_grouped_conv_costs_1_over_g(groups):
    # seeds 000 and 003, "Parameter reduction??": 1/g of the weights and the MACs
    assert f.grouped_reduction_factor(groups) == Fraction(1, groups)
    grouped = nn.Conv2d(32, 64, 3, padding=1, groups=groups, bias=False)
    standard = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    assert Fraction(count_params(grouped), count_params(standard)) == Fraction(1, groups)
    assert Fraction(count_macs(grouped, (32, 20, 20)), count_macs(standard, (32, 20, 20))) == Fraction(1, groups)
    assert count_params(grouped) == f.conv_params(32, 64, 3, groups)
    assert count_macs(grouped, (32, 20, 20)) == f.conv_macs(32, 64, 3, 20, groups)


def test_depthwise_conv_costs_1_over_c():
    # seed 000, "Depth-wise Convolution": # input channels = # groups = # output channels
    depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
    assert count_params(depthwise) == f.depthwise_params(32, 3) == 3 * 3 * 32
    assert Fraction(count_params(depthwise), f.conv_params(32, 32, 3)) == f.depthwise_reduction_factor(32) == Fraction(1, 32)


def test_alexnet_two_towers_as_groups():
    # seed 002: "5x5, 256 kernels (2x128)" over 96 = 2 x 48 channels: each tower sees half
    assert f.conv_params(96, 256, 5, groups=2) == 5 * 5 * 48 * 256 == f.conv_params(96, 256, 5) // 2


# --------------------------------------------------------------------------- seed 002: VGG, Inception v2, AlexNet

def test_vgg_stacked_3x3_18_vs_25_and_45_vs_121():
    # seed 002: "5x5 kernel: 25 parameters per channel; 3x3 + 3x3 kernels: 9 + 9 = 18";
    # "11x11 kernel: 121 parameters per channel; five 3x3 kernels; 9 x 5 = 45"
    assert f.stacked_weights(2) == 18 and f.stacked_receptive_field(2) ** 2 == 25
    assert f.stacked_weights(5) == 45 and f.stacked_receptive_field(5) ** 2 == 121
    two = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.Conv2d(1, 1, 3, bias=False))
    five = nn.Sequential(*(nn.Conv2d(1, 1, 3, bias=False) for _ in range(5)))
    assert count_params(two) == 18 and count_params(nn.Conv2d(1, 1, 5, bias=False)) == 25
    assert count_params(five) == 45 and count_params(nn.Conv2d(1, 1, 11, bias=False)) == 121
    # ... and they see what the big kernel sees
    assert summarize(two, (1, 32, 32)).total.rf == (5, 5)
    assert summarize(five, (1, 32, 32)).total.rf == (11, 11)


def test_alexnet_11x11_is_121_weights_per_channel():
    # seed 002: "E.g. 11x11 kernel, 121 weights per input channel"
    assert f.conv_params(1, 1, 11) == 121


def test_inception_v2_7_plus_7_vs_49():
    # seed 002: "Uses N = 7 (7 x 7 = 49, 7 + 7 = 14)"
    assert f.factorized_weights(7) == (14, 49)
    factorized = nn.Sequential(nn.Conv2d(1, 1, (1, 7), bias=False), nn.Conv2d(1, 1, (7, 1), bias=False))
    assert count_params(factorized) == 14 and count_params(nn.Conv2d(1, 1, 7, bias=False)) == 49
    assert summarize(factorized, (1, 17, 17)).total.rf == (7, 7)  # the same 7x7 window


# --------------------------------------------------------------------------- seed 000: MobileNet (formula side)

def test_mobilenet_224x224x3_in_7x7x1024_out():
    # seed 000: "If the input image is 224 x 224 x 3 then the output of the network is a
    # 7 x 7 x 1024 feature map."
    cost = f.mobilenet_v1_cost()
    assert (cost.output_size, cost.output_size, cost.output_channels) == (7, 7, 1024)


def test_mobilenet_paper_tables():
    # Howard et al. 2017 (MobileNets), Table 6 (width multiplier) and Table 7 (resolution):
    # million mult-adds and million parameters, as the paper rounds them.
    for alpha, macs, params in [(1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5)]:
        cost = f.mobilenet_v1_cost(alpha)
        assert round(cost.macs / 1e6) == macs
        assert round(cost.params / 1e6, 1) == params
    for resolution, macs in [(224, 569), (192, 418), (160, 290), (128, 186)]:
        assert round(f.mobilenet_v1_cost(resolution=resolution).macs / 1e6) == pytest.approx(macs, abs=1)


def test_depth_multiplier_0_5_cuts_cost_about_4_times():
    # seed 000: "Using a depth multiplier of 0.5 will halve the number of channels used in
    # each layer - Reducing the number of computations by a factor of 4"
    full, half = f.mobilenet_v1_cost(1.0), f.mobilenet_v1_cost(0.5)
    assert 3.5 < full.macs / half.macs < 4.0  # alpha^2 for the pointwise convs, alpha for the rest
    assert f.width_multiplier_ratio(0.5, 512, 512) == Fraction(9 * 256 + 256 * 256, 9 * 512 + 512 * 512)
    assert 0.25 < float(f.width_multiplier_ratio(0.5, 512, 512)) < 0.26


def test_separable_mobilenet_roughly_nine_times_cheaper():
    # seed 000: "MobileNet is roughly nine times faster if used with depthwise separable
    # convolution"; Howard et al. Table 4: 4866M against 569M mult-adds, 29.3M against 4.2M
    separable, standard = f.mobilenet_v1_cost(), f.mobilenet_v1_cost(separable=False)
    assert round(standard.macs / 1e6) == pytest.approx(4866, abs=2)
    assert round(standard.params / 1e6, 1) == 29.3
    assert 8 < standard.macs / separable.macs < 9.5


# --------------------------------------------------------------------------- seed 004: transposed convolution

def scatter_by_hand(values, kernel, stride):
    """Each input value times the kernel, placed stride pixels apart, summed (written out
    independently of the library)."""
    out = [[0.0] * 4 for _ in range(4)]
    for i in range(2):
        for j in range(2):
            for a in range(2):
                for b in range(2):
                    out[stride * i + a][stride * j + b] += values[i][j] * kernel[a][b]
    return out


def test_transposed_convolution_example_of_seed_004():
    # seed 004, "Transposed Convolution": input [[0, 1], [2, 3]], kernels kernel1 and kernel2,
    # nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2, padding=0, bias=False).
    values = [[0.0, 1.0], [2.0, 3.0]]
    kernel1 = [[0.0, 1.0], [2.0, 3.0]]
    kernel2 = [[4.0, 1.0], [2.0, 3.0]]
    # The two outputs as printed in the notes. (The second print has one closing bracket
    # too many, "]]]]]"; its values are right: they are what the hand computation gives.)
    printed1 = [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]
    printed2 = [[0, 0, 4, 1], [0, 0, 2, 3], [8, 2, 12, 3], [4, 6, 6, 9]]
    assert scatter_by_hand(values, kernel1, 2) == printed1
    assert scatter_by_hand(values, kernel2, 2) == printed2
    assert f.transposed_conv_scatter(values, kernel1, 2) == printed1
    assert f.transposed_conv_scatter(values, kernel2, 2) == printed2

    transpose = nn.ConvTranspose2d(in_channels=1, out_channels=1, kernel_size=2, stride=2, padding=0, bias=False)
    x = torch.tensor(values).reshape(1, 1, 2, 2)
    for kernel, printed in ((kernel1, printed1), (kernel2, printed2)):
        transpose.weight.data = torch.tensor(kernel).reshape(1, 1, 2, 2)
        with torch.no_grad():
            output = transpose(x)
        assert torch.equal(output, torch.tensor(printed, dtype=torch.float32).reshape(1, 1, 4, 4))

    assert f.transposed_conv_output_size(2, 2, stride=2) == 4
    # in_H x in_W x C_in x C_out x k_h x k_w / groups
    assert f.transposed_conv_macs(1, 1, 2, 2) == 2 * 2 * 1 * 1 * 2 * 2 == 16
    assert summarize(transpose, (1, 2, 2)).total.macs == 16


def test_explain_prints_the_seed_004_outputs_computed():
    text = explain("transposed")
    assert "[ 8,  2, 12,  3]" in text and "[0, 2, 0, 3]" in text
    assert "DISAGREES" not in text


# --------------------------------------------------------------------------- dilated (seed 000) and the context module

def test_dilated_kernel_extent_and_receptive_fields():
    # seed 000, "Dilated Convolution", l = 1, 2, 4 (Yu and Koltun 2016, Fig. 1): stacked
    # 3x3 convs with dilations 1, 2, 4 have receptive fields 3x3, 7x7, 15x15
    assert [f.effective_kernel_size(3, r) for r in (1, 2, 4)] == [3, 5, 9]
    assert [s.size for s in f.receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])] == [3, 7, 15]
    # Yu and Koltun 2016, Table 1: the context module's receptive fields
    dilations = (1, 1, 2, 4, 8, 16, 1)
    expected = [3, 5, 9, 17, 33, 65, 67]
    assert [s.size for s in f.receptive_field([(3, 1, d) for d in dilations])] == expected
    net = nn.Sequential(*(nn.Conv2d(2, 2, 3, padding=d, dilation=d) for d in dilations))
    assert [row.rf for row in summarize(net, (2, 80, 80)).rows] == [(e, e) for e in expected]


# --------------------------------------------------------------------------- seeds 001 / 004: FCN head, DenseNet

def test_dense_layer_fixes_the_input_area():
    # seed 001: "1024 neurons in fully connected layer imply that H x W must equal 256"
    assert f.fc_spatial_area(1024, 4) == 256


def test_densenet_growth():
    # seed 004: "the l-th layer has k0 + k x (l - 1) input feature-maps"; k = 12
    assert [f.dense_layer_in_channels(16, 12, layer) for layer in (1, 2, 3, 4)] == [16, 28, 40, 52]


# --------------------------------------------------------------------------- explain

def test_every_topic_renders_and_unknown_topics_are_listed():
    for topic in topics():
        text = explain(topic)
        assert text.strip() and "DISAGREES" not in text
    assert "convolution-cost" in explain()  # the index
    with pytest.raises(ValueError, match="topics: convolution-cost"):
        explain("no-such-topic")
    # the module is callable: explain(topic), explain.explain(topic), explain.topics()
    assert explain.topics() == topics()
    assert explain.explain("1x1") == explain("bottleneck") == explain("Bottleneck")


def test_explain_numbers_are_the_notes_numbers():
    assert "6,710,886,400" in explain("convolution-cost")
    assert "973,078,528" in explain("1x1")
    separable = explain("depthwise-separable")
    assert "= 162" in separable and "= 72" in separable and "4/9" in separable
    assert "7x7x1024" in explain("mobilenet")
    assert "3, 5, 9, 17, 33, 65, 67" in explain("dilated")
    assert "= 18" in explain("stacked-3x3")
    assert "7 + 7 = 14" in explain("factorized")
