"""FCN-AlexNet and FCN-GoogLeNet: the other two nets of Table 1 of Long, Shelhamer and
Darrell, "Fully Convolutional Networks for Semantic Segmentation" (CVPR 2015).

Table 1: FCN-AlexNet 39.8 mean IU, 8 conv layers, 57M parameters, max stride 32;
FCN-VGG16 56.0, 16, 134M, 32; FCN-GoogLeNet 42.5, 22, 6M, 32. The reference FCN-AlexNet
(shelhamer/fcn.berkeleyvision.org, voc-fcn-alexnet/net.py) pads conv1 by 100, keeps fc6 a valid
6x6 convolution, upsamples by a fixed 63x63 / stride-32 deconvolution and crops to the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.layers.heads import fc_classifier
from cnnzoo.models.alexnet import ONE_TOWER_LAYERS, AlexNet
from cnnzoo.models.fcn import FCN
from cnnzoo.models.googlenet import InceptionV1
from cnnzoo.utils.meta import meta_copy

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision"
CLASSES = 21  # PASCAL VOC


def meta_model(name: str, **options) -> FCN:
    with torch.device("meta"):
        return cnnzoo.create_model(name, **options).eval()


def params(module: nn.Module, skip: str = "upscore") -> int:
    """Parameters, without the final upsampling (fixed in the paper, so Table 1 leaves it out)."""
    return sum(p.numel() for name, p in module.named_parameters() if not name.startswith(skip))


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    return k * k * c_in // groups * c_out + c_out


# fc6 as a 6x6 conv over pool5 (256 maps), fc7 as a 1x1 conv, score_fr a 1x1 conv to 21 classes.
FC_AND_SCORE = conv_params(256, 4096, 6) + conv_params(4096, 4096, 1) + conv_params(4096, CLASSES, 1)
# Krizhevsky et al. 2012, section 3.5 (the two towers as groups=2), and torchvision's single tower.
TWO_TOWER_CONVS = (conv_params(3, 96, 11) + conv_params(96, 256, 5, 2) + conv_params(256, 384, 3)
                   + conv_params(384, 384, 3, 2) + conv_params(384, 256, 3, 2))
ONE_TOWER_CONVS = (conv_params(3, 64, 11) + conv_params(64, 192, 5) + conv_params(192, 384, 3)
                   + conv_params(384, 256, 3) + conv_params(256, 256, 3))


# =============================================================================== sizes

@pytest.mark.parametrize("name, options", [
    ("fcn32s_alexnet", {}),
    ("fcn32s_alexnet", {"backbone": "alexnet"}),
    ("fcn32s_googlenet", {}),
    ("fcn16s", {"backbone": "alexnet"}),
    ("fcn8s", {"backbone": "alexnet_original"}),
    ("fcn8s", {"backbone": "googlenet"}),
])
def test_logits_have_the_input_size(name, options):
    model = meta_model(name, num_classes=5, **options)
    with torch.no_grad():
        for height in (1, 2, 17, 31, 32, 33, 63, 64, 65, 100, 224, 227, 255, 333, 500):
            out = model(torch.zeros(1, 3, height, 97, device="meta"))
            assert out.shape == (1, 5, height, 97), height


# =============================================================================== parameters

def test_fcn_alexnet_parameters_are_table_1s_57m():
    # Exact, before the fixed upsampling: 2,334,080 (5 convs) + 37,752,832 (fc6)
    # + 16,781,312 (fc7) + 86,037 (score_fr) = 56,954,261 on the reference's two-tower layout.
    model = meta_model("fcn32s_alexnet")
    assert params(model) == TWO_TOWER_CONVS + FC_AND_SCORE == 56_954_261
    assert round(params(model) / 1e6) == 57  # Table 1: "57M"
    # The final 63x63 upsampling (21 x 21 kernels, no bias) comes on top.
    assert params(model.upscore, skip="-") == CLASSES**2 * 63**2 == 1_750_329
    # torchvision's single tower: 2,469,696 + the same head = 57,089,877, also "57M".
    tower = meta_model("fcn32s_alexnet", backbone="alexnet")
    assert params(tower) == ONE_TOWER_CONVS + FC_AND_SCORE == 57_089_877
    assert round(params(tower) / 1e6) == 57


def test_fcn_alexnet_convs_agree_with_torchvision_shapes():
    # Independent count of the single tower's convs: torchvision's state_dict shapes.
    shapes = json.loads((FIXTURES / "alexnet.json").read_text())
    features = sum(torch.Size(shape).numel() for key, shape in shapes.items() if key.startswith("features."))
    model = meta_model("fcn32s_alexnet", backbone="alexnet")
    assert params(model.features, skip="-") == features == ONE_TOWER_CONVS


def test_fcn_googlenet_parameters_are_table_1s_6m():
    # Independent count: torchvision GoogLeNet's state_dict shapes without its fc (and no
    # buffers), plus score_fr (1024 -> 21): 5,599,904 + 21,525 = 5,621,429, "6M" in Table 1.
    shapes = json.loads((FIXTURES / "googlenet.json").read_text())
    body = sum(torch.Size(shape).numel() for key, shape in shapes.items()
               if not key.startswith("fc.") and not key.endswith(("running_mean", "running_var", "num_batches_tracked")))
    model = meta_model("fcn32s_googlenet")
    assert params(model) == body + conv_params(1024, CLASSES, 1) == 5_621_429
    assert round(params(model) / 1e6) == 6
    # torchvision's published total (6,624,904) less its fc layer (1024 x 1000 + 1000).
    assert body == 6_624_904 - (1024 * 1000 + 1000)


def test_conv_layer_counts_are_table_1s():
    # Table 1, "conv. layers": 8 for FCN-AlexNet (conv1-5, fc6, fc7, score_fr) and 22 for
    # FCN-GoogLeNet (3 stem convs, 9 Inception modules two convs deep, score_fr).
    alexnet = meta_model("fcn32s_alexnet")
    assert sum(isinstance(m, nn.Conv2d) for m in alexnet.modules()) == 8
    googlenet = meta_model("fcn32s_googlenet")
    modules = sum(isinstance(m, InceptionV1) for m in googlenet.backbone.modules())
    stem = sum(isinstance(m, nn.Conv2d) for name, m in googlenet.backbone.named_modules() if "inception" not in name)
    assert (modules, stem) == (9, 3) and stem + 2 * modules + 1 == 22


# =============================================================================== alignment

@pytest.mark.parametrize("name, options, offsets, kernels", [
    # Unit 0's centre, by hand (one axis): conv1 11x11/4 padded by 100: 5 - 100 = -95; pool1
    # 3x3/2 adds 1 x 4: -91 (stride 8); conv2 (5x5, padding 2) moves nothing; pool2 adds 1 x 8:
    # -83 (stride 16); conv3-5 nothing; pool5 adds 16: -67; valid 6x6 fc6 adds 2.5 x 32: 13.
    # Whole pixels, so the upsamplings take odd kernels 2f - 1 (the reference's 63):
    # FCN-32s: 63/32 moves 13 to 13 - 31 = -18: crop 18 (the reference's).
    ("fcn32s_alexnet", {}, {"output": 18}, {"upscore": 63}),
    # FCN-16s: 3/2 gives 13 - 16 = -3 at stride 16, which is (-3 + 83) / 16 = 5 units into
    # pool2's scores; 31/16 then gives -3 - 15 = -18: crop 18.
    ("fcn16s", {"backbone": "alexnet"}, {"score_pool4": 5, "output": 18}, {"upscore2": 3, "upscore": 31}),
    # FCN-8s: from -3, 3/2 gives -3 - 8 = -11 at stride 8, (-11 + 91) / 8 = 10 into pool1's;
    # 15/8 gives -11 - 7 = -18.
    ("fcn8s", {"backbone": "alexnet"}, {"score_pool4": 5, "score_pool3": 10, "output": 18},
     {"upscore2": 3, "upscore_pool4": 3, "upscore": 15}),
])
def test_crop_offsets_are_the_hand_derived_ones(name, options, offsets, kernels):
    model = meta_model(name, **options)
    assert model.align == "paper" and model.crop_offsets == offsets
    assert {layer: getattr(model, layer).kernel_size[0] for layer in kernels} == kernels
    first = next(m for m in model.features if isinstance(m, nn.Conv2d))
    assert first.padding == (100, 100)


def small_fc_alexnet() -> AlexNet:
    """torchvision's AlexNet convs with fc6 / fc7 16 wide (fc6 alone would be 38M weights)."""
    torch.manual_seed(0)
    net = AlexNet(ONE_TOWER_LAYERS, num_classes=3)
    net.classifier = fc_classifier(256 * 6 * 6, 3, hidden=16)
    return net.eval()


