"""EfficientNet and MBConv against the paper, torchvision's published numbers and independent
computations (Tan & Le, 2019; torchvision 0.28 metadata in fixtures/torchvision/metadata.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.layers.mbconv import MBConv, SqueezeExcitation, StochasticDepth, make_divisible
from cnnzoo.models.efficientnet import (
    ALPHA,
    BETA,
    GAMMA,
    PHI,
    Scaling,
    compound_scaling,
    variant_scaling,
)
from cnnzoo.torchvision_compat import torchvision_to_cnnzoo_keys

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision"
METADATA = json.loads((FIXTURES / "metadata.json").read_text())["models"]
VARIANTS = [f"b{i}" for i in range(8)]

# The released models' (width, depth, resolution, dropout): the authors' release
# (tensorflow/tpu efficientnet_builder.efficientnet_params), as torchvision 0.28 builds them.
RELEASED = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

# The crop torchvision's weights are evaluated at, where its MACs are measured
# (EfficientNet_B*_Weights transforms); only B2 differs from the released resolution.
TORCHVISION_CROP = {"b0": 224, "b1": 240, "b2": 288, "b3": 300, "b4": 380, "b5": 456, "b6": 528, "b7": 600}


def meta_model(variant: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(f"efficientnet_{variant}", **kwargs)


def meta_macs(model: nn.Module, size: int) -> int:
    with torch.device("meta"):
        return count_macs(model, (3, size, size))


# --- the compound scaling rule ---------------------------------------------------------


def test_rule_constants_double_the_cost_per_step():
    # Section 3.3: alpha * beta^2 * gamma^2 ~= 2, alpha, beta, gamma >= 1.
    assert (ALPHA, BETA, GAMMA) == (1.2, 1.1, 1.15)
    assert abs(ALPHA * BETA**2 * GAMMA**2 - 2) <= 0.1
    assert ALPHA * BETA**2 * GAMMA**2 == pytest.approx(1.92027)


@pytest.mark.parametrize("phi, expected", [
    # Hand-computed: 1.1^phi and 1.2^phi to one decimal, 224 * 1.15^phi to the pixel.
    (0.0, Scaling(1.0, 1.0, 224)),
    (0.5, Scaling(1.0, 1.1, 240)),     # 1.0488, 1.0954, 240.2
    (1.0, Scaling(1.1, 1.2, 258)),     # 1.1, 1.2, 257.6
    (2.0, Scaling(1.2, 1.4, 296)),     # 1.21, 1.44, 296.2
    (3.25, Scaling(1.4, 1.8, 353)),    # 1.3631, 1.8087, 352.8
    (5.0, Scaling(1.6, 2.5, 451)),     # 1.6105, 2.4883, 450.5
    (6.0, Scaling(1.8, 3.0, 518)),     # 1.7716, 2.9860, 518.1
    (7.0, Scaling(1.9, 3.6, 596)),     # 1.9487, 3.5832, 595.8
])
def test_compound_scaling_coefficients(phi, expected):
    assert compound_scaling(phi) == expected


def test_compound_scaling_exact():
    exact = compound_scaling(3.0, decimals=None)
    assert exact.width == pytest.approx(1.331) and exact.depth == pytest.approx(1.728)
    assert exact.resolution == 341  # 224 * 1.520875 = 340.7


def phis_reproducing(width: float, depth: float) -> list[float]:
    """Every phi on a 0.001 grid in [0, 10] whose rule coefficients round to (width, depth)."""
    grid = (i / 1000 for i in range(10_001))
    return [phi for phi in grid if (round(1.1**phi, 1), round(1.2**phi, 1)) == (width, depth)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_which_released_architectures_follow_the_rule(variant):
    """The documented finding: B0..B4's (width, depth) are the rule's at some phi (the one in
    PHI among them); no phi gives B5..B7's, whose depth is shallower than the rule's."""
    width, depth, _, _ = RELEASED[variant]
    phis = phis_reproducing(width, depth)
    if variant in ("b5", "b6", "b7"):
        assert phis == []
        rule = compound_scaling(PHI[variant])
        assert rule.depth > depth
    else:
        assert phis and min(phis) <= PHI[variant] <= max(phis)
    if variant == "b4":
        assert 3.14 < min(phis) and max(phis) < 3.38


@pytest.mark.parametrize("variant", VARIANTS)
def test_released_scaling_is_the_release(variant):
    width, depth, resolution, dropout = RELEASED[variant]
    assert variant_scaling(variant) == Scaling(width, depth, resolution)
    model = meta_model(variant)
    assert model.head.dropout.p == pytest.approx(dropout)
    assert cnnzoo.model_info(f"efficientnet_{variant}").default_input == (3, resolution, resolution)


@pytest.mark.parametrize("phi, released", [(0.0, "b0"), (0.5, "b1"), (1.0, "b2"), (2.0, "b3"), (3.25, "b4")])
def test_rule_builds_the_released_architectures(phi, released):
    # Derived, not copied: the rule at these phi has exactly torchvision's parameter count.
    model = meta_model("b0", scaling="rule", phi=phi)
    assert count_params(model) == METADATA[f"efficientnet_{released}"]["num_params"]


@pytest.mark.parametrize("variant, rule_blocks, released_blocks", [
    # ceil(d * (1, 2, 2, 3, 3, 4, 1)) summed, by hand:
    ("b5", 42, 39),  # d 2.5: 3+5+5+8+8+10+3;   d 2.2: 3+5+5+7+7+9+3
    ("b6", 48, 45),  # d 3.0: 3+6+6+9+9+12+3;   d 2.6: 3+6+6+8+8+11+3
    ("b7", 61, 55),  # d 3.6: 4+8+8+11+11+15+4; d 3.1: 4+7+7+10+10+13+4
])
def test_rule_and_release_part_ways_for_b5_to_b7(variant, rule_blocks, released_blocks):
    def blocks(model: nn.Module) -> int:
        return sum(isinstance(m, MBConv) for m in model.modules())

    assert blocks(meta_model(variant, scaling="rule")) == rule_blocks
    assert blocks(meta_model(variant)) == released_blocks


def test_scaling_options_are_checked():
    with pytest.raises(ValueError, match="scaling"):
        cnnzoo.create_model("efficientnet_b0", scaling="paper")
    with pytest.raises(ValueError, match="phi"):
        cnnzoo.create_model("efficientnet_b0", phi=1.0)
    with pytest.raises(ValueError, match="stochastic_depth must be in"):
        cnnzoo.create_model("efficientnet_b0", stochastic_depth=1.5)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        cnnzoo.create_model("efficientnet_b0", dropout=-0.1)
    # 1.2 ** -30 = 0.004 rounds to a depth multiplier of 0: stages without layers.
    with pytest.raises(ValueError, match="depth=0.0"):
        cnnzoo.create_model("efficientnet_b0", scaling="rule", phi=-30)


# --- the released networks against torchvision and the paper -----------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_equals_torchvision(variant):
    name = f"efficientnet_{variant}"
    expected = METADATA[name]["num_params"]  # torchvision 0.28 weights metadata
    assert count_params(meta_model(variant)) == expected
    assert cnnzoo.model_info(name).params == expected
    if variant == "b0":
        assert expected == 5_288_548


@pytest.mark.parametrize("variant", VARIANTS)
def test_macs_match_torchvision(variant):
    # torchvision's "GFLOPS" are multiply-adds, measured at its weights' evaluation crop.
    expected = METADATA[f"efficientnet_{variant}"]["gmacs"] * 1e9
    macs = meta_macs(meta_model(variant), TORCHVISION_CROP[variant])
    assert abs(macs / expected - 1) < 0.01, (macs, expected)


def test_b2_macs_at_its_released_resolution_match_the_paper():
    # Tan & Le 2019, Table 2: EfficientNet-B2, 1.0B FLOPS (multiply-adds) at 260 x 260.
    macs = meta_macs(meta_model("b2"), 260)
    assert abs(macs / 1.0e9 - 1) < 0.01
    assert cnnzoo.model_info("efficientnet_b2").macs == 1_000_000_000


def test_b0_stages_are_table_1():
    # Table 1: channels 16, 24, 40, 80, 112, 192, 320; layers 1, 2, 2, 3, 3, 4, 1; kernels
    # 3, 3, 5, 3, 5, 5, 3; MBConv1 then MBConv6; stem 32 and head 1280 channels.
    model = meta_model("b0")
    stages = model.stages
    assert [len(stage) for stage in stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [stage[0].out_channels for stage in stages] == [16, 24, 40, 80, 112, 192, 320]
    assert [stage[0].depthwise.conv.kernel_size[0] for stage in stages] == [3, 3, 5, 3, 5, 5, 3]
    assert [stage[0].stride for stage in stages] == [1, 2, 2, 2, 1, 2, 1]
    assert stages[0][0].expand is None and stages[1][0].hidden_channels == 6 * 16
    assert model.stem.conv.out_channels == 32 and model.head_conv.conv.out_channels == 1280
    assert all(isinstance(m.act, nn.SiLU) for m in model.modules() if hasattr(m, "act"))


def test_b7_depth_and_width():
    # d = 3.1: ceil(3.1, 6.2, 6.2, 9.3, 9.3, 12.4, 3.1) = 4, 7, 7, 10, 10, 13, 4 (55 blocks);
    # w = 2.0 doubles every channel count: stem 64, head 2560.
    model = meta_model("b7")
    assert [len(stage) for stage in model.stages] == [4, 7, 7, 10, 10, 13, 4]
    assert [info.channels for info in model.feature_info] == [32, 48, 80, 224, 640]
    assert model.stem.conv.out_channels == 64 and model.head_conv.conv.out_channels == 2560


def test_feature_info_is_one_map_per_stride():
    model = cnnzoo.create_model("efficientnet_b0").eval()
    assert [(i.channels, i.stride) for i in model.feature_info] == [(16, 2), (24, 4), (40, 8), (112, 16), (320, 32)]
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]


def test_stochastic_depth_rises_linearly_over_blocks():
    model = meta_model("b0")
    rates = [block.stochastic_depth.p for stage in model.stages for block in stage]
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])


@pytest.mark.parametrize("variant, eps, momentum", [
    ("b0", 1e-5, 0.1), ("b4", 1e-5, 0.1), ("b5", 1e-3, 0.01), ("b7", 1e-3, 0.01),
])
def test_batch_norm_settings_follow_torchvision(variant, eps, momentum):
    # torchvision builds B5..B7 (weights converted from TensorFlow) with eps 1e-3, momentum 0.01.
    norms = [m for m in meta_model(variant).modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in norms} == {(eps, momentum)}


def test_torchvision_key_renames():
    model = meta_model("b0")
    keys = {
        "features.0.0.weight": "stem.conv.weight",
        "features.0.1.running_var": "stem.bn.running_var",
        "features.1.0.block.0.0.weight": "stages.0.0.depthwise.conv.weight",
        "features.1.0.block.1.fc1.weight": "stages.0.0.se.fc1.weight",
        "features.1.0.block.2.1.bias": "stages.0.0.project.bn.bias",
        "features.2.1.block.0.1.running_mean": "stages.1.1.expand.bn.running_mean",
        "features.2.1.block.1.0.weight": "stages.1.1.depthwise.conv.weight",
        "features.6.3.block.2.fc2.bias": "stages.5.3.se.fc2.bias",
        "features.7.0.block.3.0.weight": "stages.6.0.project.conv.weight",
        "features.8.1.weight": "head_conv.bn.weight",
        "classifier.1.weight": "head.fc.weight",
    }
    renamed = torchvision_to_cnnzoo_keys(model, {k: torch.empty(0) for k in keys})
    assert list(renamed) == list(keys.values())


def test_whole_network_macs_are_the_sum_of_the_formulas():
    model = cnnzoo.create_model("efficientnet_b0", num_classes=10)
    size = 64
    expected = (size // 2) ** 2 * 27 * 32  # stem: 3x3x3 conv to 32 channels, stride 2
    height = size // 2
    for stage in model.stages:
        for block in stage:
            expected += block.macs(height, height)
            height = -(-height // block.stride)
    expected += height * height * 320 * 1280 + 1280 * 10  # head conv and classifier
    assert count_macs(model, (3, size, size)) == expected



def test_stem_stride_1_keeps_a_28x28_input_whole_through_the_stem():
    model = cnnzoo.create_model("efficientnet_b0", num_classes=10, in_chans=1, stem_stride=1).eval()
    assert [i.stride for i in model.feature_info] == [1, 2, 4, 8, 16]
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 1, 28, 28))
    # Stride-1 stem, then the stages' strides 1, 2, 2, 2, 1, 2, 1 with "same" padding (ceil).
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 28, 28), (24, 14, 14), (40, 7, 7), (112, 4, 4), (320, 2, 2)]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_stem_stride_1_costs_what_the_papers_stem_costs_at_twice_the_size():
    # Every map after the stem is the same, and so is the stem's output grid.
    small = cnnzoo.create_model("efficientnet_b0", num_classes=10, in_chans=1, stem_stride=1)
    paper = cnnzoo.create_model("efficientnet_b0", num_classes=10, in_chans=1)
    assert count_params(small) == count_params(paper)
    assert count_macs(small, (1, 28, 28)) == count_macs(paper, (1, 56, 56))


def test_stem_stride_is_1_or_2():
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2"):
        cnnzoo.create_model("efficientnet_b0", stem_stride=4)

# --- MBConv, squeeze-and-excitation, stochastic depth --------------------------------------


@pytest.mark.parametrize("c_in, c_out, stride, residual", [
    (16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (24, 40, 2, False),
])
def test_mbconv_residual_only_when_shapes_allow(c_in, c_out, stride, residual):
    torch.manual_seed(0)
    block = MBConv(c_in, c_out, expand_ratio=6, kernel_size=3, stride=stride).eval()
    assert block.use_residual is residual
    x = torch.randn(2, c_in, 8, 8)
    with torch.no_grad():
        out, branch = block(x), block.branch(x)
        torch.testing.assert_close(out, branch + x if residual else branch)
        # Zeroing the projection's BN scale zeroes the branch: what is left is the shortcut.
        nn.init.zeros_(block.project.bn.weight)
        out = block(x)
    assert out.shape == (2, c_out, 8 // stride, 8 // stride)
    if residual:
        assert torch.equal(out, x)
    else:
        assert torch.equal(out, torch.zeros_like(out))


def test_mbconv_parameters_and_macs_formula():
    # MBConv6 k3 16 -> 24 stride 2 on 112 x 112 (B0's second stage): C_e = 96, C_s = 16/4 = 4.
    block = MBConv(16, 24, expand_ratio=6, kernel_size=3, stride=2)
    c_in, c_e, c_s, c_out, k = 16, 96, 4, 24, 3
    weights = c_in * c_e + k * k * c_e + (2 * c_e * c_s + c_s + c_e) + c_e * c_out
    batch_norm = 2 * (c_e + c_e + c_out)
    assert count_params(block) == weights + batch_norm == 6_004
    macs = 112 * 112 * c_in * c_e + 56 * 56 * c_e * k * k + 2 * c_e * c_s + 56 * 56 * c_e * c_out
    assert block.macs(112, 112) == macs == 29_203_200
    assert count_macs(block, (16, 112, 112)) == macs


def test_mbconv1_has_no_expansion():
    block = MBConv(32, 16, expand_ratio=1, kernel_size=3)
    assert block.expand is None and block.hidden_channels == 32
    assert [name for name, _ in block.named_children()] == ["depthwise", "se", "project", "stochastic_depth"]
    assert block.se.fc1.out_channels == 8  # a quarter of the 32 input channels


def test_mbconv1_never_expands_even_off_the_multiple_of_8():
    # t = 1 means no expansion conv: the depthwise conv reads the 12 input channels directly.
    block = MBConv(12, 12, expand_ratio=1)
    assert block.expand is None and block.hidden_channels == 12
    assert block.depthwise.conv.in_channels == 12
    assert block(torch.randn(1, 12, 5, 5)).shape == (1, 12, 5, 5)


def test_squeeze_width_is_a_quarter_of_the_block_input():
    # Not of the expanded channels: 24 inputs, 144 expanded, 6 squeeze channels.
    assert MBConv(24, 24, expand_ratio=6).se.fc1.out_channels == 6
    assert MBConv(2, 8, expand_ratio=6).se.fc1.out_channels == 1  # max(1, 2 // 4)
    assert isinstance(MBConv(24, 24).project[-1], nn.BatchNorm2d)  # linear bottleneck: no activation


def test_squeeze_excitation_equals_independent_computation():
    torch.manual_seed(0)
    se = SqueezeExcitation(12, 3)
    x = torch.randn(2, 12, 5, 7) * 3
    pooled = x.mean(dim=(2, 3))
    hidden = F.silu(pooled @ se.fc1.weight.flatten(1).T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight.flatten(1).T + se.fc2.bias)
    assert ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(se.channel_weights(x).flatten(1), gate)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_stochastic_depth_is_identity_in_eval():
    x = torch.randn(8, 3, 4, 4)
    drop = StochasticDepth(0.5).eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(StochasticDepth(0.0).train()(x), x)


def test_stochastic_depth_keeps_whole_samples_and_the_expectation():
    torch.manual_seed(0)
    p, n = 0.3, 40_000
    drop = StochasticDepth(p).train()
    out = drop(torch.ones(n, 2, 3, 3))
    per_sample = out.flatten(1)
    # Each sample is dropped or kept whole; survivors are scaled by 1 / (1 - p).
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)
    values = per_sample[:, 0]
    assert torch.all((values == 0) | torch.isclose(values, torch.tensor(1 / (1 - p))))
    kept = (per_sample[:, 0] > 0).float().mean().item()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(kept - (1 - p)) < 5 * sigma
    assert abs(out.mean().item() - 1.0) < 5 * sigma / (1 - p)


def test_stochastic_depth_extremes():
    x = torch.randn(4, 3)
    assert torch.equal(StochasticDepth(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match="drop probability"):
        StochasticDepth(1.5)


@pytest.mark.parametrize("value, expected", [
    (32 * 1.1, 32),     # 35.2 rounds to 32 (9% short, allowed)
    (16 * 1.2, 24),     # 19.2 rounds to 16, 17% short, so one step up
    (1280 * 1.1, 1408),
    (32 * 1.8, 56),     # 57.6
    (3, 8),             # never below the divisor
])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected
