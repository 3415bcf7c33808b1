"""ResNet, plain nets, CIFAR ResNets and ResNeXt against their papers and independent computations.

He et al., "Deep Residual Learning for Image Recognition", 2016 (Tables 1, 2, 6; sec. 3.3, 4.2);
Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", 2017 (Table 1,
Fig. 3, Table 7); torchvision 0.28's published metadata (tests/fixtures/torchvision/metadata.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.layers.residual import (
    BasicBlock,
    Bottleneck,
    ZeroPadShortcut,
    bottleneck_width,
    make_shortcut,
    residual_stage,
)
from cnnzoo.models.resnet import ResNet, cifar_resnet

METADATA = json.loads((Path(__file__).parent / "fixtures" / "torchvision" / "metadata.json").read_text())["models"]


def meta_model(name: str, **kwargs) -> nn.Module:
    """Build on the meta device: shapes only, so even ResNeXt-101 is instant."""
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


def meta_macs(name: str, **kwargs) -> int:
    with torch.device("meta"):
        return count_macs(cnnzoo.create_model(name, **kwargs), cnnzoo.model_info(name).default_input)


def randomize_batch_norm(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so BN is not an identity."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.5, generator=generator)
            bn.running_var.uniform_(0.5, 2.0, generator=generator)
            bn.weight.data.uniform_(0.5, 1.5, generator=generator)
            bn.bias.data.normal_(0, 0.5, generator=generator)


def bn_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)


# --------------------------------------------------------------------------- parameters


# He et al. 2016, Table 6: parameters of the CIFAR-10 ResNets, printed with two significant digits.
TABLE6_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}


@pytest.mark.parametrize("depth", sorted(TABLE6_PARAMS))
def test_cifar_resnet_parameters_match_table6(depth):
    model = meta_model(f"resnet{depth}")
    assert float(f"{count_params(model):.2g}") == TABLE6_PARAMS[depth]


@pytest.mark.parametrize("depth", sorted(TABLE6_PARAMS))
def test_cifar_resnet_has_6n_plus_2_weighted_layers(depth):
    # Option-A shortcuts have no weights, so every conv and linear layer is on the main path.
    model = meta_model(f"resnet{depth}")
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == depth
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


@pytest.mark.parametrize("depth", sorted(TABLE6_PARAMS))
def test_cifar_plain_net_has_exactly_the_resnet_parameters(depth):
    # Sec. 4.2: "exactly the same depth, width, and number of parameters as the plain counterparts".
    assert count_params(meta_model(f"plain{depth}")) == count_params(meta_model(f"resnet{depth}"))


@pytest.mark.parametrize("depth", [18, 34])
def test_imagenet_plain_net_equals_option_a_resnet(depth):
    # Sec. 4.1: with option-A shortcuts the ResNets have "no extra parameter compared to the plain counterparts".
    plain = count_params(meta_model(f"plain{depth}"))
    assert plain == count_params(meta_model(f"resnet{depth}", shortcut_type="A"))
    # Option B adds one 1x1 projection + BN where the width doubles (conv3_1, conv4_1, conv5_1).
    projections = sum(c_in * c_out + 2 * c_out for c_in, c_out in [(64, 128), (128, 256), (256, 512)])
    assert count_params(meta_model(f"resnet{depth}")) - plain == projections


def test_option_c_projects_every_shortcut():
    # ResNet-34 (Table 1: 3-4-6-3 basic blocks of 64 .. 512): option C adds a 1x1 conv + BN per block.
    depths, widths = (3, 4, 6, 3), (64, 128, 256, 512)
    extra, c_in = 0, 64
    for depth, width in zip(depths, widths):
        for _ in range(depth):
            extra += c_in * width + 2 * width
            c_in = width
    assert count_params(meta_model("resnet34", shortcut_type="C")) - count_params(meta_model("plain34")) == extra


def test_resnext29_parameters_match_table7():
    # Xie et al. 2017, Table 7: ResNeXt-29, 8x64d: 34.4M parameters.
    assert round(count_params(meta_model("resnext29_8x64d")) / 1e6, 1) == 34.4


def test_resnext50_matches_resnet50_complexity():
    # Xie et al. 2017, Table 1: ResNet-50 25.5M / 4.1 G multiply-adds, ResNeXt-50 (32x4d) 25.0M / 4.2 G.
    # (Xie et al. count the stride-on-3x3 ResNet-50, as torchvision; He et al.'s Table 1 says 3.8 G.)
    assert round(meta_macs("resnet50") / 1e9, 1) == 4.1
    assert round(count_params(meta_model("resnext50_32x4d")) / 1e6, 1) == 25.0
    assert round(meta_macs("resnext50_32x4d") / 1e9, 1) == 4.2


# --------------------------------------------------------------------------- multiply-adds


@pytest.mark.parametrize("name", sorted(METADATA.keys() & {n for n in cnnzoo.list_models() if "res" in n}))
def test_macs_match_torchvision(name):
    # torchvision's published "GFLOPS" are multiply-adds at 224x224.
    expected = METADATA[name]["gmacs"] * 1e9
    assert abs(meta_macs(name) - expected) <= 0.01 * expected


@pytest.mark.parametrize("name, published", [("plain18", 1.8e9), ("plain34", 3.6e9)])
def test_plain_macs_match_table1(name, published):
    # He et al. 2016, Table 1 / sec. 3.3: 1.8 and 3.6 billion FLOPs (multiply-adds), one decimal.
    assert round(meta_macs(name) / 1e8) * 1e8 == published


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_cifar_macs_follow_the_architecture(depth):
    """Sum of H*W*C_out*9*C_in over the 6n+2 layers of sec. 4.2 (option A costs nothing)."""
    n = (depth - 2) // 6
    conv = lambda size, c_in, c_out: size * size * c_out * 9 * c_in  # noqa: E731
    expected = conv(32, 3, 16)
    expected += 2 * n * conv(32, 16, 16)
    expected += conv(16, 16, 32) + (2 * n - 1) * conv(16, 32, 32)
    expected += conv(8, 32, 64) + (2 * n - 1) * conv(8, 64, 64)
    expected += 64 * 10  # fc
    assert meta_macs(f"resnet{depth}") == expected


# --------------------------------------------------------------------------- blocks


def test_basic_block_is_the_seed_004_forward():
    """identity + bn2(conv2(relu(bn1(conv1(x))))), then ReLU: written out with F.conv2d / F.batch_norm."""
    generator = torch.Generator().manual_seed(4)
    block = BasicBlock(16, 16)
    randomize_batch_norm(block, generator)
    block.eval()
    x = torch.randn(2, 16, 9, 9, generator=generator)

    out = F.conv2d(x, block.conv1.conv.weight, padding=1)
    out = F.relu(bn_eval(out, block.conv1.bn))
    out = F.conv2d(out, block.conv2.conv.weight, padding=1)
    out = bn_eval(out, block.conv2.bn)
    expected = F.relu(out + x)

    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


def test_projection_block_matches_functional_computation():
    """A stride-2 block that doubles the width: the shortcut is BN(W_s x) with a 1x1 stride-2 W_s."""
    generator = torch.Generator().manual_seed(5)
    block = BasicBlock(8, 16, stride=2, shortcut_type="B")
    randomize_batch_norm(block, generator)
    block.eval()
    x = torch.randn(2, 8, 10, 10, generator=generator)

    out = F.relu(bn_eval(F.conv2d(x, block.conv1.conv.weight, stride=2, padding=1), block.conv1.bn))
    out = bn_eval(F.conv2d(out, block.conv2.conv.weight, padding=1), block.conv2.bn)
    shortcut = bn_eval(F.conv2d(x, block.downsample.conv.weight, stride=2), block.downsample.bn)

    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(out + shortcut))


@pytest.mark.parametrize("block_type, planes", [(BasicBlock, 8), (Bottleneck, 2)])
def test_shortcut_switch_removes_the_addition(block_type, planes):
    """With the conv weights zeroed F(x) = 0: the residual block gives relu(x), its plain twin zeros."""
    residual = block_type(8, planes, shortcut=True).eval()
    plain = block_type(8, planes, shortcut=False).eval()
    assert plain.downsample is None
    for block in (residual, plain):
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.zeros_(conv.weight)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(residual(x), F.relu(x))
        torch.testing.assert_close(plain(x), torch.zeros_like(x))


def test_plain_and_residual_blocks_have_the_same_layers():
    residual, plain = BasicBlock(16, 16), BasicBlock(16, 16, shortcut=False)
    assert {k: v.shape for k, v in residual.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}


def test_option_a_shortcut_is_a_fixed_identity_projection():
    """Option A = a 1x1 stride-2 conv whose weight is the 16x16 identity padded with 16 zero rows."""
    x = torch.randn(2, 16, 9, 9)
    weight = torch.cat([torch.eye(16), torch.zeros(16, 16)]).view(32, 16, 1, 1)
    expected = F.conv2d(x, weight, stride=2)
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    torch.testing.assert_close(shortcut(x), expected)
    assert count_params(shortcut) == 0
    # Its output matches the 3x3 stride-2 conv of the main path, even on an odd size.
    assert shortcut(x).shape[-2:] == F.conv2d(x, torch.zeros(1, 16, 3, 3), stride=2, padding=1).shape[-2:]


def test_shortcut_choice():
    assert isinstance(make_shortcut(16, 16, 1, "A"), nn.Identity)
    assert isinstance(make_shortcut(16, 16, 1, "B"), nn.Identity)
    assert count_params(make_shortcut(16, 16, 1, "C")) == 16 * 16 + 2 * 16
    assert isinstance(make_shortcut(16, 32, 2, "A"), ZeroPadShortcut)
    assert count_params(make_shortcut(16, 32, 2, "B")) == 16 * 32 + 2 * 32
    with pytest.raises(ValueError, match="shortcut_type"):
        make_shortcut(16, 32, 2, "D")
    with pytest.raises(ValueError, match="cannot reduce"):
        ZeroPadShortcut(32, 16, 2)


def test_bottleneck_strides_the_3x3_and_expands_by_4():
    block = Bottleneck(256, 128, stride=2)  # conv3_1 of ResNet-50
    assert block.conv1.conv.stride == (1, 1) and block.conv2.conv.stride == (2, 2)
    assert block.out_channels == 512
    # Weights: C_in w + 9 w^2 + 4 C w, plus the projection C_in * 4C (BN excluded).
    conv_weights = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert conv_weights == 256 * 128 + 9 * 128 * 128 + 128 * 512 + 256 * 512


# --------------------------------------------------------------------------- ResNeXt


@pytest.mark.parametrize("cardinality, base_width, widths", [
    (1, 64, (64, 128, 256, 512)),        # ResNet-50 (He et al. 2016, Table 1)
    (32, 4, (128, 256, 512, 1024)),      # ResNeXt-50 32x4d (Xie et al. 2017, Table 1)
    (32, 8, (256, 512, 1024, 2048)),     # ResNeXt-101 32x8d
    (2, 40, (80, 160, 320, 640)),        # 2x40d of Table 2 (Xie et al. 2017): floor(64 * 40 / 64) * 2
])
def test_bottleneck_width_formula(cardinality, base_width, widths):
    assert tuple(bottleneck_width(planes, cardinality, base_width) for planes in (64, 128, 256, 512)) == widths


def test_resnext_stages_use_the_template_widths():
    model = meta_model("resnext50_32x4d")
    widths = [getattr(model, f"layer{i}")[0].conv2.conv for i in range(1, 5)]
    assert [(c.in_channels, c.groups) for c in widths] == [(128, 32), (256, 32), (512, 32), (1024, 32)]
    cifar = meta_model("resnext29_8x64d")
    assert [cifar.get_submodule(f"layer{i}.0.conv2.conv").in_channels for i in (1, 2, 3)] == [512, 1024, 2048]


def test_grouped_3x3_has_one_over_cardinality_of_the_weights():
    grouped = Bottleneck(256, 64, cardinality=32, base_width=4)   # width 128 in 32 groups
    dense = Bottleneck(256, 64, cardinality=1, base_width=128)    # width 128, one group
    assert grouped.width == dense.width == 128
    assert grouped.conv2.conv.weight.numel() == 9 * 128 * 128 // 32
    assert dense.conv2.conv.weight.numel() == 32 * grouped.conv2.conv.weight.numel()


def test_grouped_bottleneck_aggregates_cardinality_paths():
    """Xie et al. 2017, Fig. 3: form (c), one grouped conv, equals form (a), the sum over C paths
    of 1x1 (d channels) -> 3x3 -> 1x1 transformations, each path using its slice of the weights."""
    generator = torch.Generator().manual_seed(3)
    cardinality, d = 4, 2
    block = Bottleneck(16, 4, cardinality=cardinality, base_width=d * 64 // 4, shortcut=False)
    assert block.width == cardinality * d
    randomize_batch_norm(block, generator)
    block.eval()
    x = torch.randn(2, 16, 6, 6, generator=generator)

    def slice_bn(bn: nn.BatchNorm2d, part: slice) -> nn.BatchNorm2d:
        sliced = nn.BatchNorm2d(part.stop - part.start).eval()
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(sliced, name).data.copy_(getattr(bn, name)[part])
        return sliced

    aggregated = 0
    for path in range(cardinality):
        part = slice(path * d, (path + 1) * d)
        t = F.relu(bn_eval(F.conv2d(x, block.conv1.conv.weight[part]), slice_bn(block.conv1.bn, part)))
        t = F.relu(bn_eval(F.conv2d(t, block.conv2.conv.weight[part], padding=1), slice_bn(block.conv2.bn, part)))
        aggregated = aggregated + F.conv2d(t, block.conv3.conv.weight[:, part])
    expected = F.relu(bn_eval(aggregated, block.conv3.bn))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


# --------------------------------------------------------------------------- models


def test_imagenet_feature_info_follows_table1():
    model = meta_model("resnet50")
    assert [(f.channels, f.stride) for f in model.feature_info] == [(64, 2), (256, 4), (512, 8), (1024, 16), (2048, 32)]
    assert [f.channels for f in meta_model("resnet18").feature_info] == [64, 64, 128, 256, 512]


def test_cifar_stages_are_32_16_8():
    model = cnnzoo.create_model("resnet20").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert model(torch.randn(1, 3, 31, 31)).shape == (1, 10)  # odd sizes: option A subsamples like the conv


def test_zero_init_residual_starts_blocks_as_identities():
    model = cnnzoo.create_model("resnet18", zero_init_residual=True).eval()
    last_norms = [block.conv2.bn.weight for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    assert all(torch.count_nonzero(w) == 0 for w in last_norms)
    x = torch.relu(torch.randn(1, 64, 8, 8))  # layer1 sees the (non-negative) max-pool output
    with torch.no_grad():
        torch.testing.assert_close(model.layer1(x), x)
    bottleneck = cnnzoo.create_model("resnext50_32x4d", zero_init_residual=True)
    assert torch.count_nonzero(bottleneck.layer4[2].conv3.bn.weight) == 0


def test_invalid_options():
    with pytest.raises(ValueError, match="zero_init_residual needs shortcuts"):
        ResNet(BasicBlock, (1, 1), widths=(8, 16), stem="cifar", stem_width=8, shortcut=False, zero_init_residual=True)
    with pytest.raises(ValueError, match="stem"):
        ResNet(BasicBlock, (1,), widths=(8,), stem="tiny")
    with pytest.raises(ValueError, match="cardinality"):
        BasicBlock(8, 8, cardinality=2)
    with pytest.raises(ValueError, match="bad option"):
        cnnzoo.create_model("plain18", zero_init_residual=True)
    # The plain twin has no shortcut, but a misspelt type is still an error, not ignored.
    with pytest.raises(ValueError, match="shortcut_type"):
        BasicBlock(8, 8, shortcut=False, shortcut_type="b")
    with pytest.raises(ValueError, match="at least one block"):
        residual_stage(BasicBlock, 8, 8, depth=0)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(2, num_classes=10, in_chans=3)  # n = 0 would be no network at all
    with pytest.raises(ValueError, match="no channels"):
        bottleneck_width(4, cardinality=4, base_width=8)  # floor(4 * 8 / 64) = 0 per group


def test_residual_stage_has_depth_blocks_and_only_the_first_strides():
    stage = residual_stage(BasicBlock, 16, 32, depth=3, stride=2, shortcut_type="A")
    assert len(stage) == 3
    assert [block.conv1.conv.stride for block in stage] == [(2, 2), (1, 1), (1, 1)]
    assert [(block.in_channels, block.out_channels) for block in stage] == [(16, 32), (32, 32), (32, 32)]
    assert isinstance(stage[0].downsample, ZeroPadShortcut) and isinstance(stage[1].downsample, nn.Identity)


def test_published_numbers_are_registered():
    assert cnnzoo.model_info("resnet20").default_input == (3, 32, 32)
    assert cnnzoo.model_info("resnet20").dataset == "CIFAR-10"
    # Table 2 (10-crop top-1 error): plain-34 is worse than plain-18, ResNet-34 better than ResNet-18.
    assert cnnzoo.model_info("plain34").top1 < cnnzoo.model_info("plain18").top1
    for name in ("resnet18", "resnet50", "resnext50_32x4d", "resnext101_32x8d"):
        info = cnnzoo.model_info(name)
        assert info.params == METADATA[name]["num_params"]
        assert info.top1 == METADATA[name]["top1"]
