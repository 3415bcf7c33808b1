"""U-Net (Ronneberger, Fischer, Brox 2015): sizes, parameters, options, export, errors.

Full-size checks run on the meta device (``summarize``); real forward passes use tiny
widths and depths.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import summarize
from cnnzoo.layers.spatial import match_size, mirror_indices, mirror_pad
from cnnzoo.layers.unet_blocks import (
    DoubleConv,
    UNetUpBlock,
    fan_in_normal_init,
    incoming_connections,
    upsample_by,
)
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.unet import (
    EncoderUNet,
    UNet,
    auto_pad_plan,
    is_valid_side,
    min_valid_side,
    nearest_valid_sides,
    unet_border,
    unet_output_side,
)

# ----------------------------------------------------------------------------- the paper's net


def test_paper_unet_has_31030658_parameters_and_maps_572_to_388():
    # 572x572 input tile -> 388x388 output segmentation map (Ronneberger et al. 2015, Fig. 1).
    with torch.device("meta"):
        model = cnnzoo.create_model("unet")
    summary = summarize(model, (1, 572, 572))
    assert summary.total.params == 31_030_658
    assert summary.total.output_shape == (1, 2, 388, 388)
    assert model.output_size(572, 572) == (388, 388)


def test_every_layer_has_the_size_of_the_papers_figure_1():
    # Fig. 1 of the paper, one side of each (up-)conv output, in the order they run.
    figure = [570, 568, 282, 280, 138, 136, 66, 64, 30, 28,  # contracting path and bridge
              56, 54, 52, 104, 102, 100, 200, 198, 196, 392, 390, 388,  # expansive path
              388]  # the 1x1 conv
    with torch.device("meta"):
        model = cnnzoo.create_model("unet")
    rows = summarize(model, (1, 572, 572)).rows
    convs = [row for row in rows if row.type in ("Conv2d", "ConvTranspose2d")]
    assert [row.output_shape[-1] for row in convs] == figure
    assert [row.output_shape[1] for row in convs][:10] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    assert len(convs) == 23  # "In total the network has 23 convolutional layers" (up-convs included)


def paper_unet_macs(side: int) -> int:
    """Multiply-adds of the paper's U-Net, written out from Fig. 1's layer table."""
    macs, widths, skips = 0, [64, 128, 256, 512], []
    channels = 1
    for width in widths:
        side -= 2
        macs += side * side * width * 9 * channels
        side -= 2
        macs += side * side * width * 9 * width
        skips.append(side)
        channels, side = width, side // 2
    for width in (1024, 1024):
        side -= 2
        macs += side * side * width * 9 * channels
        channels = width
    for width in reversed(widths):
        macs += side * side * channels * width * 4  # 2x2 up-conv: every input pixel, 4 taps
        side *= 2
        for c_in in (2 * width, width):
            side -= 2
            macs += side * side * width * 9 * c_in
        channels = width
    return macs + side * side * 2 * channels


def test_multiply_adds_match_the_layer_table():
    with torch.device("meta"):
        model = cnnzoo.create_model("unet")
    assert summarize(model, (1, 572, 572)).total.macs == paper_unet_macs(572) == 150_428_424_448


# ----------------------------------------------------------------------------- size arithmetic


def brute_force_sides(depth: int, padding: bool, sides: range) -> dict[int, int]:
    """{side: output side} for every side the network really takes: run a width-1 U-Net on
    the meta device without its size check, and keep the sides where no layer fails and
    every max-pool sees an even side (the paper's condition for seamless tiling)."""
    with torch.device("meta"):
        model = UNet(base_width=1, depth=depth, padding=padding)
    seen = []
    model.pool.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    works = {}
    for side in sides:
        seen.clear()
        try:
            out = model._forward_unchecked(torch.zeros(1, 1, side, side, device="meta"))
        except RuntimeError:
            continue
        if all(h % 2 == 0 and w % 2 == 0 for h, w in seen):
            works[side] = out.shape[-1]
    return works


@pytest.mark.parametrize("depth, padding, sides", [
    (1, False, range(1, 80)), (2, False, range(1, 120)), (3, False, range(60, 170)),
    (4, False, range(150, 240)), (2, True, range(1, 40)), (3, True, range(1, 50)),
])
def test_size_rules_agree_with_running_the_network(depth, padding, sides):
    works = brute_force_sides(depth, padding, sides)
    assert works, "the range holds valid sides"
    for side in sides:
        assert unet_output_side(side, depth, padding) == works.get(side), side
        assert is_valid_side(side, depth, padding) == (side in works)
    valid = sorted(works)
    if valid[0] > sides.start:  # the range reaches below the minimum
        assert min_valid_side(depth, padding) == valid[0]
    border = {side - out for side, out in works.items()}
    assert border == {unet_border(depth, padding)}
    for side in sides:
        below = max((v for v in valid if v <= side), default=None)
        above = min((v for v in valid if v >= side), default=None)
        got_below, got_above = nearest_valid_sides(side, depth, padding)
        if below is not None or side > valid[0]:
            assert got_below == below, side
        if above is not None:
            assert got_above == above, side


def test_valid_sides_of_the_papers_net():
    assert min_valid_side(4, False) == 188 and unet_output_side(188) == 4
    assert nearest_valid_sides(570) == (556, 572)
    assert nearest_valid_sides(572) == (572, 572)
    assert nearest_valid_sides(100) == (None, 188)
    assert unet_border(4, False) == 184  # 92 pixels of context on each side
    assert min_valid_side(4, True) == 16 and unet_border(4, True) == 0
    assert [side for side in range(500, 600) if is_valid_side(side)] == [508, 524, 540, 556, 572, 588]


def test_auto_pad_plan_covers_the_input():
    for depth, padding in ((4, False), (2, False), (3, True)):
        border = unet_border(depth, padding)
        for side in (1, 5, 37, 100, 188, 572):
            padded, before = auto_pad_plan(side, depth, padding)
            assert is_valid_side(padded, depth, padding)
            assert unet_output_side(padded, depth, padding) >= side
            # the smallest such size: the next valid size down would not cover the input
            below = nearest_valid_sides(padded - 1, depth, padding)[0]
            assert below is None or below - border < side
            assert before == border // 2  # the output's first pixel is the input's first
    assert auto_pad_plan(512) == (700, 92)


# ----------------------------------------------------------------------------- options


def unet_params(in_chans, classes, width, depth, batch_norm):
    """Parameters of U-Net, from its layer table (a 2x2 transposed conv and a 2x2 conv after
    fixed upsampling have the same count)."""
    def conv(c_in, c_out, k, bias):
        return k * k * c_in * c_out + (c_out if bias else 0)

    def level(c_in, c_out):  # two 3x3 convs, each with a bias or a batch norm (2 per channel)
        return conv(c_in, c_out, 3, not batch_norm) + conv(c_out, c_out, 3, not batch_norm) + (4 * c_out if batch_norm else 0)

    widths = [width * 2**i for i in range(depth + 1)]
    total, channels = 0, in_chans
    for w in widths[:-1]:
        total += level(channels, w)
        channels = w
    total += level(widths[-2], widths[-1])
    for i in reversed(range(depth)):
        total += conv(widths[i + 1], widths[i], 2, True) + level(2 * widths[i], widths[i])
    return total + conv(width, classes, 1, True)


def test_parameter_formula_reproduces_the_papers_count():
    assert unet_params(1, 2, 64, 4, False) == 31_030_658


@pytest.mark.parametrize("options", [
    dict(base_width=16, depth=3, batch_norm=True, upsampling="bilinear"),
    dict(base_width=8, depth=2, padding=True, upsampling="nearest", in_chans=3, num_classes=5),
    dict(base_width=32, depth=5, padding=True),
    dict(base_width=64, depth=4, auto_pad=True),
])
def test_parameter_counts_of_variants(options):
    kwargs = dict(dict(in_chans=1, num_classes=2, depth=4, batch_norm=False), **options)
    with torch.device("meta"):
        model = cnnzoo.create_model("unet", **kwargs)
    expected = unet_params(kwargs["in_chans"], kwargs["num_classes"], kwargs["base_width"], kwargs["depth"], kwargs["batch_norm"])
    assert sum(p.numel() for p in model.parameters()) == expected


OPTION_SETS = [
    dict(),
    dict(padding=True),
    dict(batch_norm=True),
    dict(upsampling="nearest"),
    dict(upsampling="bilinear", padding=True, batch_norm=True),
    dict(auto_pad=True),
    dict(auto_pad=True, padding=True),
]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_forward_shapes_of_every_option(options):
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", base_width=4, depth=2, num_classes=3, in_chans=2, **options).eval()
    assert isinstance(model, Segmenter)
    padding, auto = options.get("padding", False), options.get("auto_pad", False)
    sizes = [(44, 48), (60, 52)] if not padding else [(32, 36), (8, 12)]
    if auto:
        sizes += [(37, 23), (5, 3), (1, 1)]
    with torch.no_grad():
        for height, width in sizes:
            out = model(torch.randn(2, 2, height, width))
            expected = (height, width) if auto or padding else (unet_output_side(height, 2), unet_output_side(width, 2))
            assert out.shape == (2, 3, *expected)
            assert model.output_size(height, width) == expected


def test_default_registry_entry():
    info = cnnzoo.model_info("unet")
    assert (info.task, info.family, info.year, info.default_input) == ("segmentation", "unet", 2015, (1, 572, 572))
    assert info.defaults == dict(num_classes=2, in_chans=1, base_width=64, depth=4, padding=None, batch_norm=False,
                                 upsampling="transposed", encoder=None, auto_pad=False)
    with torch.device("meta"):
        model = cnnzoo.create_model("unet")
    assert model.min_input_size == info.min_input_size == 188
    with torch.device("meta"):  # the minimum is the true one: a pixel less fails
        assert model._forward_unchecked(torch.zeros(1, 1, 188, 188, device="meta")).shape[-1] == 4
        with pytest.raises(RuntimeError):
            model._forward_unchecked(torch.zeros(1, 1, 187, 187, device="meta"))


def test_auto_pad_output_is_aligned_with_the_input():
    # A tile cut from a larger image, segmented with auto_pad, must agree with the valid
    # network run on the whole image wherever the tile holds the pixel's whole context,
    # provided the mirrored tile starts on the image's pooling grid (every 2**depth pixels).
    torch.manual_seed(0)
    model = UNet(num_classes=2, in_chans=1, base_width=2, depth=2, auto_pad=True).double().eval()
    valid = UNet(num_classes=2, in_chans=1, base_width=2, depth=2).double().eval()
    valid.load_state_dict(model.state_dict())
    image = torch.randn(1, 1, 184, 188, dtype=torch.float64)
    with torch.no_grad():
        whole = valid(image)  # valid output pixel j is image pixel j + 20 (border 40)
    assert whole.shape[-2:] == (144, 148) and unet_border(2) == 40
    tile_h, tile_w = 120, 117
    _, top = auto_pad_plan(tile_h, 2)  # 20: the mirrored tile then starts at image row 0
    _, left = auto_pad_plan(tile_w, 2)
    tile = image[..., top : top + tile_h, left : left + tile_w]
    with torch.no_grad():
        out = model(tile)
    assert out.shape[-2:] == (tile_h, tile_w)
    # 44 (the smallest valid input, which every output pixel's context fits in) is a safe margin
    margin = min_valid_side(2)
    inner = out[..., margin : tile_h - margin, margin : tile_w - margin]
    reference = whole[..., top + margin - 20 : top + tile_h - margin - 20, left + margin - 20 : left + tile_w - margin - 20]
    assert inner.numel() > 1000
    torch.testing.assert_close(inner, reference, rtol=0, atol=1e-10)
    # and a tile off the grid does not agree: the alignment is what makes it work
    shifted = model(image[..., top + 1 : top + 1 + tile_h, left : left + tile_w])
    assert not torch.allclose(shifted[..., margin : tile_h - margin, margin : tile_w - margin],
                              whole[..., top + 1 + margin - 20 : top + 1 + tile_h - margin - 20,
                                    left + margin - 20 : left + tile_w - margin - 20])


def test_auto_pad_equals_overlap_tile_prediction():
    # The engine's overlap-tile prediction (Ronneberger et al., Fig. 2), an independent
    # implementation, segments the same mirrored image: the logits agree exactly.
    tiling = pytest.importorskip("cnnzoo.engine.tiling")
    torch.manual_seed(0)
    valid = UNet(num_classes=3, base_width=2, depth=2).double().eval()
    auto = UNet(num_classes=3, base_width=2, depth=2, auto_pad=True).double().eval()
    auto.load_state_dict(valid.state_dict())
    for size in ((70, 53), (5, 3)):
        x = torch.randn(1, 1, *size, dtype=torch.float64)
        with torch.no_grad():
            expected = auto(x)
        torch.testing.assert_close(tiling.predict_tiled(valid, x, tile_size=64), expected, rtol=0, atol=1e-12)


def test_auto_pad_changes_nothing_on_a_valid_size():
    torch.manual_seed(0)
    padded = UNet(base_width=4, depth=2, padding=True, auto_pad=True).eval()
    plain = UNet(base_width=4, depth=2, padding=True).eval()
    plain.load_state_dict(padded.state_dict())
    x = torch.randn(1, 1, 24, 28)
    with torch.no_grad():
        torch.testing.assert_close(padded(x), plain(x), rtol=0, atol=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", base_width=4, depth=2, batch_norm=True, upsampling="bilinear")
    out = model(torch.randn(2, 1, 48, 48))
    nn.functional.cross_entropy(out, torch.randint(0, 2, (2, *out.shape[-2:]))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_onnx_export_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    cases = (
        (dict(), (60, 64)),
        (dict(padding=True, upsampling="bilinear", auto_pad=True), (50, 37)),
        (dict(auto_pad=True, batch_norm=True), (29, 33)),
        (dict(encoder="resnet20", padding=True, in_chans=1, auto_pad=True), (37, 30)),  # odd: padded to 40x32
    )
    for options, size in cases:
        model = cnnzoo.create_model("unet", base_width=8, depth=2, **options).eval()
        x = torch.randn(1, 1, *size)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["input"])
        session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            expected = model(x).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- errors


def test_invalid_size_names_the_nearest_sizes():
    with torch.device("meta"):
        model = cnnzoo.create_model("unet")
    with pytest.raises(ValueError, match="nearest valid sizes 556 and 572"):
        model(torch.zeros(1, 1, 570, 572, device="meta"))
    with pytest.raises(ValueError, match=r"width 573 .*nearest valid sizes 572 and 588"):
        model.output_size(572, 573)
    with pytest.raises(ValueError, match="at least 188x188"):
        model(torch.zeros(1, 1, 187, 200, device="meta"))
    with pytest.raises(ValueError, match="nearest valid size 188"):
        model.check_size(100, 188)
    padded = UNet(base_width=2, depth=3, padding=True)
    with pytest.raises(ValueError, match=r"multiples of 8.*nearest valid sizes 32 and 40"):
        padded(torch.zeros(1, 1, 33, 32))


def test_bad_inputs_are_value_errors():
    model = UNet(base_width=2, depth=2)
    with pytest.raises(ValueError, match="input channel"):
        model(torch.zeros(1, 3, 44, 44))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.zeros(1, 44, 44))


@pytest.mark.parametrize("options, message", [
    (dict(upsampling="deconv"), "upsampling must be one of transposed, nearest, bilinear"),
    (dict(depth=0), "depth must be a positive integer"),
    (dict(base_width=2.5), "base_width must be a positive integer"),
    (dict(padding="same"), "padding must be True or False"),
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(encoder="resnet81", padding=True), "unknown encoder 'resnet81'.*did you mean"),
    (dict(encoder="segnet", padding=True), "'segnet' is a segmentation model"),
    (dict(encoder="resnet18", padding=False), "needs padding=True"),
    (dict(encoder="resnet20", padding=True), "resnet20 has 3 stages, so a U-Net over it has depth at most 2"),
])
def test_bad_options_are_value_errors(options, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model("unet", **options)


# ----------------------------------------------------------------------------- a classifier as encoder


def encoder_unet_params(backbone_params, channels, width, classes, batch_norm=False):
    """Decoder and head parameters over backbone stage channels (shallow to deep), plus the
    backbone's: each step is a 2x2 up-conv to ``width * 2**i`` and two 3x3 convs."""
    depth = len(channels) - 1
    total = backbone_params
    for i in reversed(range(depth)):
        c_in = channels[-1] if i == depth - 1 else width * 2 ** (i + 1)
        w = width * 2**i
        total += 4 * c_in * w + w  # up-conv
        total += 9 * (channels[i] + w) * w + 9 * w * w + (4 * w if batch_norm else 2 * w)
    return total + width * classes + classes


def test_resnet18_encoder_keeps_its_weights_and_drops_its_head():
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", encoder="resnet18", padding=True, in_chans=3, num_classes=4, base_width=8).eval()
    assert isinstance(model, EncoderUNet)
    classifier = cnnzoo.create_model("resnet18").eval()
    head = {k for k in classifier.state_dict() if k.startswith("head.")}
    assert head and set(classifier.state_dict()) - head == set(model.encoder.state_dict())
    # Loading the classifier's weights (e.g. ImageNet ones) gives its feature maps.
    missing, unexpected = model.encoder.load_state_dict(classifier.state_dict(), strict=False)
    assert not missing and set(unexpected) == head
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for ours, theirs in zip(model.encoder.forward_features(x), classifier.forward_features(x)):
            torch.testing.assert_close(ours, theirs)
    backbone = sum(p.numel() for k, p in classifier.named_parameters() if not k.startswith("head."))
    expected = encoder_unet_params(backbone, [64, 64, 128, 256, 512], 8, 4)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_encoder_unet_forward_and_gradients():
    torch.manual_seed(0)
    model = cnnzoo.create_model("unet", encoder="mobilenet_v1", padding=True, in_chans=3, num_classes=3,
                                base_width=4, depth=3, upsampling="nearest", batch_norm=True)
    for height, width in ((32, 32), (33, 45)):
        out = model(torch.randn(2, 3, height, width))
        assert out.shape == (2, 3, height, width) and model.output_size(height, width) == (height, width)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for k, p in model.named_parameters() if k.startswith("encoder."))


