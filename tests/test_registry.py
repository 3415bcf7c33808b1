"""create_model / list_models / model_info."""

import pytest
import torch

import cnnzoo


def test_list_models_filters_by_pattern_and_task():
    assert cnnzoo.list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert "resnet50" in cnnzoo.list_models(task="classification")
    assert cnnzoo.list_models("no-such-model*") == []
    assert cnnzoo.list_models() == sorted(cnnzoo.list_models())


def test_every_family_of_the_issue_is_registered():
    expected = {
        "alexnet", "alexnet_original", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain20", "plain32", "plain44", "plain56", "plain110",
        "plain18", "plain34", "resnext50_32x4d", "resnext101_32x8d", "resnext29_8x64d",
        "densenet121", "densenet161", "densenet169", "densenet201", "densenet40_k12", "densenet_bc_100_k12",
        "mobilenet_v1", "squeezenet1_0", "squeezenet1_1", *(f"efficientnet_b{i}" for i in range(8)),
    }
    assert expected <= set(cnnzoo.list_models())


def test_create_model_passes_options():
    model = cnnzoo.create_model("resnet20", num_classes=3, in_chans=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    half = cnnzoo.create_model("mobilenet_v1", width_mult=0.5)
    full = cnnzoo.create_model("mobilenet_v1")
    assert sum(p.numel() for p in half.parameters()) < sum(p.numel() for p in full.parameters()) / 2


def test_model_info_carries_the_published_numbers():
    info = cnnzoo.model_info("resnet50")
    assert info.family == "resnet" and info.year == 2016 and "He" in info.paper
    assert info.default_input == (3, 224, 224)
    assert info.params == 25_557_032  # torchvision 0.28 weights metadata
    assert info.source


def test_unknown_name_without_close_match_points_to_list():
    with pytest.raises(cnnzoo.UnknownModelError, match="cnnzoo list"):
        cnnzoo.model_info("qqqqqqqq")


def test_model_info_lists_the_options_and_their_defaults():
    # GoogLeNet's dropouts are torchvision's (0.2 before the fc, 0.7 in the aux heads).
    assert cnnzoo.model_info("googlenet").defaults == {
        "num_classes": 1000, "in_chans": 3, "aux_logits": False, "transform_input": False,
        "paper_5x5": False, "dropout": 0.2, "dropout_aux": 0.7,
    }
    # The CIFAR nets default to 10 classes and the paper's option-A shortcuts (He et al., sec. 4.2).
    cifar = cnnzoo.model_info("resnet20").defaults
    assert (cifar["num_classes"], cifar["shortcut_type"]) == (10, "A")
