"""The lecture notes' FCN (seed 004's listing, after pochih/FCN-pytorch's FCN16s): x5 + x4,
five 3x3 / stride-2 transposed convs each followed by ReLU and batch norm, a 1x1 classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import summarize
from cnnzoo.models.fcn_deconv import DeconvFCN

BACKBONES = ["vgg16", "resnet18", "mobilenet_v1", "densenet121", "efficientnet_b0", "googlenet"]


def meta_model(**options) -> DeconvFCN:
    with torch.device("meta"):
        return cnnzoo.create_model("fcn_deconv", **options).eval()


def transposed_macs(c_in: int, c_out: int, k: int, h_in: int, w_in: int) -> int:
    """A transposed conv scatters one k x k x C_out kernel copy per input value."""
    return c_in * c_out * k * k * h_in * w_in


def decoder_macs(c5: int, c4: int, height: int, width: int, classes: int) -> dict[str, int]:
    """The decoder's MACs by hand: x5 is H/32 x W/32, each deconv doubles it."""
    widths = [c5, c4, 256, 128, 64, 32]
    macs = {f"deconv{n}": transposed_macs(widths[n - 1], widths[n], 3, height >> (6 - n), width >> (6 - n))
            for n in range(1, 6)}
    macs["classifier"] = 32 * classes * height * width  # 1x1 conv
    return macs


# =============================================================================== structure

def test_layers_are_the_listings():
    model = meta_model(num_classes=21)
    decoder = [(name, type(m)) for name, m in model.named_children() if name != "backbone"]
    expected = [(f"{layer}{n}", kind) for n in range(1, 6)
                for layer, kind in (("deconv", nn.ConvTranspose2d), ("relu", nn.ReLU), ("bn", nn.BatchNorm2d))]
    assert decoder == [*expected, ("classifier", nn.Conv2d)]
    # The listing's source: 512 -> 512 -> 256 -> 128 -> 64 -> 32 on VGG-16, kernel 3, stride 2,
    # padding 1, dilation 1, output padding 1; classifier 1x1, 32 -> n_class.
    widths = [512, 512, 256, 128, 64, 32]
    for n in range(1, 6):
        deconv = getattr(model, f"deconv{n}")
        assert (deconv.in_channels, deconv.out_channels) == (widths[n - 1], widths[n])
        assert (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding, deconv.dilation) == \
            ((3, 3), (2, 2), (1, 1), (1, 1), (1, 1))
        assert getattr(model, f"bn{n}").num_features == widths[n]
    assert model.classifier.kernel_size == (1, 1) and (model.classifier.in_channels, model.classifier.out_channels) == (32, 21)


def test_forward_runs_deconv_relu_bn_five_times_then_the_classifier():
    model = meta_model(backbone="resnet18", num_classes=3)
    calls = []
    for name, module in model.named_children():
        if name != "backbone":
            module.register_forward_hook(lambda m, args, out: calls.append(type(m)))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64, device="meta"))
    assert calls == [nn.ConvTranspose2d, nn.ReLU, nn.BatchNorm2d] * 5 + [nn.Conv2d]


def test_output_is_the_listing_computed_by_hand():
    # bn1(relu(deconv1(x5)) + x4), then bnN(relu(deconvN(.))), then the 1x1 classifier,
    # composed here from torch.nn.functional with the model's own weights.
    torch.manual_seed(0)
    model = cnnzoo.create_model("fcn_deconv", backbone="resnet18", num_classes=3)
    for n in range(1, 6):  # non-trivial batch-norm statistics
        bn = getattr(model, f"bn{n}")
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(1, 3, 64, 96)

    def bn(n: int, t: torch.Tensor) -> torch.Tensor:
        layer = getattr(model, f"bn{n}")
        return F.batch_norm(t, layer.running_mean, layer.running_var, layer.weight, layer.bias, False, 0.0, layer.eps)

    def up(n: int, t: torch.Tensor) -> torch.Tensor:
        layer = getattr(model, f"deconv{n}")
        return F.relu(F.conv_transpose2d(t, layer.weight, layer.bias, stride=2, padding=1, output_padding=1))

    with torch.no_grad():
        stages = model.backbone.forward_features(x)
        x4, x5 = stages[3], stages[4]  # ResNet-18: layer3 (stride 16), layer4 (stride 32)
        assert x5.shape[-2:] == (2, 3) and x4.shape[-2:] == (4, 6)
        score = bn(1, up(1, x5) + x4)
        for n in range(2, 6):
            score = bn(n, up(n, score))
        expected = F.conv2d(score, model.classifier.weight, model.classifier.bias)
        torch.testing.assert_close(model(x), expected)


# =============================================================================== sizes and backbones

@pytest.mark.parametrize("backbone", BACKBONES)
def test_logits_at_the_input_resolution_on_any_backbone(backbone):
    model = meta_model(backbone=backbone, num_classes=5)
    stages = {info.stride: info.channels for info in model.backbone.feature_info}
    assert (model.deconv1.in_channels, model.deconv1.out_channels) == (stages[32], stages[16])
    with torch.no_grad():
        for height, width in ((224, 224), (160, 192), (97, 33), (1, 1)):
            assert model(torch.zeros(2, 3, height, width, device="meta")).shape == (2, 5, height, width)


def test_real_forward_and_backward_reach_every_parameter():
    torch.manual_seed(0)
    model = cnnzoo.create_model("fcn_deconv", backbone="resnet18", num_classes=4).train()
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 4, 64, 96) and torch.isfinite(out).all()
    out.mean().backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("backbone, message", [
    ("alexnet", "unpadded convolutions"),
    ("squeezenet1_0", "needs backbone stages at strides 16, 32; SqueezeNet has stages at strides 2, 4, 8, 16"),
    ("fcn8s", "'fcn8s' is a segmentation model"),
])
def test_unusable_backbones_are_value_errors(backbone, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model("fcn_deconv", backbone=backbone)


# =============================================================================== costs

@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, extra, size", [
    (3, 5, 3, 2, 1, 1, (7, 9)),
    (4, 6, 4, 3, 0, 0, (5, 2)),  # the grid is the input's, not the (larger) output's
    (8, 2, 1, 1, 0, 0, (3, 3)),
])
def test_transposed_conv_macs_are_c_in_c_out_k_k_h_in_w_in(c_in, c_out, kernel, stride, padding, extra, size):
    layer = nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding, output_padding=extra)
    summary = summarize(layer, (c_in, *size))
    assert summary.total.macs == transposed_macs(c_in, c_out, kernel, *size)


@pytest.mark.parametrize("backbone, c5, c4, size", [
    ("vgg16", 512, 512, (224, 224)),
    ("resnet18", 512, 256, (224, 224)),
    ("mobilenet_v1", 1024, 512, (160, 192)),
])
def test_decoder_macs_in_the_summary_are_the_formulas(backbone, c5, c4, size):
    model = meta_model(backbone=backbone, num_classes=21)
    summary = summarize(model, (3, *size))
    rows = {row.name: row.macs for row in summary.rows if row.name.startswith(("deconv", "classifier"))}
    expected = decoder_macs(c5, c4, *size, classes=21)
    assert rows == expected
    if backbone == "vgg16":  # the module docstring's figures
        assert expected["deconv1"] == 115_605_504 and sum(v for k, v in expected.items() if k != "classifier") == 1_040_449_536
