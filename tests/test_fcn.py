"""convolutionalize and FCN-32s / 16s / 8s (Long, Shelhamer and Darrell, CVPR 2015)."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import summarize
from cnnzoo.layers.context import ContextModule
from cnnzoo.layers.heads import fc_classifier
from cnnzoo.models._base import Classifier, he_normal_init
from cnnzoo.models.alexnet import AlexNet, ConvLayer
from cnnzoo.models.convolutionalize import ConvolutionalizedClassifier, conv_from_linear, convolutionalize
from cnnzoo.models.dilated import DilatedFrontEnd
from cnnzoo.models.fcn import FCN, Grid
from cnnzoo.models.vgg import VGG, VGG_CONFIGS
from cnnzoo.utils.meta import meta_copy

CLASSIFIERS = cnnzoo.list_models(task="classification")
# The deepest variants repeat a smaller sibling's head; on the meta device they still take
# seconds (hundreds of layers to copy and trace), so they run with the slow tests.
BIG = {"densenet161", "densenet169", "densenet201", "resnet101", "resnet152", "resnext101_32x8d",
       "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}


# =============================================================================== helpers

def small_fc_vgg16(num_classes: int = 10, hidden: int = 16) -> VGG:
    """VGG-16 with its real convolutions but fc6 / fc7 16 wide instead of 4096 (fc6 alone
    would be 103 million weights): the same code paths at a fraction of the cost."""
    with torch.device("meta"):
        vgg = VGG(VGG_CONFIGS[16], num_classes=num_classes)
    vgg.features.to_empty(device="cpu")
    he_normal_init(vgg.features)
    torch.manual_seed(0)
    vgg.classifier = fc_classifier(512 * 7 * 7, num_classes, hidden=hidden)
    return vgg.eval()


def randomize_scores(model: nn.Module) -> None:
    """Give the zero-initialized score layers random weights, so outputs are not all zero."""
    torch.manual_seed(1)
    for name, module in model.named_modules():
        if name.startswith("score") and isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.1)
            nn.init.normal_(module.bias, 0.0, 0.1)


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs).eval()


def meta_input(channels: int, height: int, width: int | None = None) -> torch.Tensor:
    return torch.zeros(1, channels, height, width or height, device="meta")


# =============================================================================== convolutionalize

def test_vgg16_score_map_sizes():
    conv = convolutionalize(meta_model("vgg16"))
    assert isinstance(conv, ConvolutionalizedClassifier)
    # fc6 spans VGG's 7x7 map of stride 32: 224 gives one window, 384 gives (384/32 - 7 + 1)^2.
    assert conv.min_input_size == 224 and conv.stride == 32
    assert conv(meta_input(3, 224)).shape == (1, 1000, 1, 1)
    assert conv(meta_input(3, 384)).shape == (1, 1000, 6, 6)
    assert conv(meta_input(3, 384, 512)).shape == (1, 1000, 6, 10)
    with pytest.raises(ValueError, match="at least 224x224"):
        conv(meta_input(3, 223, 224))
    fc6 = conv.head[0]
    assert isinstance(fc6, nn.Conv2d) and fc6.weight.shape == (4096, 512, 7, 7)
    assert [m.kernel_size for m in conv.head if isinstance(m, nn.Conv2d)] == [(7, 7), (1, 1), (1, 1)]
    assert not any(isinstance(m, (nn.Linear, nn.AdaptiveAvgPool2d)) for m in conv.modules())


def test_score_map_positions_are_the_classifier_head_on_each_window():
    # Independent check: position (i, j) of the convolutional head on a 12x12 map (a 384x384
    # image) equals the classifier's own linear layers on the 7x7 window at (i, j).
    vgg = small_fc_vgg16()
    conv = convolutionalize(vgg).eval()
    torch.manual_seed(0)
    fmap = torch.randn(2, 512, 12, 12)
    with torch.no_grad():
        scores = conv.head(fmap)
        assert scores.shape == (2, 10, 6, 6)
        for i in range(6):
            for j in range(6):
                expected = vgg.forward_head(fmap[..., i : i + 7, j : j + 7])
                torch.testing.assert_close(scores[..., i, j], expected, atol=1e-5, rtol=1e-5)


def test_score_map_equals_the_classifier_on_each_crop_of_an_unpadded_net():
    # Without padding, position (i, j) of the score map is exactly the classifier applied to
    # the crop at (32 i, 32 j): every layer's stride divides 32. (With padded convs the crop
    # sees zeros where the large image has pixels, so this holds only away from the borders.)
    layers = (
        ConvLayer(8, 11, 4, 0, pool=True),
        ConvLayer(8, 5, 1, 0, pool=True),
        ConvLayer(8, 3, 1, 0),
        ConvLayer(8, 3, 1, 0),
        ConvLayer(8, 3, 1, 0, pool=True),
    )
    torch.manual_seed(0)
    net = AlexNet(layers, num_classes=5).eval()
    # From a 6x6 pool5 back through the table: 6 -> 13 -> 15 -> 17 -> 19 -> 39 -> 43 -> 87 -> 355.
    crop = 355
    assert net.forward_features(torch.zeros(1, 3, crop, crop))[-1].shape[-1] == 6
    conv = convolutionalize(net).eval()
    assert conv.min_input_size == crop
    x = torch.randn(1, 3, crop + 64, crop + 32)
    with torch.no_grad():
        scores = conv(x)
        assert scores.shape == (1, 5, 3, 2)
        for i in range(3):
            for j in range(2):
                window = x[..., 32 * i : 32 * i + crop, 32 * j : 32 * j + crop]
                torch.testing.assert_close(scores[..., i, j], net(window), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_vgg16_scores_equal_its_logits_at_224():
    torch.manual_seed(0)
    vgg = cnnzoo.create_model("vgg16").eval()
    conv = convolutionalize(vgg).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        logits = vgg(x)
        scores = conv(x)
    assert scores.shape == (1, 1000, 1, 1)
    torch.testing.assert_close(scores.flatten(1), logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name, size", [
    ("alexnet", 223), ("resnet18", 64), ("resnet20", 32), ("mobilenet_v1", 64), ("efficientnet_b0", 64),
    ("densenet121", 32), ("googlenet", 32), ("squeezenet1_1", 64),
])
def test_scores_give_the_logits(name, size):
    # fc heads at the design size: a 1x1 map equal to the logits; global-average-pool heads
    # at any size: the mean of the score map (averaging and a linear map commute).
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=7).eval()
    conv = convolutionalize(model).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = model(x)
        scores = conv(x)
    assert scores.shape[:2] == (2, 7)
    torch.testing.assert_close(scores.mean(dim=(2, 3)), logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in BIG else name for name in CLASSIFIERS
])
def test_every_registered_classifier_convolutionalizes(name):
    model = meta_model(name, num_classes=7)
    conv = convolutionalize(model).eval()
    minimum = conv.min_input_size
    assert minimum >= model.min_input_size
    channels = cnnzoo.model_info(name).default_input[0]
    with torch.no_grad():
        scores = conv(meta_input(channels, minimum))
        assert scores.shape[:2] == (1, 7)
        if minimum > 1:
            with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
                conv(meta_input(channels, minimum - 1, minimum))
    assert not any(isinstance(m, nn.Linear) for m in conv.modules()), "every dense layer became a conv"
    # Same weights, reshaped: the parameter count is the classifier's without auxiliary heads.
    aux = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in ("aux1", "aux2", "AuxLogits"))
    assert sum(p.numel() for p in conv.parameters()) == sum(p.numel() for p in model.parameters()) - aux


def test_convolutionalize_copies_and_keeps_the_mode():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet18", num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv = convolutionalize(model)
    assert conv.training and hasattr(model, "head")
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the classifier is unchanged"
    assert not convolutionalize(model.eval()).training


def test_unknown_heads_are_value_errors():
    with pytest.raises(ValueError, match="cannot convolutionalize a Sequential"):
        convolutionalize(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)))

    class Custom(Classifier):
        def __init__(self):
            super().__init__(2, 3)

    with pytest.raises(ValueError, match="cannot convolutionalize a Custom"):
        convolutionalize(Custom())


def test_conv_from_linear_checks_the_shape():
    linear = nn.Linear(2 * 3 * 3, 4)
    conv = conv_from_linear(linear, 2, 3)
    x = torch.randn(5, 2, 3, 3)
    torch.testing.assert_close(conv(x).flatten(1), linear(x.flatten(1)))
    with pytest.raises(ValueError, match="not a 2x2 convolution over 2 channels"):
        conv_from_linear(linear, 2, 2)


def test_meta_copy_computes_nothing_and_keeps_the_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    twin = meta_copy(model)
    assert all(p.device.type == "meta" for p in twin.parameters())
    assert all(b.device.type == "meta" for b in twin.buffers())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert twin(torch.zeros(1, 3, 9, 9, device="meta")).shape == (1, 4, 7, 7)


# =============================================================================== FCN: registry and sizes

VARIANTS = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


@pytest.mark.parametrize("name", VARIANTS)
def test_registered(name):
    info = cnnzoo.model_info(name)
    assert info.task == "segmentation" and info.family == "fcn" and info.year == 2015
    assert info.default_input == (3, 500, 500) and info.min_input_size == 1
    assert info.defaults["num_classes"] == 21 and info.defaults["backbone"] == "vgg16"
    model = meta_model(name)
    assert isinstance(model, FCN) and model.output_stride == VARIANTS[name]
    assert model.min_input_size == info.min_input_size


@pytest.mark.parametrize("align", ["same", "paper"])
@pytest.mark.parametrize("name", VARIANTS)
def test_output_has_the_input_size_for_every_size(name, align):
    model = meta_model(name, num_classes=4, in_chans=2, align=align)
    with torch.no_grad():
        for height in [*range(1, 70), 95, 96, 97, 255, 500, 511, 513]:
            assert model(meta_input(2, height, 97)).shape == (1, 4, height, 97), height
        with pytest.raises(ValueError, match="at least 1x1"):
            model(meta_input(2, 0, 5))  # the minimum is 1: one pixel less raises
        with pytest.raises(ValueError, match="input channel"):
            model(meta_input(3, 32))


@pytest.mark.parametrize("name, offsets", [
    # The reference Caffe nets' Crop layers (shelhamer/fcn.berkeleyvision.org, voc-fcn*s):
    # score_pool4c offset 5, score_pool3c offset 9, final crops 19 / 27 / 31.
    ("fcn32s", {"output": 19}),
    ("fcn16s", {"score_pool4": 5, "output": 27}),
    ("fcn8s", {"score_pool4": 5, "score_pool3": 9, "output": 31}),
])
def test_paper_alignment_reproduces_the_reference_crop_offsets(name, offsets):
    assert meta_model(name, align="paper").crop_offsets == offsets
    assert meta_model(name).crop_offsets == {key: 0 for key in offsets}


def test_grid_follows_unit_centres():
    # conv1_1 of the paper: 3x3, padding 100 -> unit 0 centred on pixel -99; a 2x2/2 pool
    # then centres unit 0 between pixels -99 and -98.
    grid = Grid().conv(3, 1, 100).conv(2, 2)
    assert grid == Grid(2, -98.5)
    up = Grid(32, 15.5).transposed(4, 2, 1)  # "same" x2 upsampling of a stride-32 map
    assert up == Grid(16, 7.5) and Grid(16, 7.5).offset_of(up) == 0
    with pytest.raises(ValueError, match="cannot be cropped"):
        Grid(16, 7.5).offset_of(Grid(16, 0.0))


# Centre (in image pixels) of unit 0 of the maps at strides 8, 16, 32, by hand from the layer
# table. "same": 3x3 convs with padding 1 move nothing and each 2x2/2 pool adds half its
# input's stride: 0.5, 1.5, 3.5 (pool3), 7.5 (pool4), 15.5 (pool5; fc6 padded by 3 keeps it).
# "paper": conv1_1's padding of 100 starts at -99, then -98.5, -97.5, -95.5 (pool3),
# -91.5 (pool4), -83.5 (pool5), and the valid 7x7 fc6 adds 3 x 32: 12.5.
UNIT_CENTRES = {"same": {8: 3.5, 16: 7.5, 32: 15.5}, "paper": {8: -95.5, 16: -91.5, 32: 12.5}}


@pytest.mark.parametrize("align", ["same", "paper"])
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_skips_and_upsampling_are_aligned(stride, align):
    # Bilinear interpolation reproduces an affine function exactly (away from the borders).
    # Replace every score map by the affine function "row + 2 col" of its units' centres in
    # image pixels: if every crop and upsampling is aligned, each map brings row + 2 col of
    # the output pixel, so FCN-8s outputs 3 (row + 2 col), FCN-16s 2 (...), FCN-32s 1 (...).
    fcn = FCN.from_classifier(small_fc_vgg16(), num_classes=2, output_stride=stride, align=align).eval()
    size = 256
    with torch.no_grad():
        shapes = {s: t.shape for s, t in meta_copy(fcn).encode(meta_input(3, size)).items()}
    maps = {s: torch.zeros(shape) for s, shape in shapes.items()}

    def affine(s: int):
        def hook(module, args, out):
            rows = torch.arange(out.shape[-2]) * s + UNIT_CENTRES[align][s]
            cols = torch.arange(out.shape[-1]) * s + UNIT_CENTRES[align][s]
            return (rows[:, None] + 2 * cols[None, :]).expand(out.shape).clone()
        return hook

    layers = {32: fcn.score_fr, 16: getattr(fcn, "score_pool4", None), 8: getattr(fcn, "score_pool3", None)}
    fused = [s for s in (32, 16, 8) if s >= stride]
    for s in fused:
        layers[s].register_forward_hook(affine(s))
    with torch.no_grad():
        out = fcn.decode(maps, size, size)
    pixel = torch.arange(size, dtype=torch.float32)
    expected = len(fused) * (pixel[:, None] + 2 * pixel[None, :])
    inner = slice(64, size - 64)
    torch.testing.assert_close(out[0, 1, inner, inner], expected[inner, inner], atol=1e-3, rtol=0)


# =============================================================================== FCN: structure and weights

def table_params(num_classes: int, stride: int) -> tuple[int, int]:
    """FCN-VGG16 parameters from the layer table (weights + biases), before and with upsampling."""
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    trunk = sum(9 * c_in * c_out + c_out for c_in, c_out in convs)
    trunk += 512 * 7 * 7 * 4096 + 4096  # fc6 as a 7x7 conv
    trunk += 4096 * 4096 + 4096  # fc7 as a 1x1 conv
    trunk += 4096 * num_classes + num_classes  # score_fr
    ups = num_classes**2 * (2 * stride) ** 2  # final K -> K upsampling, kernel 2 x stride, no bias
    if stride <= 16:
        trunk += 512 * num_classes + num_classes  # score_pool4
        ups += num_classes**2 * 4**2  # upscore2
    if stride == 8:
        trunk += 256 * num_classes + num_classes  # score_pool3
        ups += num_classes**2 * 4**2  # upscore_pool4
    return trunk, trunk + ups


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count(name):
    model = meta_model(name)
    trunk, total = table_params(21, VARIANTS[name])
    assert sum(p.numel() for p in model.parameters()) == total
    upsampling = sum(p.numel() for n, p in model.named_parameters() if n.startswith("upscore"))
    assert total - upsampling == trunk
    # Long et al. 2015, Table 1: FCN-VGG16 has "134M" parameters (FCN-32s, upsampling fixed).
    if name == "fcn32s":
        assert trunk == 134_346_581 and round(trunk / 1e6) == 134


def test_vgg_parameter_names_are_vgg16s():
    fcn = meta_model("fcn8s")
    vgg = meta_model("vgg16")
    fcn_state = fcn.state_dict()
    for key, value in vgg.features.state_dict().items():
        assert fcn_state[f"features.{key}"].shape == value.shape
    assert fcn.fc.fc6.weight.shape == (4096, 512, 7, 7) and fcn.fc.fc7.weight.shape == (4096, 4096, 1, 1)
    assert {name.split(".")[0] for name in fcn_state} == {
        "features", "fc", "score_fr", "score_pool4", "upscore2", "score_pool3", "upscore_pool4", "upscore"}


def test_from_classifier_copies_vgg_weights():
    vgg = small_fc_vgg16()
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    fcn = FCN.from_classifier(vgg, num_classes=3).eval()
    for key, value in vgg.features.state_dict().items():
        assert torch.equal(fcn.features.state_dict()[key], value)
    torch.testing.assert_close(fcn.fc.fc6.weight, vgg.classifier[0].weight.reshape(16, 512, 7, 7))
    torch.testing.assert_close(fcn.fc.fc7.weight.flatten(1), vgg.classifier[3].weight)
    with torch.no_grad():
        for p in fcn.parameters():
            p.mul_(2.0)
    assert all(torch.equal(before[k], v) for k, v in vgg.state_dict().items()), "the classifier is unchanged"

    # fc7's output at the centre of a 96x96 image (a 3x3 pool5 map, fc6 padded by 3) is the
    # classifier's fc6-fc7 on the zero-padded 7x7 window around it.
    fcn = FCN.from_classifier(vgg, num_classes=3).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        fc7 = fcn.encode(x)[32]
        pool5 = vgg.features(x)
        window = F.pad(pool5, (2, 2, 2, 2))
        expected = vgg.classifier[:6](window.flatten(1))
    torch.testing.assert_close(fc7[..., 1, 1], expected, atol=1e-5, rtol=1e-4)


def test_scores_and_upsampling_start_as_in_the_paper():
    fcn = FCN.from_classifier(small_fc_vgg16(), num_classes=3, output_stride=8)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = getattr(fcn, name)
        assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0
    # Bilinear kernel of the x8 upsampling, from its definition: (1 - |x - 7.5| / 8) per axis.
    profile = 1 - (torch.arange(16) - 7.5).abs() / 8
    expected = torch.outer(profile, profile)
    weight = fcn.upscore.weight
    assert weight.shape == (3, 3, 16, 16) and fcn.upscore.bias is None
    for i in range(3):
        for j in range(3):
            torch.testing.assert_close(weight[i, j], expected if i == j else torch.zeros(16, 16))
    with torch.no_grad():
        assert torch.count_nonzero(fcn.eval()(torch.randn(1, 3, 40, 40))) == 0


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v1"])
def test_fcn_on_other_backbones(backbone):
    torch.manual_seed(0)
    fcn = cnnzoo.create_model("fcn8s", backbone=backbone, num_classes=3, in_chans=2)
    assert fcn.features is None and not hasattr(fcn.backbone, "head"), "the classifier's head is gone"
    randomize_scores(fcn)
    x = torch.randn(2, 2, 70, 45)
    out = fcn(x)
    assert out.shape == (2, 3, 70, 45)
    out.square().mean().backward()
    no_grad = [n for n, p in fcn.named_parameters() if p.grad is None]
    assert not no_grad, no_grad[:5]
    classifier = cnnzoo.create_model(backbone, in_chans=2)
    channels = {info.stride: info.channels for info in classifier.feature_info}
    assert fcn.score_pool3.in_channels == channels[8] and fcn.score_fr.in_channels == channels[32]
    twin = FCN.from_classifier(classifier, num_classes=3)
    for key, value in twin.backbone.state_dict().items():
        assert torch.equal(classifier.state_dict()[key], value)


@pytest.mark.parametrize("backbone, message", [
    ("squeezenet1_0", "strides 8, 16, 32; SqueezeNet has stages at strides 2, 4, 8, 16 \\(none at 32\\)"),
    ("resnet20", "none at 8, 16, 32"),
    ("fcn8s", "must be a registered classifier; 'fcn8s' is a segmentation model"),
    ("resnet5O", "'resnet5O' is not a registered model \\(did you mean .*resnet50"),
])
def test_unusable_backbones_are_value_errors(backbone, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model("fcn8s", backbone=backbone)


def test_fcn32s_takes_a_backbone_without_a_stride_8_stage():
    with torch.device("meta"):
        assert cnnzoo.create_model("fcn32s", backbone="resnet18").output_stride == 32


@pytest.mark.parametrize("options, message", [
    (dict(align="paper", backbone="resnet18"), "align='paper' builds the reference Caffe nets"),
    (dict(align="same", backbone="alexnet"), "AlexNet's conv1 and pooling are unpadded"),
    (dict(align="valid"), "align must be one of auto, same, paper"),
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(in_chans=-1), "in_chans must be a positive integer"),
])
def test_bad_options_are_value_errors(options, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model("fcn8s", **options)


def test_bad_constructor_arguments_are_value_errors():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        FCN(output_stride=4, backbone="resnet18")
    with pytest.raises(ValueError, match="needs a cnnzoo classifier"):
        FCN.from_classifier(nn.Conv2d(3, 3, 1))


def test_context_module_on_the_finest_scores():
    torch.manual_seed(0)
    fcn = cnnzoo.create_model("fcn8s", backbone="mobilenet_v1", num_classes=3, context=True)
    assert isinstance(fcn.context, ContextModule) and fcn.context.channels == 3
    # The score layers start small rather than at zero: a context module fed zeros would
    # pass no gradient (every ReLU sits at 0), and nothing would ever train.
    assert 0 < fcn.score_fr.weight.std() < 1e-2
    out = fcn(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    out.square().mean().backward()
    assert fcn.score_fr.weight.grad.abs().sum() > 0 and fcn.score_pool3.weight.grad.abs().sum() > 0
    # Why: with zero score layers in front of the module, no gradient reaches them.
    fcn.zero_grad()
    with torch.no_grad():
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(fcn, name).weight.zero_()
    fcn(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert fcn.score_fr.weight.grad.abs().sum() == 0 and fcn.score_pool3.weight.grad.abs().sum() == 0


# =============================================================================== costs and export

def test_summary_counts_the_transposed_convolutions():
    model = meta_model("fcn32s")
    summary = summarize(model, (3, 500, 500))
    assert summary.total.params == sum(p.numel() for p in model.parameters())
    assert summary.total.output_shape == (1, 21, 500, 500)
    (upscore,) = [row for row in summary.rows if row.name == "upscore"]
    # A transposed conv multiplies each input pixel by its k x k x C_out kernel per input
    # channel: H_in W_in C_in C_out k^2 / g. Input: 500 padded to 512, /32 = 16x16.
    assert upscore.macs == 16 * 16 * 21 * 21 * 64 * 64
    (fc6,) = [row for row in summary.rows if row.name == "fc.fc6"]
    assert fc6.macs == 16 * 16 * 4096 * 512 * 7 * 7  # "same" fc6: one output per pool5 unit


def export_and_compare(model: nn.Module, x: torch.Tensor) -> None:
    ort = pytest.importorskip("onnxruntime")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["image"], output_names=["logits"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert out.shape == tuple(expected.shape) and expected.abs().max() > 0
    torch.testing.assert_close(torch.from_numpy(out), expected, atol=1e-4, rtol=1e-4)


def test_onnx_export_on_a_small_backbone():
    torch.manual_seed(0)
    classifier = cnnzoo.create_model("mobilenet_v1", width_mult=0.25)
    fcn = FCN.from_classifier(classifier, num_classes=3, output_stride=8, context=True)
    randomize_scores(fcn)
    # Batch-norm statistics of one batch (at initialization, in eval mode, MobileNet's
    # activations shrink to ~1e-15 by stride 32, which would compare nothing).
    for module in fcn.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        fcn.train()(torch.randn(4, 3, 64, 48))
    export_and_compare(fcn.eval(), torch.randn(1, 3, 64, 48))


@pytest.mark.slow
@pytest.mark.parametrize("align", ["same", "paper"])
def test_onnx_export_of_fcn8s_vgg16(align):
    # FCN-8s's VGG-16 graph (features, fc6 / fc7 as convs, crops) with 16-wide fc6 / fc7:
    # the full-size one is a 537 MB file, the same graph with bigger weights.
    fcn = FCN.from_classifier(small_fc_vgg16(), num_classes=3, output_stride=8, align=align).eval()
    randomize_scores(fcn)
    export_and_compare(fcn, torch.randn(1, 3, 64, 64))


def test_grid_centres_match_the_hand_derivation():
    # The decoder-side geometry the alignment test relies on, from the VGG layer table.
    for align, centres in UNIT_CENTRES.items():
        grid = Grid()
        if align == "paper":
            grid = grid.conv(3, 1, 100)  # conv1_1; every other 3x3 conv has padding 1
        found = {}
        for stage in range(1, 6):
            grid = grid.conv(2, 2)
            found[2**stage] = grid.start
        fc6 = grid.conv(7, padding=3 if align == "same" else 0)
        assert found[8] == centres[8] and found[16] == centres[16] and fc6.start == centres[32]
        assert math.isclose(fc6.jump, 32)


# =============================================================================== dilated front-end

def test_dilated_front_end_layers():
    model = meta_model("dilated_vgg16")
    info = cnnzoo.model_info("dilated_vgg16")
    assert info.task == "segmentation" and info.min_input_size == 1 and info.year == 2016
    vgg = meta_model("vgg16")
    # The same parameter names and shapes as VGG-16's features; pool4 and pool5 are gone.
    fcn_state = model.state_dict()
    for key, value in vgg.features.state_dict().items():
        assert fcn_state[f"features.{key}"].shape == value.shape
    assert isinstance(model.features[23], nn.Identity) and isinstance(model.features[30], nn.Identity)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3
    # "dilated by a factor of 2 for each pooling layer that was ablated": conv5 by 2, fc6 by 4.
    dilations = [layer.dilation[0] for layer in model.features if isinstance(layer, nn.Conv2d)]
    assert dilations == [1] * 10 + [2] * 3
    assert model.fc.fc6.dilation == (4, 4) and model.fc.fc6.kernel_size == (7, 7)


def test_dilated_front_end_receptive_field_and_sizes():
    model = meta_model("dilated_vgg16", num_classes=5)
    summary = summarize(model, (3, 96, 96))
    (final,) = [row for row in summary.rows if row.name == "final"]
    # By hand: conv1 5, pool1 6, conv2 14, pool2 16, conv3 40, pool3 44 (jump 8), conv4
    # 44 + 6 * 8 = 92, conv5 (dilation 2) 92 + 3 * 4 * 8 = 188, fc6 (7x7, dilation 4)
    # 188 + 24 * 8 = 380: the authors' code pads images by (380 - 8) / 2 = 186 pixels.
    assert final.rf == (380.0, 380.0) and final.jump == (8.0, 8.0)
    assert final.output_shape == (1, 5, 12, 12)  # stride 8
    with torch.no_grad():
        for height in (1, 7, 8, 9, 61, 100):
            assert model(meta_input(3, height, 33)).shape == (1, 5, height, 33)
        with pytest.raises(ValueError, match="at least 1x1"):
            model(meta_input(3, 0, 3))


def test_dilated_front_end_from_a_classifier_with_context():
    vgg = small_fc_vgg16()
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    model = DilatedFrontEnd.from_classifier(vgg, num_classes=3, context=True, context_variant="large")
    assert isinstance(model.context, ContextModule) and model.context.variant == "large"
    assert torch.equal(model.features[28].weight, vgg.features[28].weight)
    torch.testing.assert_close(model.fc.fc6.weight, vgg.classifier[0].weight.reshape(16, 512, 7, 7))
    assert all(torch.equal(before[k], v) for k, v in vgg.state_dict().items()), "the classifier is unchanged"
    out = model(torch.randn(1, 3, 45, 37))
    assert out.shape == (1, 3, 45, 37)
    out.square().mean().backward()
    assert model.final.weight.grad.abs().sum() > 0
    assert [(n, p) for n, p in model.named_parameters() if p.grad is None] == []


def test_dilated_front_end_parameters():
    # VGG-16's 13 convs, fc6 and fc7 (as in FCN), the 1x1 "final" to 21 classes and the
    # 16x16 x8 upsampling (21 x 21 x 16 x 16).
    model = meta_model("dilated_vgg16")
    trunk, _ = table_params(21, 32)
    assert sum(p.numel() for p in model.parameters()) == trunk + 21 * 21 * 16 * 16
    with_context = meta_model("dilated_vgg16", context=True)
    assert sum(p.numel() for p in with_context.parameters()) == trunk + 21 * 21 * 16 * 16 + 64 * 21**2 + 8 * 21


def test_context_variant_is_checked():
    with torch.device("meta"):
        for name in ("fcn8s", "dilated_vgg16"):
            with pytest.raises(ValueError, match="context_variant must be one of basic, large"):
                cnnzoo.create_model(name, context=True, context_variant="huge")
        assert cnnzoo.create_model("fcn32s", context=True, context_variant="large").context.variant == "large"
