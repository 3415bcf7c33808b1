"""The timm-style model API: stochastic depth (``drop_path_rate``), ``reset_classifier`` /
``get_classifier``, ``global_pool`` and ``features_only``, each against an exact formula or
an independent computation.

Huang et al., "Deep Networks with Stochastic Depth", 2016 (a dropped block is its shortcut;
survivors scaled by 1 / (1 - p)); He et al. 2016, Table 1 (the ResNet-50 stage widths and
strides of the features_only example).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.layers.residual import BasicBlock, Bottleneck
from cnnzoo.layers.stochastic_depth import linear_drop_rates
from cnnzoo.models._features import FeatureExtractor
from cnnzoo.models.resnet import ResNet
from cnnzoo.registry import create_meta_model

CLASSIFIERS = cnnzoo.list_models(task="classification")
RESIDUAL_FAMILIES = {"resnet", "resnext", "efficientnet"}
POOLED_LINEAR_FAMILIES = {"resnet", "resnext", "densenet", "mobilenet", "efficientnet", "inception"}
POOLS = {
    "avg": lambda x: x.mean(dim=(2, 3)),
    "max": lambda x: x.amax(dim=(2, 3)),
    "avgmax": lambda x: (x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))) / 2,
}


def small_input(name: str, batch: int = 2) -> torch.Tensor:
    """A small input the model accepts: its minimum, rounded up to a multiple of 32."""
    minimum = cnnzoo.model_info(name).min_input_size
    size = max(32, -(-minimum // 32) * 32)
    return torch.randn(batch, 3, size, size)


def block_rates(model: nn.Module) -> list[float]:
    """The stochastic-depth probability of every residual block, shallow to deep."""
    return [module.stochastic_depth.p for module in model.modules() if hasattr(module, "stochastic_depth")]


# --- stochastic depth --------------------------------------------------------------------


def test_linear_drop_rates_are_rate_times_i_over_n():
    assert linear_drop_rates(0.3, 4) == [0.0, 0.3 * 1 / 4, 0.3 * 2 / 4, 0.3 * 3 / 4]
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\]"):
        linear_drop_rates(1.5, 4)


@pytest.mark.parametrize("name, blocks", [
    ("resnet50", 3 + 4 + 6 + 3), ("resnet20", 9), ("resnext29_8x64d", 9), ("resnext50_32x4d", 16),
    ("efficientnet_b0", 16),
])
def test_every_block_gets_the_linear_schedule(name, blocks):
    model = create_meta_model(name, drop_path_rate=0.2)
    assert block_rates(model) == [0.2 * i / blocks for i in range(blocks)]


def test_residual_families_take_drop_path_rate_and_the_others_do_not():
    for name in CLASSIFIERS:
        info = cnnzoo.model_info(name)
        residual = info.family in RESIDUAL_FAMILIES and not name.startswith("plain")
        assert ("drop_path_rate" in info.defaults) == residual, name


def test_plain_nets_refuse_drop_path():
    with pytest.raises(ValueError, match="bad option .*drop_path_rate"):
        cnnzoo.create_model("plain20", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="no residual branch"):
        ResNet(BasicBlock, (1, 1), widths=(8, 16), stem="cifar", stem_width=8, shortcut=False, drop_path_rate=0.1)
    with pytest.raises(ValueError, match="no residual branch"):
        BasicBlock(8, 8, shortcut=False, drop_path=0.1)


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnext29_8x64d", "efficientnet_b0"])
def test_eval_output_does_not_depend_on_drop_path(name):
    torch.manual_seed(0)
    with_drop = cnnzoo.create_model(name, num_classes=4, drop_path_rate=0.5).eval()
    without = cnnzoo.create_model(name, num_classes=4, drop_path_rate=0.0).eval()
    without.load_state_dict(with_drop.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(with_drop(x), without(x))


@pytest.mark.parametrize("block, stride, shortcut_type", [
    (BasicBlock, 1, "B"), (BasicBlock, 2, "A"), (BasicBlock, 2, "B"), (Bottleneck, 1, "B"), (Bottleneck, 2, "C"),
])
def test_a_block_always_dropped_is_its_shortcut(block, stride, shortcut_type):
    torch.manual_seed(0)
    module = block(16, 16 if block is BasicBlock else 4, stride, shortcut_type=shortcut_type, drop_path=1.0).train()
    x = torch.randn(4, 16, 8, 8)
    out = module(x)
    assert torch.equal(out, F.relu(module.downsample(x)))
    out.sum().backward()  # the dropped branch still gets its (zero) gradient
    assert module.conv1.conv.weight.grad is not None and not module.conv1.conv.weight.grad.any()


def test_drop_path_keeps_or_drops_whole_samples_and_scales_the_kept():
    torch.manual_seed(0)
    p = 0.5
    module = BasicBlock(8, 8, drop_path=p).train()
    x = torch.randn(64, 8, 4, 4)
    out = module(x)
    branch = module.residual(x)  # same batch, so the same batch-norm statistics
    kept = [torch.allclose(out[n], F.relu(x[n] + branch[n] / (1 - p)), atol=1e-6) for n in range(64)]
    dropped = [torch.equal(out[n], F.relu(x[n])) for n in range(64)]
    assert all(k != d for k, d in zip(kept, dropped)), "each sample is either kept or dropped, whole"
    assert 16 < sum(dropped) < 48  # p = 0.5 of 64 samples; 8 standard deviations either side


def test_efficientnet_takes_drop_path_rate_as_its_stochastic_depth():
    assert block_rates(create_meta_model("efficientnet_b0", drop_path_rate=0.4)) == [0.4 * i / 16 for i in range(16)]
    assert block_rates(create_meta_model("efficientnet_b0")) == [0.2 * i / 16 for i in range(16)]  # the released 0.2
    with pytest.raises(ValueError, match="not both"):
        create_meta_model("efficientnet_b0", stochastic_depth=0.3, drop_path_rate=0.1)
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\]"):
        create_meta_model("efficientnet_b0", drop_path_rate=1.5)


# --- reset_classifier / get_classifier ---------------------------------------------------


def aux_heads(model: nn.Module) -> list[str]:
    return [head for head in getattr(model, "aux_taps", {}).values() if head in model._modules]


def final_layers(model: nn.Module) -> tuple[str, ...]:
    """Prefixes of the layers that score the classes: the final layer, and the last linear
    layer of each auxiliary head."""
    names = [model.classifier_name]
    for head in aux_heads(model):
        names.append(f"{head}.{[n for n, m in getattr(model, head).named_modules() if isinstance(m, nn.Linear)][-1]}")
    return tuple(f"{name}." for name in names)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reset_classifier_replaces_only_the_final_layer(name):
    # On the meta device (shapes, no values): every tensor outside the final layers must be
    # the very object it was; the values themselves are checked on real models below.
    model = create_meta_model(name, num_classes=7).eval()
    assert model.classifier_name.split(".")[0] in model.head_children()
    old = model.get_classifier()
    before = model.state_dict(keep_vars=True)
    x = small_input(name).to("meta")

    model.reset_classifier(5)
    assert model.get_classifier() is not old and model.num_classes == 5
    assert model(x).shape == (2, 5)
    after, final = model.state_dict(keep_vars=True), final_layers(model)
    assert after.keys() == before.keys()
    for key, value in after.items():
        if key.startswith(final):
            assert value is not before[key] and value.shape[0] == 5 and value.shape[1:] == before[key].shape[1:], key
        else:
            assert value is before[key], f"{key} was replaced"
    assert any(key.startswith(final[0]) for key in after)

    model.reset_classifier(0)  # no final layer (nor aux heads): the features it reads
    assert isinstance(model.get_classifier(), nn.Identity) and not aux_heads(model)
    assert model(x).shape == (2, model.num_features)
    assert not any(key.startswith(final) for key in model.state_dict())


@pytest.mark.parametrize("name", ["resnet20", "googlenet", "squeezenet1_1", "efficientnet_b0", "alexnet"])
def test_reset_classifier_keeps_every_other_value(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=7).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x = small_input(name)
    with torch.no_grad():
        features = model.forward_features(x)
        model.reset_classifier(5)
        assert all(torch.equal(a, b) for a, b in zip(model.forward_features(x), features))
    changed = [key for key, value in model.state_dict().items() if not torch.equal(value, before[key])]
    assert changed == [f"{model.classifier_name}.weight", f"{model.classifier_name}.bias"]


@pytest.mark.parametrize("name", ["resnet20", "densenet40_k12", "mobilenet_v1", "efficientnet_b0", "googlenet"])
def test_num_classes_0_gives_the_pooled_features(name):
    model = cnnzoo.create_model(name).eval()
    model.reset_classifier(0)
    x = small_input(name)
    with torch.no_grad():
        last = model.forward_features(x)[-1]
        if hasattr(model, "head_conv"):  # EfficientNet's head starts with its 1x1 conv
            last = model.head_conv(last)
        torch.testing.assert_close(model(x), last.mean(dim=(2, 3)))


def test_num_classes_0_of_vgg_and_squeezenet_are_their_penultimate_features():
    vgg = cnnzoo.create_model("vgg11").eval()
    squeezenet = cnnzoo.create_model("squeezenet1_1").eval()
    for model in (vgg, squeezenet):
        model.reset_classifier(0)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        pool5 = torch.flatten(vgg.avgpool(vgg.forward_features(x)[-1]), 1)
        fc7 = F.relu(vgg.classifier[3](F.relu(vgg.classifier[0](pool5))))
        torch.testing.assert_close(vgg(x), fc7)
        fire9 = squeezenet.forward_features(x)[-1]
        torch.testing.assert_close(squeezenet(x), F.relu(fire9).mean(dim=(2, 3)))
    assert vgg.num_features == 4096 and squeezenet.num_features == 512


def test_reset_classifier_resets_the_aux_heads_too():
    model = cnnzoo.create_model("googlenet", aux_logits=True).train()
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(5)
    assert [tuple(out.shape) for out in model(x)] == [(2, 5)] * 3
    model.reset_classifier(0)
    assert model.aux_logits is False and "aux1" not in model.head_children()
    assert model(x).shape == (2, 1024)


def test_a_classifier_without_final_layer_cannot_be_convolutionalized():
    model = cnnzoo.create_model("resnet20")
    model.reset_classifier(0)
    with pytest.raises(ValueError, match="without its final layer"):
        cnnzoo.convolutionalize(model)


def test_reset_classifier_keeps_the_dtype_and_checks_the_count():
    model = cnnzoo.create_model("resnet20").double()
    model.reset_classifier(3)
    assert model.get_classifier().weight.dtype == torch.float64
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            model.reset_classifier(bad)


# --- global_pool -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet20", "resnext29_8x64d", "densenet40_k12", "mobilenet_v1", "efficientnet_b0",
                                  "googlenet", "inception_v3"])
@pytest.mark.parametrize("pool", list(POOLS))
def test_global_pool_is_that_pooling_then_the_final_layer(name, pool):
    model = cnnzoo.create_model(name, num_classes=4, global_pool=pool).eval()
    assert model.global_pool_type == pool
    x = small_input(name)
    with torch.no_grad():
        last = model.forward_features(x)[-1]
        if hasattr(model, "head_conv"):
            last = model.head_conv(last)
        fc = model.get_classifier()
        torch.testing.assert_close(model(x), F.linear(POOLS[pool](last), fc.weight, fc.bias))


def test_reset_classifier_can_change_the_pooling():
    model = cnnzoo.create_model("resnet20").eval()
    model.reset_classifier(0, global_pool="max")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_features(x)[-1].amax(dim=(2, 3)))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_global_pool_is_offered_where_the_head_pools_then_classifies(name):
    model = create_meta_model(name)
    if cnnzoo.model_info(name).family in POOLED_LINEAR_FAMILIES:
        assert model.global_pool_type == "avg"  # the papers' global average pooling
    else:
        assert model.global_pool_type is None
        with pytest.raises(ValueError, match="no global_pool to choose"):
            model.set_global_pool("max")


@pytest.mark.parametrize("pool", ["", None, "sum", "Max"])
def test_unknown_pooling_names_the_choices(pool):
    model = create_meta_model("resnet20")
    with pytest.raises(ValueError, match="global_pool must be one of avg, max, avgmax"):
        model.set_global_pool(pool)


def test_global_pool_applies_to_classifiers_only():
    with pytest.raises(ValueError, match="applies to classifiers"):
        create_meta_model("fcn32s", global_pool="max")


# --- features_only -----------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_features_only_describes_the_chosen_stage_maps(name):
    classifier = create_meta_model(name, num_classes=3).eval()
    chosen = (0, len(classifier.feature_info) - 1)
    x = small_input(name).to("meta")
    expected, head = classifier.forward_features(x), set(classifier.head_children())
    extractor = FeatureExtractor(classifier, chosen)
    assert not head & set(extractor.body._modules), "the head is dropped"
    maps = extractor(x)
    assert [tuple(m.shape) for m in maps] == [tuple(expected[i].shape) for i in chosen]
    assert extractor.feature_info.channels() == [fmap.shape[1] for fmap in maps]
    assert extractor.feature_info.reduction() == [classifier.feature_info[i].stride for i in chosen]
    for fmap, stride in zip(maps, extractor.feature_info.reduction()):
        size = x.shape[-1]  # nominal strides: valid convs and odd sizes may lose a few border pixels
        assert size - 3 * stride <= fmap.shape[-1] * stride <= size + stride


@pytest.mark.parametrize("name", ["resnet20", "densenet40_k12", "squeezenet1_1", "googlenet", "efficientnet_b0", "vgg11"])
def test_features_only_maps_are_those_of_forward_features(name):
    torch.manual_seed(0)
    classifier = cnnzoo.create_model(name, num_classes=3).eval()
    chosen = tuple(range(len(classifier.feature_info)))[1::2]
    extractor = FeatureExtractor(copy.deepcopy(classifier), chosen).eval()
    x = small_input(name)
    with torch.no_grad():
        expected = classifier.forward_features(x)
        assert all(torch.equal(fmap, expected[i]) for fmap, i in zip(extractor(x), chosen, strict=True))


def test_create_model_features_only_resnet50():
    torch.manual_seed(0)
    extractor = cnnzoo.create_model("resnet50", features_only=True, out_indices=(1, 2, 3)).eval()
    torch.manual_seed(0)
    classifier = cnnzoo.create_model("resnet50").eval()
    # He et al. 2016, Table 1: conv2_x .. conv4_x end with 256, 512, 1024 channels at strides 4, 8, 16.
    assert extractor.feature_info.channels() == [256, 512, 1024]
    assert extractor.feature_info.reduction() == [4, 8, 16]
    assert extractor.feature_info.names() == ["layer1", "layer2", "layer3"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps, expected = extractor(x), classifier.forward_features(x)[1:4]
    assert [tuple(m.shape) for m in maps] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4)]
    assert all(torch.equal(a, b) for a, b in zip(maps, expected))
    body = {key[len("body."):]: value for key, value in extractor.state_dict().items()}
    assert body.keys() == {key for key in classifier.state_dict() if not key.startswith("head.")}


def test_features_only_defaults_to_every_stage_and_counts_from_the_end():
    extractor = create_meta_model("resnet18", features_only=True)
    assert extractor.out_indices == (0, 1, 2, 3, 4)
    assert create_meta_model("resnet18", features_only=True, out_indices=(-1, -2)).out_indices == (4, 3)


@pytest.mark.parametrize("out_indices", [(1, 2, 3), (-4,), (), (0.5,), 2])
def test_out_of_range_out_indices_name_the_valid_range(out_indices):
    with pytest.raises(ValueError, match=r"from 0 to 2 \(or -3 to -1 from the deepest\) of resnet20's 3 stages"):
        create_meta_model("resnet20", features_only=True, out_indices=out_indices)


def test_features_only_options_are_checked():
    with pytest.raises(ValueError, match="pass features_only=True"):
        create_meta_model("resnet20", out_indices=(1,))
    with pytest.raises(ValueError, match="applies to classifiers"):
        create_meta_model("unet", features_only=True)
    with pytest.raises(ValueError, match="features_only must be True or False"):
        create_meta_model("resnet20", features_only="yes")
