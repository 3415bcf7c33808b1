"""SegNet (Badrinarayanan, Kendall, Cipolla 2017): unpooling, sizes, parameters, VGG16-BN
weights, the transposed decoder, export, errors."""

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
from cnnzoo.layers.conv import ConvNormAct, ConvTransposeNormAct, MaxPoolWithIndices, MaxUnpool
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.segnet import SegNet

# VGG16's 13 convolutions (Simonyan and Zisserman 2015, Table 1, configuration D).
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def test_unpooling_puts_each_maximum_back_where_it_was():
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0],
                      [3.0, 4.0, 8.0, 1.0],
                      [0.0, 2.0, 6.0, 7.0],
                      [9.0, 1.0, 3.0, 2.0]]).reshape(1, 1, 4, 4)
    pooled, indices = MaxPoolWithIndices(2, 2)(x)
    assert pooled.flatten().tolist() == [5.0, 8.0, 9.0, 7.0]
    assert indices.flatten().tolist() == [1, 6, 12, 11]  # row-major positions in the 4x4 map
    unpooled = MaxUnpool(2, 2)(pooled * 10, indices)
    expected = torch.tensor([[0.0, 50.0, 0.0, 0.0],
                             [0.0, 0.0, 80.0, 0.0],
                             [0.0, 0.0, 0.0, 70.0],
                             [90.0, 0.0, 0.0, 0.0]]).reshape(1, 1, 4, 4)
    torch.testing.assert_close(unpooled, expected)


def test_odd_sizes_come_back_to_the_input_size():
    torch.manual_seed(0)
    model = cnnzoo.create_model("segnet", base_width=4, num_classes=5).eval()
    assert isinstance(model, Segmenter)
    with torch.no_grad():
        for height, width in ((32, 32), (33, 47), (45, 61), (63, 32)):
            out = model(torch.randn(2, 3, height, width))
            assert out.shape == (2, 5, height, width)
            assert model.output_size(height, width) == (height, width)
    # an odd map pooled to k rows unpools to 2k + 1: the last row is all zeros
    pooled, indices = MaxPoolWithIndices(2, 2)(torch.randn(1, 2, 5, 7))
    unpooled = MaxUnpool(2, 2)(pooled, indices, output_size=(5, 7))
    assert unpooled.shape == (1, 2, 5, 7)
    assert torch.count_nonzero(unpooled[..., 4, :]) == 0 and torch.count_nonzero(unpooled[..., :, 6]) == 0


def segnet_params(classes, in_chans=3, width=64, depth=5):
    """SegNet's parameters from its layer table: encoder convs with bias + BN; mirrored
    decoder convs without bias + BN; a 3x3 classifier with bias."""
    multipliers, per_stage = (1, 2, 4, 8, 8)[:depth], (2, 2, 3, 3, 3)[:depth]
    widths = [width * m for m in multipliers]
    total, channels = 0, in_chans
    for convs, w in zip(per_stage, widths):
        for _ in range(convs):
            total += 9 * channels * w + w + 2 * w
            channels = w
    for stage in reversed(range(depth)):
        outs = [widths[stage]] * (per_stage[stage] - 1) + ([widths[stage - 1]] if stage else [])
        c_in = widths[stage]
        for c_out in outs:
            total += 9 * c_in * c_out + 2 * c_out
            c_in = c_out
    return total + 9 * widths[0] * classes + classes


def test_encoder_is_vgg16s_13_convolutions_14_7m_parameters():
    # "the encoder network ... has 14.7M parameters" = VGG16's conv layers, weights and biases.
    assert sum(9 * c_in * c_out + c_out for c_in, c_out in VGG16_CONVS) == 14_714_688
    with torch.device("meta"):
        model = cnnzoo.create_model("segnet")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == VGG16_CONVS
    assert sum(p.numel() for m in convs for p in m.parameters()) == 14_714_688