@pytest.mark.parametrize("encoder, depth, strides", [
    ("resnet18", 4, [2, 4, 8, 16, 32]), ("vgg11", 4, [2, 4, 8, 16, 32]), ("mobilenet_v1", 4, [2, 4, 8, 16, 32]),
    ("resnet20", 2, [1, 2, 4]), ("alexnet", 2, [8, 16, 32]), ("squeezenet1_0", 3, [2, 4, 8, 16]),
    ("inception_v3", 4, [2, 4, 8, 16, 32]),
])
def test_encoder_unet_over_many_classifiers(encoder, depth, strides):
    with torch.device("meta"):
        model = cnnzoo.create_model("unet", encoder=encoder, padding=True, in_chans=3, num_classes=5, depth=depth, base_width=8)
        classifier = cnnzoo.create_model(encoder)
    assert model.strides == strides
    assert model.min_input_size == classifier.min_input_size
    head = classifier.head_children()
    assert head and all(isinstance(getattr(model.encoder, name), nn.Identity) for name in head)
    model.eval()
    for side in {model.min_input_size, 97}:
        out = model(torch.zeros(1, 3, side, side + 5, device="meta"))
        assert out.shape == (1, 5, side, side + 5)


def test_vgg11_encoder_unet_summary():
    with torch.device("meta"):
        model = cnnzoo.create_model("unet", encoder="vgg11", padding=True, in_chans=3, num_classes=21)
    summary = summarize(model, (3, 224, 224))
    assert summary.total.output_shape == (1, 21, 224, 224)
    vgg11_convs = sum(9 * c_in * c_out + c_out for c_in, c_out in
                      [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)])
    assert summary.total.params == encoder_unet_params(vgg11_convs, [64, 128, 256, 512, 512], 64, 21)


