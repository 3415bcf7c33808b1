"""The conv-family building blocks against exact formulas and independent computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers import (
    ClassifierHead,
    ConvNormAct,
    ConvTransposeNormAct,
    DepthwiseSeparableConv,
    FactorizedConv,
    FullyConvHead,
    MaxPoolWithIndices,
    MaxUnpool,
    conv_norm_act,
    depthwise_conv,
    dilated_conv,
    grouped_conv,
    pointwise_conv,
    same_padding,
)
from cnnzoo.layers.conv import FixedUnpool
from cnnzoo.layers.upsample import UnpoolStage


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_conv_norm_act_children_and_defaults():
    block = ConvNormAct(8, 16, 3)
    assert [name for name, _ in block.named_children()] == ["conv", "bn", "act"]
    assert block.conv.bias is None  # BN after the conv makes a bias redundant
    assert block.conv.padding == (1, 1)
    assert ConvNormAct(8, 16, 3, norm_layer=None).conv.bias is not None
    assert [n for n, _ in ConvNormAct(8, 16, 3, act_layer=None).named_children()] == ["conv", "bn"]


def test_conv_norm_act_alias_passes_every_conv_parameter():
    block = conv_norm_act(8, 16, (3, 5), stride=2, padding=0, dilation=2, groups=4, act_layer=nn.ReLU6)
    conv = block.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (8, 16, (3, 5))
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 2), (0, 0), (2, 2), 4)
    assert isinstance(block.act, nn.ReLU6) and block.act.inplace
    # A "valid" conv: (21 - 2*(3-1) - 1) // 2 + 1 = 9 rows, (21 - 2*(5-1) - 1) // 2 + 1 = 7 columns.
    assert block(torch.randn(1, 8, 21, 21)).shape == (1, 16, 9, 7)


def test_conv_norm_act_equals_functional_composition():
    torch.manual_seed(0)
    block = ConvNormAct(4, 6, (3, 5), stride=2, dilation=(1, 2)).eval()
    nn.init.normal_(block.bn.running_mean)
    nn.init.uniform_(block.bn.running_var, 0.5, 2.0)
    x = torch.randn(2, 4, 17, 19)
    conv = block.conv
    expected = F.relu(F.batch_norm(
        F.conv2d(x, conv.weight, None, 2, conv.padding, (1, 2)),
        block.bn.running_mean, block.bn.running_var, block.bn.weight, block.bn.bias, False, 0.0, block.bn.eps,
    ))
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("kernel, dilation, expected", [(3, 1, (1, 1)), (5, 1, (2, 2)), (3, 2, (2, 2)), ((1, 7), 1, (0, 3)), (3, 4, (4, 4))])
def test_same_padding_keeps_size(kernel, dilation, expected):
    assert same_padding(kernel, dilation) == expected
    out = ConvNormAct(2, 2, kernel, dilation=dilation)(torch.randn(1, 2, 21, 21))
    assert out.shape[-2:] == (21, 21)


def test_grouped_conv_has_one_over_g_weights():
    # CSE 465 / van der Maaten: each of g groups sees C_in/g channels -> 1/g of the weights.
    standard, grouped = ConvNormAct(64, 128, 3), grouped_conv(64, 128, 3, groups=8)
    assert conv_weights(grouped) * 8 == conv_weights(standard) == 3 * 3 * 64 * 128


def test_grouped_conv_groups_do_not_mix():
    block = grouped_conv(4, 4, 1, groups=2, norm_layer=None, act_layer=None)
    x = torch.randn(1, 4, 5, 5)
    x_changed = x.clone()
    x_changed[:, 2:] += 1.0  # only the second group's input changes
    delta = block(x_changed) - block(x)
    assert torch.count_nonzero(delta[:, :2]) == 0
    assert torch.count_nonzero(delta[:, 2:]) > 0


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups=3 must divide"):
        ConvNormAct(8, 16, groups=3)


def test_depthwise_is_in_equals_groups_equals_out():
    block = depthwise_conv(32, 3, stride=2)
    assert block.conv.groups == block.conv.in_channels == block.conv.out_channels == 32
    assert conv_weights(block) == 3 * 3 * 32


def test_depthwise_separable_weights_72_vs_162():
    # CS-568 (Nazar Khan): 3x3 filters from 6 to 3 channels: 3*3*6*3 = 162 weights as a
    # standard conv, (3*3*6) + (6*3) = 72 as depthwise separable.
    assert conv_weights(ConvNormAct(6, 3, 3)) == 162
    assert conv_weights(DepthwiseSeparableConv(6, 3, 3)) == 72


def test_depthwise_separable_children_and_relu6():
    block = DepthwiseSeparableConv(8, 16, act_layer=nn.ReLU6)
    assert [n for n, _ in block.named_children()] == ["depthwise", "pointwise"]
    assert isinstance(block.depthwise.act, nn.ReLU6) and isinstance(block.pointwise.act, nn.ReLU6)
    assert block(torch.randn(1, 8, 9, 9)).shape == (1, 16, 9, 9)


def test_pointwise_is_a_per_pixel_linear_combination():
    block = pointwise_conv(5, 3, norm_layer=None, act_layer=None)
    x = torch.randn(2, 5, 4, 6)
    weight = block.conv.weight.view(3, 5)
    expected = torch.einsum("oc,nchw->nohw", weight, x) + block.conv.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(block(x), expected)


def test_factorized_7x7_has_14_of_49_weights_and_same_window():
    # Szegedy et al. 2016 / seed 002: 1x7 + 7x1 = 14 weights per channel pair instead of 49.
    fact = FactorizedConv(1, 1, n=7, norm_layer=None, act_layer=None)
    assert conv_weights(fact) == 14
    assert conv_weights(ConvNormAct(1, 1, 7)) == 49
    x = torch.zeros(1, 1, 15, 15, requires_grad=True)
    nn.init.constant_(fact.conv_1xn.conv.weight, 1.0)
    nn.init.constant_(fact.conv_nx1.conv.weight, 1.0)
    fact(x)[0, 0, 7, 7].backward()
    touched = torch.nonzero(x.grad[0, 0])
    assert touched.min(0).values.tolist() == [4, 4] and touched.max(0).values.tolist() == [10, 10]
    assert len(touched) == 49


def test_dilated_conv_sees_wider_window():
    block = dilated_conv(1, 1, 3, dilation=4, norm_layer=None, act_layer=None)
    x = torch.zeros(1, 1, 21, 21, requires_grad=True)
    block(x)[0, 0, 10, 10].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist()
    assert rows == [6, 10, 14]  # taps 4 pixels apart: the kernel spans (3-1)*4+1 = 9 pixels


def test_transposed_conv_reproduces_the_lecture_example():
    # AIL 862 lecture 5: input [[0,1],[2,3]], kernel [[0,1],[2,3]], stride 2 -> the 4x4 map of
    # the kernel scaled by each input value and placed 2 pixels apart.
    block = ConvTransposeNormAct(1, 1, 2, stride=2, bias=False)
    block.conv.weight.data = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2)
    out = block(torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2))
    expected = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 3.0], [0.0, 2.0, 0.0, 3.0], [4.0, 6.0, 6.0, 9.0]])
    torch.testing.assert_close(out[0, 0], expected)


def test_transposed_conv_with_norm_and_activation():
    block = ConvTransposeNormAct(4, 6, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU)
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "act"]
    assert block.conv.bias is None  # the BN's shift replaces it
    out = block.eval()(torch.randn(2, 4, 3, 5))
    assert out.shape == (2, 6, 6, 10) and (out >= 0).all()


@pytest.mark.parametrize("size, k, s, p, op", [(5, 2, 2, 0, 0), (7, 3, 2, 1, 1), (4, 4, 2, 1, 0)])
def test_transposed_conv_output_size_formula(size, k, s, p, op):
    block = ConvTransposeNormAct(3, 2, k, stride=s, padding=p, output_padding=op)
    assert block(torch.randn(1, 3, size, size)).shape[-1] == (size - 1) * s - 2 * p + (k - 1) + op + 1


def test_max_unpool_puts_maxima_back():
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [0.0, 0.0, 1.0, 1.0], [9.0, 2.0, 1.0, 7.0]]).view(1, 1, 4, 4)
    pooled, indices = MaxPoolWithIndices(2)(x)
    assert pooled.flatten().tolist() == [5.0, 8.0, 9.0, 7.0]
    restored = MaxUnpool(2)(pooled, indices)
    expected = torch.zeros(4, 4)
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 5.0, 8.0, 9.0, 7.0
    torch.testing.assert_close(restored[0, 0], expected)


def test_max_unpool_restores_odd_sizes_when_told():
    x = torch.randn(1, 2, 7, 9)
    pooled, indices = MaxPoolWithIndices(2)(x)
    assert MaxUnpool(2)(pooled, indices, output_size=x.shape[-2:]).shape == x.shape


@pytest.mark.parametrize("shape, size", [((6, 8), None), ((7, 9), (7, 9))])
def test_max_unpool_under_tracing_is_the_eager_unpooling(shape, size):
    # Under torch.jit.trace MaxUnpool calls the ATen operator itself; without a size it
    # must give F.max_unpool2d's own default, (n - 1) * stride + kernel.
    x = torch.randn(1, 2, *shape)
    pooled, indices = MaxPoolWithIndices(2)(x)
    unpool = MaxUnpool(2)
    with torch.no_grad():
        traced = torch.jit.trace(lambda p, i: unpool(p, i, output_size=size), (pooled, indices), check_trace=False)
        out = traced(pooled, indices)
    assert out.shape[-2:] == shape
    torch.testing.assert_close(out, F.max_unpool2d(pooled, indices, 2, output_size=shape), rtol=0, atol=0)


def test_fixed_unpool_is_a_bed_of_nails_of_any_stride():
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)
    out = FixedUnpool(3)(x, None)
    assert out.shape == (1, 1, 6, 9)
    assert torch.equal(out[0, 0, ::3, ::3], x[0, 0]) and out.sum() == x.sum()  # zeros elsewhere
    assert FixedUnpool(2)(x, output_size=(5, 5)).shape == (1, 1, 5, 5)
    assert not list(FixedUnpool().parameters())


def test_unpool_stage_unpools_then_convolves():
    torch.manual_seed(0)
    stage = UnpoolStage([6, 6, 4], transposed=True, identity_output=True).eval()
    assert [type(layer).__name__ for layer in stage.convs] == ["ConvTransposeNormAct", "ConvTransposeNormAct"]
    assert [type(m).__name__ for m in stage.convs[-1]] == ["ConvTranspose2d"]  # the identity output
    x = torch.randn(2, 6, 7, 9)
    pooled, indices = MaxPoolWithIndices(2)(x)
    with torch.no_grad():
        expected = stage.convs(F.max_unpool2d(pooled, indices, 2, output_size=(7, 9)))
        torch.testing.assert_close(stage(pooled, indices, (7, 9)), expected)
    plain = UnpoolStage([6, 4], unpool="fixed")
    assert [type(m).__name__ for m in plain.convs[0]] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert isinstance(plain.unpool, FixedUnpool)
    with pytest.raises(ValueError, match="unpool must be one of"):
        UnpoolStage([6, 4], unpool="nearest")
    with pytest.raises(ValueError, match="at least one conv"):
        UnpoolStage([6])


def test_fully_conv_head_takes_any_size_and_is_a_softmax_of_pooled_scores():
    # CS-568: K 1x1 convolutions, global pooling in each channel, softmax; any input size.
    head = FullyConvHead(16, 5)
    assert n_params(head) == 16 * 5 + 5
    for size in (1, 7, 13):
        x = torch.randn(2, 16, size, size + 3)
        expected = (torch.einsum("kc,nchw->nkhw", head.score.weight.view(5, 16), x) + head.score.bias.view(1, 5, 1, 1)).mean((2, 3))
        torch.testing.assert_close(head(x), expected)
        probs = head.predict_proba(x)
        torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_classifier_head_pools_then_classifies():
    head = ClassifierHead(8, 3)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(head(x), x.mean((2, 3)) @ head.fc.weight.T + head.fc.bias)


@pytest.mark.parametrize("head", [ClassifierHead, FullyConvHead])
def test_heads_refuse_a_dropout_that_is_not_a_probability(head):
    assert isinstance(head(8, 3, dropout=0.0).dropout, nn.Identity)
    assert head(8, 3, dropout=0.3).dropout.p == 0.3
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout must be a probability"):
            head(8, 3, dropout=bad)