def test_parameter_count_and_summary():
    with torch.device("meta"):
        model = cnnzoo.create_model("segnet")
    summary = summarize(model, (3, 360, 480))
    assert summary.total.params == segnet_params(12) == 29_446_220
    assert summary.total.output_shape == (1, 12, 360, 480)
    for options in (dict(base_width=16, depth=3, num_classes=2, in_chans=1), dict(decoder="transposed", depth=4)):
        with torch.device("meta"):
            variant = cnnzoo.create_model("segnet", **options)
        expected = segnet_params(options.get("num_classes", 12), options.get("in_chans", 3),
                                 options.get("base_width", 64), options.get("depth", 5))
        assert sum(p.numel() for p in variant.parameters()) == expected


def test_summary_counts_each_unpooling():
    with torch.device("meta"):
        model = cnnzoo.create_model("segnet")
    summary = summarize(model, (3, 360, 480))
    unpools = [row for row in summary.rows if row.type == "MaxUnpool"]
    # pooled maps (channels, rows, columns) read by each decoder stage, deep to shallow:
    # 360x480 -> 180x240 -> 90x120 -> 45x60 -> 22x30 -> 11x15 (floor at 45)
    pooled = [(512, 11, 15), (512, 22, 30), (256, 45, 60), (128, 90, 120), (64, 180, 240)]
    before = [(22, 30), (45, 60), (90, 120), (180, 240), (360, 480)]
    assert [row.name for row in unpools] == [f"decoder.{i}.unpool" for i in range(5)]
    assert [row.output_shape for row in unpools] == [(1, c, h, w) for (c, _, _), (h, w) in zip(pooled, before)]
    # one placement per unpooled value, no multiply-adds
    assert [row.ops for row in unpools] == [{"resample": c * h * w} for c, h, w in pooled]
    assert all(row.macs == 0 for row in unpools)
    assert summary.total.ops["resample"] == sum(c * h * w for c, h, w in pooled)


def test_encoder_keys_match_vgg16_bn_and_its_weights_load():
    with torch.device("meta"):
        vgg = cnnzoo.create_model("vgg16_bn")
        meta_segnet = cnnzoo.create_model("segnet")
    vgg_keys = {k: tuple(v.shape) for k, v in vgg.state_dict().items() if k.startswith("features.")}
    ours = {f"features.{k}": tuple(v.shape) for k, v in meta_segnet.features.state_dict().items()}
    assert ours == vgg_keys and "features.41.running_var" in ours

    # Random "pretrained" weights in VGG16-BN's features; its head stays on the meta device.
    torch.manual_seed(0)
    vgg.features = vgg.features.to_empty(device="cpu")
    with torch.no_grad():
        for name, tensor in vgg.features.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            else:
                tensor.normal_(0, 0.05)
    model = cnnzoo.create_model("segnet")
    model.load_vgg16_bn_encoder(vgg.state_dict())
    vgg.eval(), model.eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x)[0], vgg.forward_features(x)[-1])
    shallow = cnnzoo.create_model("segnet", depth=2)
    shallow.load_vgg16_bn_encoder(vgg.state_dict())  # the first two stages
    torch.testing.assert_close(shallow.features[7].weight, vgg.features[7].weight)


def test_loading_wrong_weights_names_the_problem():
    with torch.device("meta"):
        vgg16 = cnnzoo.create_model("vgg16")
        vgg16_bn = cnnzoo.create_model("vgg16_bn")
        narrow = cnnzoo.create_model("segnet", base_width=32)
    with pytest.raises(ValueError, match="not a VGG16-BN state dict.*missing"):
        narrow.load_vgg16_bn_encoder(vgg16.state_dict())
    with pytest.raises(ValueError, match=r"do not fit this encoder.*features\.0\.weight: \(64, 3, 3, 3\) for \(32, 3, 3, 3\)"):
        narrow.load_vgg16_bn_encoder(vgg16_bn.state_dict())