def test_encoder_auto_pad_matches_on_multiples_of_the_stride():
    torch.manual_seed(0)
    padded = cnnzoo.create_model("unet", encoder="resnet18", padding=True, in_chans=3, base_width=4, auto_pad=True).eval()
    plain = cnnzoo.create_model("unet", encoder="resnet18", padding=True, in_chans=3, base_width=4).eval()
    plain.load_state_dict(padded.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 64)
        torch.testing.assert_close(padded(x), plain(x), rtol=0, atol=0)
        assert padded(torch.randn(1, 3, 25, 33)).shape == (1, 2, 25, 33)


# ----------------------------------------------------------------------------- blocks


def test_double_conv_loses_four_pixels_unpadded():
    block = DoubleConv(3, 5, padding=False, batch_norm=True)
    assert block(torch.randn(2, 3, 20, 17)).shape == (2, 5, 16, 13)
    assert DoubleConv(3, 5, padding=True)(torch.randn(1, 3, 9, 7)).shape == (1, 5, 9, 7)
    assert block.conv1.conv.bias is None and DoubleConv(3, 5).conv1.conv.bias is not None


def test_up_block_crops_the_skip_map_like_the_paper():
    torch.manual_seed(0)
    block = UNetUpBlock(8, 4, 4, padding=False)
    x, skip = torch.randn(1, 8, 5, 5), torch.randn(1, 4, 16, 16)
    out = block(x, skip)
    assert out.shape == (1, 4, 6, 6)
    # by hand: the 10x10 upsampled map meets the central 10x10 of the 16x16 skip map
    expected = block.conv(torch.cat([skip[..., 3:13, 3:13], block.up(x)], dim=1))
    torch.testing.assert_close(out, expected)