UNIT_CENTRES = {8: -91, 16: -83, 32: 13}  # from the derivation above


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_upsampled_scores_land_on_their_pixels(stride):
    # Bilinear upsampling reproduces an affine function exactly (away from the borders). Each
    # score map is replaced by "row + 2 col" of its units' centres in image pixels: if every
    # crop is right, FCN-{stride}s outputs (number of fused maps) x (row + 2 col) at each pixel.
    fcn = FCN.from_classifier(small_fc_alexnet(), num_classes=2, output_stride=stride)
    size = 224
    with torch.no_grad():
        shapes = {s: t.shape for s, t in meta_copy(fcn).encode(torch.zeros(1, 3, size, size, device="meta")).items()}

    def affine(s: int):
        def hook(module, args, out):
            rows = torch.arange(out.shape[-2], dtype=torch.float32) * s + UNIT_CENTRES[s]
            cols = torch.arange(out.shape[-1], dtype=torch.float32) * s + UNIT_CENTRES[s]
            return (rows[:, None] + 2 * cols[None, :]).expand(out.shape).clone()
        return hook

    fused = [s for s in (32, 16, 8) if s >= stride]
    for s, layer in zip(fused, ("score_fr", "score_pool4", "score_pool3")):
        getattr(fcn, layer).register_forward_hook(affine(s))
    with torch.no_grad():
        out = fcn.decode({s: torch.zeros(shape) for s, shape in shapes.items()}, size, size)
    pixel = torch.arange(size, dtype=torch.float32)
    expected = len(fused) * (pixel[:, None] + 2 * pixel[None, :])
    inner = slice(40, size - 40)
    torch.testing.assert_close(out[0, 1, inner, inner], expected[inner, inner], atol=1e-3, rtol=0)