def test_transposed_decoder_is_the_flipped_convolution():
    # A stride-1 transposed conv computes the convolution with the kernel flipped and its
    # input and output channels swapped: copying the weights that way makes the two
    # decoders give the same output.
    torch.manual_seed(0)
    conv = cnnzoo.create_model("segnet", base_width=4, depth=3, decoder="conv").eval()
    transposed = cnnzoo.create_model("segnet", base_width=4, depth=3, decoder="transposed").eval()
    assert all(isinstance(layer, ConvTransposeNormAct) for stage in transposed.decoder for layer in stage.convs)
    assert all(isinstance(layer, ConvNormAct) for stage in conv.decoder for layer in stage.convs)
    state = conv.state_dict()
    for name, module in transposed.named_modules():
        if isinstance(module, nn.ConvTranspose2d):
            state[f"{name}.weight"] = conv.get_submodule(name).weight.flip(-2, -1).transpose(0, 1)
    transposed.load_state_dict(state)
    x = torch.randn(2, 3, 24, 20)
    with torch.no_grad():
        torch.testing.assert_close(transposed(x), conv(x), rtol=1e-5, atol=1e-5)


def test_he_initialization_with_fan_in():
    torch.manual_seed(0)
    model = cnnzoo.create_model("segnet", base_width=16, decoder="transposed")
    for layer in (model.features[24], model.decoder[0].convs[1].conv, model.classifier):
        fan_in = 9 * layer.in_channels
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = cnnzoo.create_model("segnet", base_width=4, num_classes=3)
    out = model(torch.randn(2, 3, 32, 35))
    nn.functional.cross_entropy(out, torch.randint(0, 3, (2, 32, 35))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_registry_entry_and_minimum_size():
    info = cnnzoo.model_info("segnet")
    assert (info.task, info.family, info.year, info.default_input) == ("segmentation", "segnet", 2017, (3, 360, 480))
    assert info.defaults == dict(num_classes=12, in_chans=3, base_width=64, depth=5, decoder="conv")
    model = cnnzoo.create_model("segnet", base_width=2).eval()
    assert model.min_input_size == info.min_input_size == 32
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 12, 32, 32)
        with pytest.raises(ValueError, match="at least 32x32"):
            model(torch.randn(1, 3, 31, 40))
        with pytest.raises(RuntimeError):  # the minimum is the true one
            model.encode(torch.randn(1, 3, 31, 31))
        with pytest.raises(ValueError, match="input channel"):
            model(torch.randn(1, 1, 32, 32))
    assert SegNet(depth=3, base_width=2).min_input_size == 8


@pytest.mark.parametrize("options, message", [
    (dict(decoder="deconv"), "decoder must be one of conv, transposed"),
    (dict(depth=6), "at most 5 stages"),
    (dict(depth=0), "depth must be a positive integer"),
    (dict(base_width=0), "base_width must be a positive integer"),
    (dict(in_chans=0), "in_chans must be a positive integer"),
])
def test_bad_options_are_value_errors(options, message):
    with torch.device("meta"), pytest.raises(ValueError, match=message):
        cnnzoo.create_model("segnet", **options)


def test_legacy_onnx_exporter_gets_a_clear_error():
    model = cnnzoo.create_model("segnet", base_width=2, depth=2).eval()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="dynamo exporter"):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 9, 11),), io.BytesIO(), dynamo=False)


def test_torchscript_trace_matches_the_model():
    torch.manual_seed(0)
    model = cnnzoo.create_model("segnet", base_width=2, depth=3, num_classes=4).eval()
    x = torch.randn(1, 3, 27, 34)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.slow
def test_dynamo_onnx_export_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = cnnzoo.create_model("segnet", base_width=2, depth=3, num_classes=4).eval()
    x = torch.randn(1, 3, 27, 34)  # odd sizes: the unpooling's output size is in the graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), None, dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == expected.shape == (1, 4, 27, 34)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