def test_match_size_crops_and_pads_around_the_centre():
    x = torch.arange(30.0).reshape(1, 1, 5, 6)
    torch.testing.assert_close(match_size(x, 3, 6), x[..., 1:4, :])
    padded = match_size(x, 8, 7)
    assert padded.shape == (1, 1, 8, 7)
    torch.testing.assert_close(padded[..., 1:6, 0:6], x)  # 3 rows: 1 above, 2 below; 1 column right
    assert padded.sum() == x.sum()
    mixed = match_size(x, 7, 4)
    torch.testing.assert_close(mixed[..., 1:6, :], x[..., :, 1:5])


def test_upsample_by_other_factors():
    for mode in ("transposed", "nearest", "bilinear"):
        layer = upsample_by(6, 3, mode, factor=4)
        assert layer(torch.randn(1, 6, 5, 7)).shape == (1, 3, 20, 28)
        assert upsample_by(6, 3, mode, factor=1)(torch.randn(1, 6, 5, 7)).shape == (1, 3, 5, 7)
    assert sum(p.numel() for p in upsample_by(6, 3, "transposed", 4).parameters()) == 16 * 6 * 3 + 3
    with pytest.raises(ValueError, match="factor"):
        upsample_by(6, 3, "nearest", factor=0)


def test_incoming_connections_and_the_papers_initialization():
    # "for a 3x3 convolution and 64 feature channels in the previous layer N = 9 * 64 = 576"
    assert incoming_connections(nn.Conv2d(64, 128, 3)) == 576
    assert incoming_connections(nn.Conv2d(64, 64, 3, groups=64)) == 9
    assert incoming_connections(nn.ConvTranspose2d(1024, 512, 2, stride=2)) == 1024  # one tap per input channel
    assert incoming_connections(nn.ConvTranspose2d(16, 8, 3, stride=1)) == 144
    torch.manual_seed(0)
    model = UNet(base_width=16, depth=4)  # the paper's init is the default
    for layer in (model.encoder[3].conv2.conv, model.decoder[0].up, model.bridge.conv1.conv):
        std = math.sqrt(2 / incoming_connections(layer))
        assert layer.weight.std().item() == pytest.approx(std, rel=0.03)
        assert abs(layer.weight.mean().item()) < 0.03 * std
        assert torch.count_nonzero(layer.bias) == 0
    bn = nn.BatchNorm2d(4)
    nn.init.constant_(bn.weight, 3.0)
    fan_in_normal_init(bn)
    assert torch.equal(bn.weight, torch.ones(4))


def test_mirror_pad_agrees_with_numpy_reflect():
    rng = np.random.default_rng(0)
    for height, width, pads in ((5, 4, (2, 1, 3, 0)), (3, 6, (7, 9, 11, 2)), (1, 2, (3, 0, 4, 5)), (2, 1, (0, 0, 0, 0))):
        image = rng.standard_normal((height, width))
        top, bottom, left, right = pads
        expected = np.pad(image, ((top, bottom), (left, right)), mode="reflect")
        got = mirror_pad(torch.from_numpy(image)[None, None], top, bottom, left, right)[0, 0].numpy()
        np.testing.assert_array_equal(got, expected)
    assert mirror_indices(3, 2, 2) == [2, 1, 0, 1, 2, 1, 0]


def test_padding_defaults_to_the_paper_without_an_encoder_and_padded_with_one():
    # padding=None: unpadded (572 -> 388) for the paper's net, padded over a classifier.
    with torch.device("meta"):
        plain = cnnzoo.create_model("unet")
        over_resnet = cnnzoo.create_model("unet", encoder="resnet18", in_chans=3, base_width=8)
    assert plain.output_size(572, 572) == (388, 388)
    assert over_resnet.output_size(224, 224) == (224, 224)
