"""SqueezeNet and MobileNet v1 against their papers' tables, torchvision's published numbers,
exact cost formulas and the lecture's claims (seed 000: ReLU6, BN after each conv, 7x7x1024,
depth multiplier 0.5 = about 4x fewer computations; seed 001: the fully convolutional head;
seed 003: "Reduction factor - ?")."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.layers import DepthwiseSeparableConv
from cnnzoo.layers.fire import Fire, fire_params
from cnnzoo.models.mobilenet import SEPARABLE_LAYERS

TORCHVISION = json.loads((Path(__file__).parent / "fixtures" / "torchvision" / "metadata.json").read_text())["models"]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- Fire module

def test_fire_concatenates_the_two_expand_branches():
    torch.manual_seed(0)
    fire = Fire(96, 16, 64, 64)
    assert [n for n, _ in fire.named_children() if not n.endswith("_act")] == ["squeeze", "expand1x1", "expand3x3"]
    x = torch.randn(2, 96, 9, 11)
    out = fire(x)
    assert out.shape == (2, 128, 9, 11)
    # Independent composition: squeeze + ReLU, then both expands + ReLU, concatenated.
    squeezed = torch.relu(fire.squeeze(x))
    expected = torch.cat([torch.relu(fire.expand1x1(squeezed)), torch.relu(fire.expand3x3(squeezed))], dim=1)
    torch.testing.assert_close(out, expected)


def test_fire_parameter_formula():
    # fire2 of SqueezeNet 1.0 (Iandola et al. 2016, Table 1): 11,920 parameters.
    assert 96 * 16 + 16 + 16 * 64 + 64 + 9 * 16 * 64 + 64 == 11_920
    assert n_params(Fire(96, 16, 64, 64)) == fire_params(96, 16, 64, 64) == 11_920
    assert n_params(Fire(37, 5, 11, 7)) == fire_params(37, 5, 11, 7)
    # A plain 3x3 conv 96 -> 128 with the same output costs 9x more.
    assert n_params(nn.Conv2d(96, 128, 3)) == 110_720


# ---------------------------------------------------------------- SqueezeNet

def test_squeezenet1_0_per_layer_parameters_match_table_1():
    # Iandola et al. 2016, Table 1, "# parameter before pruning" column.
    table = [14_208, 11_920, 12_432, 45_344, 49_440, 104_880, 111_024, 188_992, 197_184, 513_000]
    assert sum(table) == 1_248_424
    model = cnnzoo.create_model("squeezenet1_0")
    conv1 = model.features[0]
    fires = [m for m in model.features if isinstance(m, Fire)]
    conv10 = model.classifier[1]
    assert [n_params(m) for m in [conv1, *fires, conv10]] == table
    assert count_params(model) == 1_248_424


def test_squeezenet1_1_parameter_count():
    # torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1 num_params
    assert count_params(cnnzoo.create_model("squeezenet1_1")) == 1_235_496


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_head_is_fully_convolutional(name):
    # CS-568 notes: K 1x1 convolutions, one per class, then global pooling: any input size.
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=10).eval()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    conv10 = model.classifier[1]
    assert isinstance(conv10, nn.Conv2d) and conv10.kernel_size == (1, 1) and conv10.out_channels == 10
    nn.init.normal_(conv10.weight, 0.0, 0.1)
    for size in (64, 75):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            last = model.forward_features(x)[-1]
            expected = torch.relu(conv10(last)).mean(dim=(2, 3))
            torch.testing.assert_close(model(x), expected)


def test_squeezenet_stages():
    model = cnnzoo.create_model("squeezenet1_0").eval()
    assert [(f.channels, f.stride, f.name) for f in model.feature_info] == [
        (96, 2, "conv1"), (256, 4, "fire4"), (512, 8, "fire8"), (512, 16, "fire9"),
    ]
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 224, 224))
    # 7x7 / 2 "valid" conv: (224 - 7) / 2 + 1 = 109; ceil-mode pools: 54, 27, 13.
    assert [m.shape[-1] for m in maps] == [109, 54, 27, 13]


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_squeezenet_macs_within_one_percent_of_torchvision(name):
    # torchvision 0.28 weights metadata: "GFLOPS" are multiply-adds at 224x224.
    published = TORCHVISION[name]["gmacs"] * 1e9
    assert count_macs(cnnzoo.create_model(name), (3, 224, 224)) == pytest.approx(published, rel=0.01)


# ---------------------------------------------------------------- MobileNet v1

def mobilenet(**kwargs) -> nn.Module:
    return cnnzoo.create_model("mobilenet_v1", **kwargs)


@pytest.mark.parametrize(
    "width, mult_adds, params", [(1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5)]
)
def test_width_multiplier_matches_table_6(width, mult_adds, params):
    # Howard et al. 2017, Table 6 (224x224): millions of mult-adds and of parameters.
    model = mobilenet(width_mult=width)
    assert round(count_macs(model, (3, 224, 224)) / 1e6) == mult_adds
    assert round(count_params(model) / 1e6, 1) == params


@pytest.mark.parametrize("resolution, mult_adds", [(224, 569), (192, 418), (160, 290), (128, 186)])
def test_resolution_multiplier_matches_table_7(resolution, mult_adds):
    # Howard et al. 2017, Table 7 (width 1.0): millions of mult-adds, to the table's 1M
    # precision (160: 290.7M here; the table's figures are not all rounded the same way).
    assert count_macs(mobilenet(), (3, resolution, resolution)) / 1e6 == pytest.approx(mult_adds, abs=1)


def test_macs_equal_the_layer_by_layer_formula():
    # Stem: D_F^2 * 32 * 3x3x3; each separable layer on its output map D_F x D_F:
    # D_K^2 * M * D_F^2 (depthwise) + M * N * D_F^2 (pointwise); fc 1024 x 1000.
    size = 112
    expected, channels = size * size * 32 * 27, 32
    for stage in SEPARABLE_LAYERS:
        for out_channels, stride in stage:
            size //= stride
            expected += size * size * (9 * channels + channels * out_channels)
            channels = out_channels
    expected += 1024 * 1000
    assert count_macs(mobilenet(), (3, 224, 224)) == expected


def test_224_input_gives_a_7x7x1024_map():
    model = mobilenet().eval()
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 224, 224))
    assert maps[-1].shape == (1, 1024, 7, 7)
    assert [(f.channels, f.stride) for f in model.feature_info] == [
        (64, 2), (128, 4), (256, 8), (512, 16), (1024, 32),
    ]
    assert [m.shape[-1] for m in maps] == [112, 56, 28, 14, 7]


def test_a_stride_1_stem_keeps_a_28x28_input_at_full_resolution():
    # The small-input adaptation: every map twice as large, the last 2x2 for 28x28
    # (28 -> 14 -> 7 -> 4 -> 2 with padded stride-2 convolutions).
    model = mobilenet(num_classes=10, in_chans=1, stem_stride=1).eval()
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 1, 28, 28))
    assert [m.shape[-1] for m in maps] == [28, 14, 7, 4, 2]
    assert [f.stride for f in model.feature_info] == [1, 2, 4, 8, 16]
    # Same weights as the stride-2 stem, so the same parameter count.
    assert count_params(model) == count_params(mobilenet(num_classes=10, in_chans=1))
    with pytest.raises(ValueError, match="stem_stride"):
        mobilenet(stem_stride=3)


def test_any_resolution_works():
    model = mobilenet(num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 130)).shape == (1, 4)
        assert model.forward_features(torch.randn(1, 3, 160, 160))[-1].shape[-1] == 5


def test_relu6_and_batch_norm_after_each_conv_and_no_pooling():
    model = mobilenet()
    conv_layers = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv_layers) == 1 + 2 * 13  # stem, then 13 depthwise + 13 pointwise
    assert len([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]) == len(conv_layers)
    assert len([m for m in model.modules() if isinstance(m, nn.ReLU6)]) == len(conv_layers)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.stages.modules())
    # ReLU6 = min(max(x, 0), 6)
    x = torch.tensor([-3.0, 0.5, 5.0, 9.0])
    assert torch.equal(nn.ReLU6()(x), torch.tensor([0.0, 0.5, 5.0, 6.0]))
    # The paper's text says ReLU; the option gives it.
    relu_model = mobilenet(act_layer=nn.ReLU)
    assert not any(isinstance(m, nn.ReLU6) for m in relu_model.modules())
    assert len([m for m in relu_model.modules() if isinstance(m, nn.ReLU)]) == len(conv_layers)


def test_stride_2_depthwise_layers_double_the_channels():
    for block in (b for stage in mobilenet().stages for b in stage):
        assert isinstance(block, DepthwiseSeparableConv)
        if block.depthwise.conv.stride == (2, 2):
            assert block.out_channels == 2 * block.in_channels


def test_depth_multiplier_half_cuts_computation_about_4x():
    # Seed 000: "a depth multiplier of 0.5 ... reducing the number of computations by a factor of 4".
    full, half = count_macs(mobilenet()), count_macs(mobilenet(width_mult=0.5))
    assert 3.5 < full / half < 4.0  # depthwise convs and the 3-channel stem scale by alpha only
    # The 1x1 convolutions, ~95% of the cost, scale exactly by alpha^2.
    def pointwise_macs(model: nn.Module) -> int:
        total = 0

        def hook(module, inputs, output):
            nonlocal total
            total += output.shape[-2] * output.shape[-1] * module.in_channels * module.out_channels

        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 224, 224))
        for handle in handles:
            handle.remove()
        return total

    assert pointwise_macs(mobilenet()) == 4 * pointwise_macs(mobilenet(width_mult=0.5))
    assert pointwise_macs(mobilenet()) / (full - 1024 * 1000) > 0.94


def test_depthwise_separable_reduction_factor_is_exact():
    # Howard et al. eq. 5: separable / standard = 1/N + 1/D_K^2. On conv dw / pw 512 -> 512
    # at 14x14 (Table 1):
    block = mobilenet().stages[3][1]
    assert (block.in_channels, block.out_channels) == (512, 512)
    standard = nn.Conv2d(512, 512, 3, padding=1, bias=False)
    ratio = Fraction(count_macs(block, (512, 14, 14)), count_macs(standard, (512, 14, 14)))
    assert ratio == Fraction(1, 512) + Fraction(1, 9)
    weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert Fraction(weights, standard.weight.numel()) == Fraction(1, 512) + Fraction(1, 9)


def test_separable_convolutions_make_mobilenet_roughly_nine_times_cheaper():
    # Howard et al. 2017, Table 4: Conv MobileNet 4866M mult-adds and 29.3M parameters
    # against 569M and 4.2M; seed 000: "roughly nine times faster".
    conv_model = mobilenet(separable=False)
    conv_macs, separable_macs = count_macs(conv_model), count_macs(mobilenet())
    assert conv_macs / 1e6 == pytest.approx(4866, rel=5e-4)
    assert round(count_params(conv_model) / 1e6, 1) == 29.3
    assert 8 < conv_macs / separable_macs < 9
