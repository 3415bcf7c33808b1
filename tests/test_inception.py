"""GoogLeNet, Inception v3 and their modules against published numbers and exact formulas.

Published figures come from torchvision 0.28's weights metadata (tests/fixtures/torchvision/
metadata.json: num_params, _ops in G multiply-adds) and from the papers' tables:
Szegedy et al., "Going Deeper with Convolutions", 2015 (Table 1) and "Rethinking the
Inception Architecture for Computer Vision", 2016 (Table 1, grid sizes 35 / 17 / 8).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.layers.inception import (
    InceptionA,
    InceptionAuxV3,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionV1,
    imagenet_to_inception_input,
    inception_v1_params,
)
from cnnzoo.models.googlenet import GoogLeNetOutputs
from cnnzoo.models.inception_v3 import InceptionV3Outputs

# GoogLeNet, Table 1: input channels, then #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_TABLE_1 = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
# Table 1's "output size" depth column, in the same order.
GOOGLENET_OUTPUT_DEPTHS = (256, 480, 512, 512, 512, 528, 832, 832, 1024)


def build_on_meta(name: str, **kwargs) -> nn.Module:
    """Shapes and counts only: no memory, no initialization time."""
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


def conv_weight_count(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="module")
def googlenet_aux() -> nn.Module:
    torch.manual_seed(0)
    return cnnzoo.create_model("googlenet", aux_logits=True, num_classes=10)


@pytest.fixture(scope="module")
def inception_v3() -> nn.Module:
    torch.manual_seed(0)
    return cnnzoo.create_model("inception_v3", num_classes=10)


# --- parameter counts (torchvision 0.28: GoogLeNet_Weights / Inception_V3_Weights num_params,
# and the layouts of tests/fixtures/torchvision/*.json) --------------------------------------


@pytest.mark.parametrize("name, kwargs, expected", [
    ("googlenet", {}, 6_624_904),                        # published num_params (no aux heads)
    ("googlenet", {"aux_logits": True}, 13_004_888),     # torchvision layout with aux1, aux2
    ("inception_v3", {}, 27_161_264),                    # published num_params (with AuxLogits)
    ("inception_v3", {"aux_logits": False}, 23_834_568),
])
def test_parameter_counts(name, kwargs, expected):
    assert count_params(build_on_meta(name, **kwargs)) == expected


def test_registry_carries_the_published_numbers():
    googlenet, v3 = cnnzoo.model_info("googlenet"), cnnzoo.model_info("inception_v3")
    assert (googlenet.params, googlenet.top1, googlenet.default_input) == (6_624_904, 69.778, (3, 224, 224))
    assert (v3.params, v3.top1, v3.default_input) == (27_161_264, 77.294, (3, 299, 299))


def test_paper_5x5_adds_16_weights_per_channel_pair_of_the_wide_branch():
    # 5x5 - 3x3 = 16 more weights for each (#5x5 reduce, #5x5) channel pair of Table 1.
    extra = 16 * sum(row[4] * row[5] for row in GOOGLENET_TABLE_1.values())
    assert count_params(build_on_meta("googlenet", paper_5x5=True)) == 6_624_904 + extra == 7_005_832


# --- Inception v1 module against GoogLeNet's Table 1 ----------------------------------------


@pytest.mark.parametrize("name", GOOGLENET_TABLE_1)
@pytest.mark.parametrize("wide_kernel", [3, 5])
def test_inception_v1_module_channels_and_parameters(name, wide_kernel):
    c_in, n1, r3, n3, r5, n5, pool_proj = GOOGLENET_TABLE_1[name]
    module = InceptionV1(c_in, n1, r3, n3, r5, n5, pool_proj, wide_kernel=wide_kernel)
    out = module(torch.randn(1, c_in, 7, 7))
    assert out.shape == (1, n1 + n3 + n5 + pool_proj, 7, 7) and module.out_channels == out.shape[1]
    # Weights: the four 1x1 convs reading the input, the 3x3 and the wide conv on the reductions.
    weights = c_in * n1 + c_in * r3 + 9 * r3 * n3 + c_in * r5 + wide_kernel**2 * r5 * n5 + c_in * pool_proj
    batch_norm = 2 * (n1 + r3 + n3 + r5 + n5 + pool_proj)   # scale and shift per conv output
    assert conv_weight_count(module) == weights
    assert count_params(module) == weights + batch_norm == inception_v1_params(c_in, n1, r3, n3, r5, n5, pool_proj, wide_kernel)


def test_table_1_output_depths_chain_through_googlenet():
    model = build_on_meta("googlenet")
    depths = tuple(getattr(model, name).out_channels for name in GOOGLENET_TABLE_1)
    assert depths == GOOGLENET_OUTPUT_DEPTHS
    for name, row in GOOGLENET_TABLE_1.items():
        assert getattr(model, name).in_channels == row[0]


def test_inception_3a_costs_128M_multiply_adds():
    # Table 1, inception (3a): 128M ops on the 28x28 grid, with the paper's 5x5 branch.
    module = InceptionV1(*GOOGLENET_TABLE_1["inception3a"], wide_kernel=5)
    macs = count_macs(module, (192, 28, 28))
    assert macs == 28 * 28 * conv_weight_count(module) == 128_049_152


# --- Inception v3: factorization 7x7 -> 1x7 + 7x1 (seed 002: 7 + 7 = 14 vs 49) ---------------


def test_factorized_7x7_has_14_49ths_of_the_weights():
    block = InceptionC(768, channels_7x7=192)
    factorized = block.branch7x7_2.conv.weight.numel() + block.branch7x7_3.conv.weight.numel()
    full = nn.Conv2d(192, 192, 7, bias=False).weight.numel()
    assert block.branch7x7_2.conv.kernel_size == (1, 7) and block.branch7x7_3.conv.kernel_size == (7, 1)
    assert factorized * 49 == full * 14


def input_window_of_one_output(convs: nn.Module, channels: int, size: int = 21) -> torch.Tensor:
    """Where the input gradient of the centre output pixel is non-zero (its receptive field)."""
    torch.manual_seed(0)
    x = torch.randn(1, channels, size, size, requires_grad=True)
    out = convs(x)
    centre = out.shape[-1] // 2
    out[0, :, centre, centre].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)) > 0


def centred_square(size: int, side: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    lo = size // 2 - side // 2
    mask[lo:lo + side, lo:lo + side] = True
    return mask


def test_factorized_pair_sees_exactly_a_7x7_window():
    block = InceptionC(16, channels_7x7=8)
    pair = nn.Sequential(block.branch7x7_2.conv, block.branch7x7_3.conv)   # the linear part
    assert torch.equal(input_window_of_one_output(pair, 8), centred_square(21, 7))


def test_two_factorized_pairs_see_a_13x13_window():
    block = InceptionC(16, channels_7x7=8)
    convs = nn.Sequential(*(getattr(block, f"branch7x7dbl_{i}").conv for i in (2, 3, 4, 5)))
    assert torch.equal(input_window_of_one_output(convs, 8), centred_square(21, 13))


# --- Inception v3 modules: the grid sizes and depths of the paper's Table 1 -------------------


@pytest.mark.parametrize("module, c_in, grid, out_channels, out_grid", [
    (lambda: InceptionA(192, pool_features=32), 192, 35, 256, 35),
    (lambda: InceptionA(256, pool_features=64), 256, 35, 288, 35),
    (lambda: InceptionB(288), 288, 35, 768, 17),          # grid reduction 35 -> 17
    (lambda: InceptionC(768, channels_7x7=128), 768, 17, 768, 17),
    (lambda: InceptionD(768), 768, 17, 1280, 8),          # grid reduction 17 -> 8
    (lambda: InceptionE(1280), 1280, 8, 2048, 8),
])
def test_inception_v3_module_shapes(module, c_in, grid, out_channels, out_grid):
    block = module().eval()
    with torch.no_grad():
        out = block(torch.randn(1, c_in, grid, grid))
    assert out.shape == (1, out_channels, out_grid, out_grid) and block.out_channels == out_channels


def test_inception_v3_feature_grids_at_299(inception_v3):
    # 299 -> 147 (stem) -> 73 -> 35 -> 17 -> 8: the 35x35, 17x17 and 8x8 grids of Table 1.
    inception_v3.eval()
    with torch.no_grad():
        features = inception_v3.forward_features(torch.randn(1, 3, 299, 299))
    assert [f.shape[-1] for f in features] == [147, 73, 35, 17, 8]
    assert [f.shape[1] for f in features] == [64, 80, 288, 768, 2048]


# --- multiply-adds within 1% of torchvision's published _ops (G multiply-adds) ---------------


@pytest.mark.parametrize("name, size, published_gmacs", [("googlenet", 224, 1.498), ("inception_v3", 299, 5.713)])
def test_macs_match_torchvision(name, size, published_gmacs):
    model = build_on_meta(name).to_empty(device="cpu")
    assert count_macs(model, (3, size, size)) == pytest.approx(published_gmacs * 1e9, rel=0.01)


# --- auxiliary classifiers: outputs in training mode only -------------------------------------


def test_googlenet_aux_outputs_in_training_only(googlenet_aux):
    x = torch.randn(2, 3, 64, 64)
    googlenet_aux.train()
    out = googlenet_aux(x)
    assert isinstance(out, GoogLeNetOutputs) and len(out) == 3
    assert all(o.shape == (2, 10) for o in out)
    googlenet_aux.eval()
    with torch.no_grad():
        assert googlenet_aux(x).shape == (2, 10)


def test_googlenet_without_aux_heads_returns_logits_in_training():
    model = cnnzoo.create_model("googlenet", num_classes=10).train()
    assert not hasattr(model, "aux1")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("size", [75, 299])   # the minimum (adaptive aux pool) and the default
def test_inception_v3_aux_output_in_training_only(inception_v3, size):
    x = torch.randn(2, 3, size, size)
    inception_v3.train()
    with torch.no_grad():
        out = inception_v3(x)
    assert isinstance(out, InceptionV3Outputs) and [o.shape for o in out] == [(2, 10), (2, 10)]
    inception_v3.eval()
    with torch.no_grad():
        assert inception_v3(x).shape == (2, 10)


def test_v3_aux_pool_is_the_papers_5x5_stride_3_on_the_17x17_grid():
    x = torch.randn(1, 768, 17, 17)
    torch.testing.assert_close(InceptionAuxV3.pool(x), F.avg_pool2d(x, 5, stride=3), rtol=0, atol=0)
    assert InceptionAuxV3.pool(torch.randn(1, 768, 3, 3)).shape[-2:] == (5, 5)


# --- initialization (torchvision's scheme) --------------------------------------------------


def weight_std(modules) -> float:
    return torch.cat([m.weight.flatten() for m in modules]).std().item()


def test_googlenet_weights_are_normal_with_std_0_01(googlenet_aux):
    layers = [m for m in googlenet_aux.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weight_std(layers) == pytest.approx(0.01, rel=0.01)  # millions of draws
    norms = [m for m in googlenet_aux.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in norms)


def test_inception_v3_init_is_0_1_except_the_wide_aux_layers(inception_v3):
    aux = inception_v3.AuxLogits
    body = [m for name, m in inception_v3.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not name.startswith("AuxLogits")]
    assert weight_std(body) == pytest.approx(0.1, rel=0.01)
    assert weight_std([aux.conv0.conv]) == pytest.approx(0.1, rel=0.05)
    assert weight_std([aux.conv1.conv]) == pytest.approx(0.01, rel=0.01)  # 5x5x128x768 weights
    assert weight_std([aux.fc]) == pytest.approx(0.001, rel=0.05)          # 768x10 weights


# --- transform_input --------------------------------------------------------------------------


def test_transform_input_turns_imagenet_normalization_into_minus_one_to_one():
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    image = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(imagenet_to_inception_input((image - mean) / std), (image - 0.5) / 0.5)


def test_transform_input_needs_rgb():
    with pytest.raises(ValueError, match="in_chans=3"):
        cnnzoo.create_model("googlenet", transform_input=True, in_chans=1)