# =============================================================================== structure

def test_fc6_and_fc7_are_alexnets_linear_layers_reshaped():
    net = small_fc_alexnet()
    fcn = FCN.from_classifier(net, num_classes=2, output_stride=32)
    fc6, fc7 = [layer for layer in net.classifier if isinstance(layer, nn.Linear)][:2]
    assert torch.equal(fcn.fc.fc6.weight, fc6.weight.reshape(16, 256, 6, 6))
    assert torch.equal(fcn.fc.fc7.weight[..., 0, 0], fc7.weight)
    assert fcn.fc.fc6.padding == (0, 0)  # valid: one score per 6x6 window of pool5
    for key, value in net.features.state_dict().items():
        assert torch.equal(fcn.features.state_dict()[key], value)
    assert all(m.ceil_mode for m in fcn.features if isinstance(m, nn.MaxPool2d))  # Caffe rounds up
    assert net.features[0].padding == (2, 2)  # the classifier itself is left as it was


def test_fcn_googlenet_scores_inception5b_without_the_average_pooling():
    model = meta_model("fcn32s_googlenet")
    assert model.align == "same" and model.score_fr.in_channels == 1024
    assert not any(hasattr(model.backbone, name) for name in ("avgpool", "fc", "aux1", "aux2"))


def test_registered_with_table_1s_numbers():
    for name, published in (("fcn32s_alexnet", 57_000_000), ("fcn32s_googlenet", 6_000_000)):
        info = cnnzoo.model_info(name)
        assert info.task == "segmentation" and info.family == "fcn" and info.params == published
        assert "Table 1" in info.source


@pytest.mark.parametrize("name, options, message", [
    ("fcn32s_alexnet", {"backbone": "vgg16"}, "backbone must be one of alexnet_original, alexnet"),
    ("fcn32s_alexnet", {"align": "same"}, "AlexNet's conv1 and pooling are unpadded"),
    ("fcn32s", {"backbone": "googlenet", "align": "paper"}, "GoogLeNet has none: use align='same'"),
])
def test_bad_alignments_and_backbones_are_value_errors(name, options, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model(name, **options)


@pytest.mark.parametrize("name,table_1_rf", [("fcn32s_alexnet", 355), ("fcn32s", 404)])
def test_receptive_field_is_table_1s_plus_the_final_upsampling(name, table_1_rf):
    # Long et al. 2015, Table 1: "rf size" 355 (FCN-AlexNet) and 404 (FCN-VGG16), the field
    # of the score layer. The stride-32 upsampling after it (kernel 63 or 64) adds
    # (ceil(k/32) - 1) * 32 = 32 pixels, and brings the jump back to 1.
    from cnnzoo.analysis import summarize
    from cnnzoo.registry import create_meta_model

    total = summarize(create_meta_model(name), (3, 500, 500)).total
    assert (total.rf, total.jump) == ((table_1_rf + 32,) * 2, (1, 1))  # (height, width)


def test_bilinear_initialization_interpolates_each_channel_alone():
    """init_bilinear_ (the one filler of FCN's upsampling layers): the diagonal holds
    (1 - |x - c| / f)(1 - |y - c| / f), computed here by hand, the rest is zero, and a
    constant map stays constant inside the border."""
    from cnnzoo.layers.upsample import init_bilinear_

    layer = init_bilinear_(torch.nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, bias=True))
    profile = torch.tensor([0.25, 0.75, 0.75, 0.25])  # f = 2, c = 1.5
    assert torch.allclose(layer.weight[0, 0], torch.outer(profile, profile))
    assert torch.equal(layer.weight[0, 1], torch.zeros(4, 4)) and torch.equal(layer.bias, torch.zeros(2))
    with torch.no_grad():
        out = layer(torch.full((1, 2, 5, 5), 3.0))
    assert out.shape == (1, 2, 10, 10) and torch.allclose(out[:, :, 1:-1, 1:-1], torch.tensor(3.0))
    odd = init_bilinear_(torch.nn.ConvTranspose2d(1, 1, 3, stride=2, bias=False))
    assert torch.allclose(odd.weight[0, 0], torch.outer(torch.tensor([0.5, 1.0, 0.5]), torch.tensor([0.5, 1.0, 0.5])))
    with pytest.raises(ValueError, match="C -> C"):
        init_bilinear_(torch.nn.ConvTranspose2d(2, 3, 4, stride=2))
