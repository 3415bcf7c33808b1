"""AlexNet and VGG against their papers' tables, torchvision's published numbers and the
lecture's arithmetic (CSE 465 / Krippahl notes: 11x11 = 121 weights, 3x3 stacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.models.alexnet import ConvLayer, min_input_size, paper_lrn
from cnnzoo.models.vgg import VGG, VGG_CONFIGS

TORCHVISION = json.loads((Path(__file__).parent / "fixtures" / "torchvision" / "metadata.json").read_text())["models"]


def on_meta(name: str, **kwargs) -> nn.Module:
    """Build a model without allocating its weights (enough for shapes and counts)."""
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


# ---------------------------------------------------------------- AlexNet (2012)

def test_alexnet_original_has_the_papers_parameter_count():
    # Krizhevsky et al. 2012, section 3.5 / Figure 2, layer by layer: weights + biases.
    # Grouped layers (two GPUs) see half of the previous layer's kernels.
    expected = (
        11 * 11 * 3 * 96 + 96            # conv1: 96 kernels 11x11x3
        + 5 * 5 * 48 * 256 + 256         # conv2: 256 kernels 5x5x48
        + 3 * 3 * 256 * 384 + 384        # conv3: 384 kernels 3x3x256 (both GPUs)
        + 3 * 3 * 192 * 384 + 384        # conv4: 384 kernels 3x3x192
        + 3 * 3 * 192 * 256 + 256        # conv5: 256 kernels 3x3x192
        + 6 * 6 * 256 * 4096 + 4096      # fc6
        + 4096 * 4096 + 4096             # fc7
        + 4096 * 1000 + 1000             # fc8
    )
    assert expected == 60_965_224  # "60 million parameters" (abstract)
    model = on_meta("alexnet_original")
    assert count_params(model) == expected
    assert cnnzoo.model_info("alexnet_original").params == expected


def test_alexnet_original_two_towers_are_grouped_convolutions():
    model = cnnzoo.create_model("alexnet_original")
    assert [c.groups for c in convs(model)] == [1, 2, 1, 2, 2]  # conv2, conv4, conv5 stay on one GPU
    assert [c.out_channels for c in convs(model)] == [96, 256, 384, 384, 256]
    assert [tuple(c.kernel_size) for c in convs(model)] == [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)]
    # A grouped conv is two independent halves: the first half of the output depends only
    # on the first half of the input.
    conv2 = convs(model)[1]
    x = torch.randn(1, 96, 13, 13)
    y = x.clone()
    y[:, 48:] = torch.randn(1, 48, 13, 13)
    with torch.no_grad():
        torch.testing.assert_close(conv2(x)[:, :128], conv2(y)[:, :128])
        assert not torch.allclose(conv2(x)[:, 128:], conv2(y)[:, 128:])


def test_alexnet_original_layer_order_and_map_sizes():
    model = cnnzoo.create_model("alexnet_original").eval()
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == [
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
        "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d",
    ]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping pooling, s < z
    # 227x227 input: conv1 gives the paper's 55x55x96 ((227 - 11) / 4 + 1); the pooled maps
    # are 27, 13 and 6 pixels, and fc6 reads 6 * 6 * 256.
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        assert model.features[:2](x).shape == (1, 96, 55, 55)
        sizes = [f.shape[1:] for f in model.forward_features(x)]
    assert sizes == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]
    assert model.classifier[0].in_features == 9216
    # Dropout on the outputs of fc6 and fc7 ("the first two fully-connected layers").
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]


def test_paper_lrn_is_the_papers_formula():
    # b_i = a_i / (k + alpha * sum_{j=i-2}^{i+2} a_j^2)^beta, with n=5, k=2, alpha=1e-4, beta=0.75
    torch.manual_seed(0)
    a = torch.randn(2, 7, 3, 4) * 30  # large activations so the alpha term matters
    squares = torch.nn.functional.pad(a.square(), (0, 0, 0, 0, 2, 2))
    window_sums = sum(squares[:, j:j + 7] for j in range(5))
    expected = a / (2.0 + 1e-4 * window_sums) ** 0.75
    torch.testing.assert_close(paper_lrn()(a), expected)


def test_alexnet_minimum_input_follows_from_the_layer_table():
    # Backwards from a 1x1 pool5, each layer needs s * (n - 1) + k - 2p pixels for n out:
    # pool5 3, conv5..conv3 (3x3, pad 1) keep 3, pool2 7, conv2 (5x5, pad 2) keeps 7, pool1 15,
    # conv1 (11x11/4) 4 * 14 + 11 - 2p: 63 with torchvision's p = 2 (its AlexNet_Weights
    # metadata: min_size 63x63), 67 with the paper's p = 0.
    assert on_meta("alexnet").min_input_size == 63
    assert on_meta("alexnet_original").min_input_size == 67
    # One layer: a 5x5 stride-2 conv with padding 1 before the 3x3/2 pool: 2 * (3 - 1) + 5 - 2 = 7.
    assert min_input_size([ConvLayer(8, 5, 2, 1, pool=True)]) == 7


def test_alexnet_conv1_needs_121_weights_per_input_channel():
    # Krippahl notes: "11x11 kernel, 121 weights per input channel".
    for name in ("alexnet", "alexnet_original"):
        conv1 = convs(on_meta(name))[0]
        out_channels, in_channels, kh, kw = conv1.weight.shape
        assert kh * kw == 121
        assert conv1.weight.numel() == 121 * in_channels * out_channels


def test_alexnet_single_tower_matches_torchvision_layout_facts():
    model = on_meta("alexnet")
    assert [c.out_channels for c in convs(model)] == [64, 192, 384, 256, 256]
    assert all(c.groups == 1 for c in convs(model))
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    # torchvision AlexNet_Weights.IMAGENET1K_V1 num_params
    assert count_params(model) == 61_100_840


# ---------------------------------------------------------------- VGG (2015)

@pytest.mark.parametrize("depth, letter, millions", [(11, "A", 133), (13, "B", 133), (16, "D", 138), (19, "E", 144)])
def test_vgg_configurations_match_table_1_and_2(depth, letter, millions):
    # Simonyan & Zisserman, Table 1: "11 weight layers" = 8 convs + 3 fc for A, and so on;
    # Table 2: parameters (in millions) 133, 133, 138, 144 for A, B, D, E.
    model = on_meta(f"vgg{depth}")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs(model)) + len(linears) == depth
    assert sum(VGG_CONFIGS[depth]) == depth - 3
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs(model))
    assert round(count_params(model) / 1e6) == millions


def test_vgg_needs_one_depth_per_stage():
    with pytest.raises(ValueError, match="5 stages, got 3"):
        VGG(depths=(1, 1, 1))


def test_vgg16_parameter_count():
    # torchvision VGG16_Weights.IMAGENET1K_V1 num_params; the paper's "138M" (Table 2).
    assert count_params(on_meta("vgg16")) == 138_357_544


def test_vgg16_macs_equal_the_layer_by_layer_formula():
    # Each 3x3 conv costs H * W * C_out * 9 * C_in at its stage's resolution; fc layers in * out.
    expected, channels, size = 0, 3, 224
    for depth, width in zip(VGG_CONFIGS[16], (64, 128, 256, 512, 512)):
        for _ in range(depth):
            expected += size * size * width * 9 * channels
            channels = width
        size //= 2
    expected += 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert count_macs(cnnzoo.create_model("vgg16")) == expected


def test_vgg_bn_puts_batch_norm_after_every_conv():
    model = on_meta("vgg13_bn")
    layers = list(model.features)
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[index + 1], nn.BatchNorm2d)
            assert isinstance(layers[index + 2], nn.ReLU)
            assert layer.bias is not None  # torchvision's checkpoints carry conv biases
    assert not any(isinstance(m, nn.BatchNorm2d) for m in on_meta("vgg13").modules())


def test_vgg_stages_are_the_pooled_maps_an_fcn_reads():
    model = cnnzoo.create_model("vgg11", num_classes=5).eval()
    assert [(f.channels, f.stride, f.name) for f in model.feature_info] == [
        (64, 2, "pool1"), (128, 4, "pool2"), (256, 8, "pool3"), (512, 16, "pool4"), (512, 32, "pool5"),
    ]
    with torch.no_grad():
        maps = model.forward_features(torch.randn(1, 3, 224, 224))
    assert [m.shape[-1] for m in maps] == [112, 56, 28, 14, 7]


@pytest.mark.parametrize("layers, window, stacked, single", [(2, 5, 18, 25), (3, 7, 27, 49), (5, 11, 45, 121)])
def test_stacked_3x3_convs_see_a_large_window_with_fewer_weights(layers, window, stacked, single):
    # Krippahl notes: 3x3 + 3x3 = 18 weights per channel against 25 for one 5x5; five 3x3
    # = 45 against 121 for 11x11. Measured on VGG's own 3x3 convs (one channel, weights 1):
    # the receptive field is where the gradient of the centre output is non-zero.
    stack = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(layers)])
    template = convs(on_meta("vgg11"))[0]
    for conv in stack:
        assert conv.kernel_size == template.kernel_size and conv.padding == template.padding
        nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 31, 31, requires_grad=True)
    stack(x)[0, 0, 15, 15].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (window, window)
    assert sum(conv.weight.numel() for conv in stack) == stacked
    assert window * window == single


# ---------------------------------------------------------------- costs vs torchvision

@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet"] + [f"vgg{d}{bn}" for d in VGG_CONFIGS for bn in ("", "_bn")])
def test_macs_within_one_percent_of_torchvision(name):
    # torchvision 0.28 weights metadata: "GFLOPS" are multiply-adds at 224x224.
    published = TORCHVISION[name]["gmacs"] * 1e9
    assert cnnzoo.model_info(name).macs == pytest.approx(published)
    assert count_macs(cnnzoo.create_model(name), (3, 224, 224)) == pytest.approx(published, rel=0.01)


def test_alexnet_original_macs_equal_the_layer_table():
    # H_out * W_out * C_out * k^2 * C_in / g per conv at 227x227 (maps 55, 27, 13, 13, 13),
    # plus the three fully connected layers.
    expected = (
        55 * 55 * 96 * 121 * 3
        + 27 * 27 * 256 * 25 * 48
        + 13 * 13 * 384 * 9 * 256
        + 13 * 13 * 384 * 9 * 192
        + 13 * 13 * 256 * 9 * 192
        + 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    )
    assert count_macs(cnnzoo.create_model("alexnet_original"), (3, 227, 227)) == expected


# ---------------------------------------------------------------- small inputs (28x28)

def test_vgg_small_input_rounds_its_pools_up_and_reads_the_1x1_pool5_map():
    model = cnnzoo.create_model("vgg11_bn", num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        maps = model.forward_features(torch.randn(2, 1, 28, 28))
    assert [m.shape[-1] for m in maps] == [14, 7, 4, 2, 1]  # ceil(28 / 2), ceil(14 / 2), ...
    assert [m.in_features for m in model.modules() if isinstance(m, nn.Linear)] == [512, 512, 512]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.randn(1, 1, 1, 1)).shape == (1, 10)  # rounding up keeps a 1x1 map


def test_vgg_small_input_costs_equal_the_layer_by_layer_formulas():
    # Configuration A at 28x28 with one input channel and 10 classes: 3x3 convs (bias, then
    # BN with a scale and a shift) at 28, 14, 7, 4, 2 pixels; fc 512 - 512 - 512 - 10.
    params = macs = 0
    channels, size = 1, 28
    for depth, width in zip(VGG_CONFIGS[11], (64, 128, 256, 512, 512)):
        for _ in range(depth):
            params += 9 * channels * width + width + 2 * width
            macs += size * size * width * 9 * channels
            channels = width
        size = -(-size // 2)
    for fan_in, fan_out in ((512, 512), (512, 512), (512, 10)):
        params += fan_in * fan_out + fan_out
        macs += fan_in * fan_out
    model = cnnzoo.create_model("vgg11_bn", num_classes=10, in_chans=1, small_input=True)
    assert (count_params(model), count_macs(model, (1, 28, 28))) == (params, macs) == (9_755_274, 134_281_216)


def test_alexnet_small_input_keeps_28_pixels_through_conv1():
    model = cnnzoo.create_model("alexnet", num_classes=10, in_chans=1, small_input=True).eval()
    conv1 = convs(model)[0]
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((5, 5), (1, 1), (2, 2))
    with torch.no_grad():
        sizes = [f.shape[1:] for f in model.forward_features(torch.randn(1, 1, 28, 28))]
    assert sizes == [(64, 13, 13), (192, 6, 6), (256, 2, 2)]  # (28 - 3) // 2 + 1 = 13, then 6, 2
    assert [m.in_features for m in model.modules() if isinstance(m, nn.Linear)] == [1024, 1024, 1024]
    # Backwards from a 1x1 pool5 as above, with conv1 5x5 / 1 / pad 2 keeping pool1's 15.
    assert model.min_input_size == 15
    with pytest.raises(ValueError, match="15"):
        model(torch.randn(1, 1, 14, 14))


def test_alexnet_small_input_macs_equal_the_layer_table():
    # Single tower at 28x28, one channel: conv1 at 28, conv2 at 13, conv3-5 at 6, fc 1024 wide.
    expected = (
        28 * 28 * 64 * 25 * 1
        + 13 * 13 * 192 * 25 * 64
        + 6 * 6 * 384 * 9 * 192
        + 6 * 6 * 256 * 9 * 384
        + 6 * 6 * 256 * 9 * 256
        + 1024 * 1024 + 1024 * 1024 + 1024 * 10
    )
    model = cnnzoo.create_model("alexnet", num_classes=10, in_chans=1, small_input=True)
    assert count_macs(model, (1, 28, 28)) == expected
    # The two-tower table keeps its groups and LRN; only conv1 changes.
    original = cnnzoo.create_model("alexnet_original", num_classes=10, in_chans=1, small_input=True)
    assert [c.groups for c in convs(original)] == [1, 2, 1, 2, 2]
    assert convs(original)[0].kernel_size == (5, 5)
    assert any(isinstance(m, nn.LocalResponseNorm) for m in original.modules())


@pytest.mark.parametrize("name", ["vgg11_bn", "alexnet"])
def test_small_input_heads_convolutionalize_to_the_same_scores(name):
    # FCN's convolutionalization (Long et al. 2015, section 3.1) of the adapted head: fc6 as a
    # conv spanning pool5 (1x1 for VGG, 2x2 for AlexNet) gives the classifier's logits.
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        scores = nn.Sequential(*model.head_convolutions())(model.forward_features(x)[-1])
        torch.testing.assert_close(scores.flatten(1), model(x), rtol=1e-4, atol=1e-5)
