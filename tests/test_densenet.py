"""DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

Expectations come from the paper (Tables 1 and 2, section 3 and 4.2), from torchvision's
published metadata (tests/fixtures/torchvision/metadata.json) and from closed-form counts
written out below from the paper's description, never from this code's own output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.layers.dense import DenseBlock, DenseLayer, Transition, compressed_channels
from cnnzoo.models.densenet import DenseNet
from cnnzoo.torchvision_compat import torchvision_to_cnnzoo_keys

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision"
TORCHVISION = json.loads((FIXTURES / "metadata.json").read_text())["models"]
IMAGENET_MODELS = ["densenet121", "densenet161", "densenet169", "densenet201"]


# --- closed-form costs of the CIFAR models, from the paper's section 3 and 4.2 ------------

def cifar_densenet_costs(layers_per_block: int, k: int, k0: int, bottleneck: bool, theta: float,
                         num_classes: int = 10, size: int = 32) -> tuple[int, int]:
    """(parameters, MACs) of a 3-block CIFAR DenseNet: 3x3 stem conv (no bias), dense layers
    BN-ReLU-Conv3x3(k) or BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), transitions BN-ReLU-Conv1x1
    (floor(theta m))-AvgPool2x2, final BN, linear classifier. A BN has 2 parameters per
    channel; MACs count convolutions and the classifier."""
    params = 9 * 3 * k0
    macs = size * size * 9 * 3 * k0
    channels = k0
    for block in range(3):
        for layer in range(1, layers_per_block + 1):
            c_in = channels + k * (layer - 1)  # k0 + k(l - 1)
            if bottleneck:
                params += 2 * c_in + c_in * 4 * k + 2 * 4 * k + 9 * 4 * k * k
                macs += size * size * (c_in * 4 * k + 9 * 4 * k * k)
            else:
                params += 2 * c_in + 9 * c_in * k
                macs += size * size * 9 * c_in * k
        channels += layers_per_block * k
        if block < 2:
            out = math.floor(theta * channels)
            params += 2 * channels + channels * out
            macs += size * size * channels * out  # the 1x1 conv runs before the pooling
            channels, size = out, size // 2
    params += 2 * channels + channels * num_classes + num_classes
    macs += channels * num_classes
    return params, macs


CIFAR_MODELS = {
    # name: (layers per block, k, initial channels, bottleneck, theta, published params)
    # Huang et al. 2017, Table 2: DenseNet (k=12) L=40 "1.0M"; DenseNet-BC (k=12) L=100 "0.8M".
    # L = 3n + 4 without bottleneck (n = 12), L = 6n + 4 with it (n = 16).
    "densenet40_k12": (12, 12, 16, False, 1.0, 1.0e6),
    "densenet_bc_100_k12": (16, 12, 24, True, 0.5, 0.8e6),
}


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_cifar_parameter_count_is_the_published_one(name):
    *config, published = CIFAR_MODELS[name]
    model = cnnzoo.create_model(name)
    params = count_params(model)
    assert round(params / 1e6, 1) == published / 1e6  # Table 2 rounds to 0.1M
    assert params == cifar_densenet_costs(*config)[0]
    assert cnnzoo.model_info(name).params == published


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_cifar_macs_match_the_closed_form(name):
    *config, _ = CIFAR_MODELS[name]
    assert count_macs(cnnzoo.create_model(name), (3, 32, 32)) == cifar_densenet_costs(*config)[1]


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_imagenet_parameter_count_is_torchvisions(name):
    # torchvision 0.28 weights metadata ("num_params").
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    assert count_params(model) == TORCHVISION[name]["num_params"] == cnnzoo.model_info(name).params


@pytest.mark.parametrize(
    "name", ["densenet121"] + [pytest.param(n, marks=pytest.mark.slow) for n in IMAGENET_MODELS[1:]]
)
def test_imagenet_macs_within_one_percent_of_torchvision(name):
    # torchvision 0.28 metadata "GFLOPS" are multiply-adds at 224x224 (densenet121: 2.834).
    published = TORCHVISION[name]["gmacs"] * 1e9
    assert cnnzoo.model_info(name).macs == pytest.approx(published)
    assert count_macs(cnnzoo.create_model(name), (3, 224, 224)) == pytest.approx(published, rel=0.01)


def test_imagenet_feature_maps_follow_table_1():
    # Paper Table 1 output sizes at 224: stem conv 112, pooling 56, blocks 56 / 28 / 14 / 7.
    # Channels for k = 32: 64 + 6k = 256, 128 + 12k = 512, 256 + 24k = 1024, 512 + 16k = 1024.
    with torch.device("meta"):  # shapes only, no arithmetic
        model = cnnzoo.create_model("densenet121").eval()
        features = model.forward_features(torch.empty(1, 3, 224, 224))
    assert [tuple(f.shape[1:]) for f in features] == [
        (64, 112, 112), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (1024, 7, 7)
    ]
    assert [info.channels for info in model.feature_info] == [64, 256, 512, 1024, 1024]


def test_cifar_feature_maps_are_32_16_8():
    # Section 4.2: "The feature-map sizes in the three dense blocks are 32x32, 16x16, and 8x8."
    with torch.device("meta"):
        model = cnnzoo.create_model("densenet40_k12").eval()
        features = model.forward_features(torch.empty(1, 3, 32, 32))
    assert [f.shape[-1] for f in features] == [32, 16, 8]
    # No compression: 16 + 12*12 = 160, 160 + 144 = 304, 304 + 144 = 448.
    assert [f.shape[1] for f in features] == [160, 304, 448]


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_imagenet_minimum_input_is_torchvisions(name):
    assert cnnzoo.model_info(name).min_input_size == TORCHVISION[name]["min_size"][0] == 29


# --- the dense block ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["densenet121", "densenet40_k12", "densenet_bc_100_k12"])
def test_layer_l_sees_k0_plus_k_times_l_minus_1_channels(name):
    model = cnnzoo.create_model(name)
    blocks = [m for m in model.modules() if isinstance(m, DenseBlock)]
    assert len(blocks) == (4 if name == "densenet121" else 3)
    for block in blocks:
        k0 = block.in_channels
        for l, layer in enumerate(block.values(), start=1):
            k = layer.growth_rate
            assert layer.norm1.num_features == k0 + k * (l - 1)
            assert layer.conv1.in_channels == k0 + k * (l - 1)
        assert block.out_channels == k0 + k * len(block)


def test_block_output_is_input_followed_by_every_layers_maps():
    torch.manual_seed(0)
    k0, k, num_layers = 10, 6, 5
    block = DenseBlock(num_layers, k0, k).eval()
    x = torch.randn(2, k0, 9, 9)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (2, k0 + k * num_layers, 9, 9)
        assert torch.equal(out[:, :k0], x)  # the block input passes through untouched
        # Layer l reads the first k0 + k(l-1) channels and writes the next k.
        for l, layer in enumerate(block.values(), start=1):
            seen = k0 + k * (l - 1)
            assert torch.equal(out[:, seen:seen + k], layer(out[:, :seen]))


def test_composite_function_is_bn_relu_conv3x3():
    # Lecture notes / paper eq. (2): H = BN, ReLU, 3x3 conv producing k maps.
    layer = DenseLayer(20, growth_rate=12, bottleneck=False)
    assert [type(m) for m in layer.children()] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert layer.conv1.kernel_size == (3, 3) and layer.conv1.out_channels == 12
    assert layer(torch.randn(1, 20, 5, 5)).shape == (1, 12, 5, 5)


def test_bottleneck_layer_is_bn_relu_conv1x1_4k_bn_relu_conv3x3():
    # Paper section 3, "Bottleneck layers" (DenseNet-B): 1x1 conv to 4k maps before the 3x3.
    layer = DenseLayer(100, growth_rate=12, bottleneck=True)
    assert [type(m) for m in layer.children()] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d] * 2
    assert (layer.conv1.kernel_size, layer.conv1.out_channels) == ((1, 1), 48)
    assert (layer.conv2.kernel_size, layer.conv2.in_channels, layer.conv2.out_channels) == ((3, 3), 48, 12)


# --- the transition ---------------------------------------------------------------------------

def test_transition_is_bn_relu_conv1x1_avgpool2x2():
    transition = Transition(32, 16)
    assert [type(m) for m in transition.children()] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.AvgPool2d]
    assert transition.conv.kernel_size == (1, 1)


@pytest.mark.parametrize("size, expected", [(8, 4), (9, 4), (56, 28)])
def test_transition_halves_the_spatial_size_and_compresses(size, expected):
    m, theta = 75, 0.5
    transition = Transition(m, compressed_channels(m, theta))
    out = transition(torch.randn(2, m, size, size))
    assert out.shape == (2, math.floor(theta * m), expected, expected) == (2, 37, expected, expected)


def test_transitions_of_densenet121_halve_the_channels():
    # DenseNet-BC, theta = 0.5: 256 -> 128, 512 -> 256, 1024 -> 512.
    model = cnnzoo.create_model("densenet121")
    pairs = [(t.in_channels, t.out_channels) for t in model.modules() if isinstance(t, Transition)]
    assert pairs == [(256, 128), (512, 256), (1024, 512)]


def test_densenet40_has_no_compression():
    model = cnnzoo.create_model("densenet40_k12")
    assert all(t.in_channels == t.out_channels for t in model.modules() if isinstance(t, Transition))


def test_compression_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="compression"):
        compressed_channels(10, 1.5)


@pytest.mark.parametrize("drop_rate", [-0.1, 1.5])
def test_drop_rate_outside_zero_one_is_refused(drop_rate):
    # A negative rate used to be skipped silently (the layers only drop when drop_rate > 0).
    for build in (lambda: DenseLayer(8, 4, drop_rate=drop_rate), lambda: Transition(8, 4, drop_rate=drop_rate)):
        with pytest.raises(ValueError, match="drop_rate must be a probability"):
            build()
    with pytest.raises(ValueError, match="drop_rate"):
        cnnzoo.create_model("densenet40_k12", drop_rate=drop_rate)


# --- memory-efficient (checkpointed) layers ---------------------------------------------------

def _forward_backward(module: nn.Module, x: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out.detach(), x.grad, grads, {name: b.clone() for name, b in module.named_buffers()}


def _assert_same_run(plain, checkpointed):
    out_a, xgrad_a, grads_a, buffers_a = plain
    out_b, xgrad_b, grads_b, buffers_b = checkpointed
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    torch.testing.assert_close(xgrad_b, xgrad_a)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], msg=name)
    # The recomputation in backward must not update the batch-norm statistics a second time.
    for name in buffers_a:
        torch.testing.assert_close(buffers_b[name], buffers_a[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("bottleneck", [True, False])
@pytest.mark.parametrize("drop_rate", [0.0, 0.3])
def test_checkpointed_block_gives_the_same_outputs_gradients_and_statistics(bottleneck, drop_rate):
    torch.manual_seed(0)
    plain = DenseBlock(4, 8, 6, bottleneck=bottleneck, drop_rate=drop_rate).train()
    checkpointed = DenseBlock(4, 8, 6, bottleneck=bottleneck, drop_rate=drop_rate, memory_efficient=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8, 5, 5)
    _assert_same_run(_forward_backward(plain, x), _forward_backward(checkpointed, x))


def test_checkpointed_model_gives_the_same_outputs_and_gradients():
    # A small DenseNet-BC (the model wiring is what is checked; the blocks are checked above).
    config = dict(block_config=(3, 3, 3), growth_rate=6, num_init_features=12, stem="cifar", num_classes=5)
    plain = DenseNet(**config).train()
    checkpointed = DenseNet(**config, memory_efficient=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    _assert_same_run(_forward_backward(plain, x), _forward_backward(checkpointed, x))


def _bytes_saved_for_backward(module: nn.Module, x: torch.Tensor) -> int:
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in params:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(x.requires_grad_()).sum().backward()
    return sum(storages.values())


def test_checkpointing_keeps_linear_not_quadratic_activations():
    # Plain: layer l keeps its c_l = k0 + k(l-1) channel concatenation and BN-ReLU output,
    # 2 * sum_l c_l maps. Checkpointed: only the block input and each layer's k new maps.
    k0, k, num_layers = 8, 4, 12
    x = torch.randn(1, k0, 4, 4)
    plain = _bytes_saved_for_backward(DenseBlock(num_layers, k0, k, bottleneck=False), x)
    checkpointed = _bytes_saved_for_backward(DenseBlock(num_layers, k0, k, bottleneck=False, memory_efficient=True), x)
    bytes_per_map = 1 * 4 * 4 * 4  # N * H * W * sizeof(float32)
    quadratic = 2 * sum(k0 + k * (l - 1) for l in range(1, num_layers + 1))
    assert plain >= quadratic * bytes_per_map
    assert checkpointed <= (k0 + k * num_layers) * bytes_per_map < plain / 4


# --- options and torchvision checkpoints ------------------------------------------------------

def test_dropout_is_active_only_in_training():
    layer = DenseLayer(16, growth_rate=8, drop_rate=0.5)
    x = torch.randn(2, 16, 6, 6)
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


def test_old_torchvision_norm_dot_1_keys_are_renamed():
    # torchvision < 0.3 saved "denselayer1.norm.1.weight" for today's "denselayer1.norm1.weight".
    layout = json.loads((FIXTURES / "densenet121.json").read_text())
    old = {}
    for key, shape in layout.items():
        for unit in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{unit}.", f".{unit[:-1]}.{unit[-1]}.")
        old[key] = torch.empty(shape, device="meta")
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    with torch.device("meta"):
        model = cnnzoo.create_model("densenet121")
    renamed = torchvision_to_cnnzoo_keys(model, old)
    assert sorted(renamed) == sorted(model.state_dict())


def test_custom_in_chans_and_classes():
    model = cnnzoo.create_model("densenet_bc_100_k12", in_chans=1, num_classes=100).eval()
    assert model.features.conv0.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(1, 1, 8, 8)).shape == (1, 100)
