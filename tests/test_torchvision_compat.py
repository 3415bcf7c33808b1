"""Every architecture cnnzoo shares with torchvision loads a torchvision state_dict as is
(or through the model's documented renames), key for key and shape for shape.

The layouts in tests/fixtures/torchvision/ were written from torchvision 0.28's own model
definitions by tests/fixtures/make_torchvision_fixtures.py; torchvision is not needed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo.torchvision_compat import load_torchvision_state_dict, torchvision_to_cnnzoo_keys

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision"
METADATA = json.loads((FIXTURES / "metadata.json").read_text())["models"]

# fixture name -> (cnnzoo model, its options)
VARIANTS = {
    "googlenet_aux": ("googlenet", {"aux_logits": True}),
    "googlenet": ("googlenet", {"aux_logits": False}),
    "inception_v3": ("inception_v3", {"aux_logits": True}),
    "inception_v3_noaux": ("inception_v3", {"aux_logits": False}),
}


def cnnzoo_model(fixture_name: str) -> torch.nn.Module:
    name, kwargs = VARIANTS.get(fixture_name, (fixture_name, {}))
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


def torchvision_layout(fixture_name: str) -> dict[str, torch.Tensor]:
    layout = json.loads((FIXTURES / f"{fixture_name}.json").read_text())
    return {key: torch.empty(shape, device="meta") for key, shape in layout.items()}


@pytest.mark.parametrize("fixture_name", sorted(METADATA))
def test_state_dict_layout_matches_torchvision(fixture_name):
    model = cnnzoo_model(fixture_name)
    theirs = torchvision_to_cnnzoo_keys(model, torchvision_layout(fixture_name))
    ours = model.state_dict()
    assert sorted(theirs) == sorted(ours)
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize("fixture_name", sorted(METADATA))
def test_parameter_count_equals_torchvision(fixture_name):
    # torchvision 0.28 weights metadata / model definition (fixtures/torchvision/metadata.json)
    expected = METADATA[fixture_name]["params_of_this_layout"]
    assert sum(p.numel() for p in cnnzoo_model(fixture_name).parameters()) == expected


def test_loading_a_torchvision_checkpoint_gives_its_weights():
    """A real (small) load: every tensor lands under the renamed key, values intact."""
    layout = json.loads((FIXTURES / "squeezenet1_1.json").read_text())
    generator = torch.Generator().manual_seed(0)
    checkpoint = {k: torch.randn(shape, generator=generator) if shape else torch.tensor(3) for k, shape in layout.items()}
    model = cnnzoo.create_model("squeezenet1_1")
    load_torchvision_state_dict(model, checkpoint)
    renamed = torchvision_to_cnnzoo_keys(model, checkpoint)
    for key, value in model.state_dict().items():
        assert torch.equal(value, renamed[key].to(value.dtype)), key


def test_checkpoint_for_another_architecture_is_refused():
    model = cnnzoo.create_model("resnet18")
    with pytest.raises(ValueError, match="does not fit"):
        load_torchvision_state_dict(model, torchvision_layout("resnet34"))


@pytest.mark.parametrize("fixture_name", sorted(METADATA))
def test_minimum_input_is_torchvisions(fixture_name):
    # torchvision 0.28 weights metadata, "min_size" (tests/fixtures/torchvision/metadata.json).
    name, _ = VARIANTS.get(fixture_name, (fixture_name, {}))
    assert cnnzoo.model_info(name).min_input_size == METADATA[fixture_name]["min_size"][0]


def test_non_strict_load_skips_missing_keys_but_refuses_wrong_shapes():
    layout = json.loads((FIXTURES / "squeezenet1_1.json").read_text())
    checkpoint = {k: torch.full(shape, 0.5) for k, shape in layout.items() if not k.startswith("classifier.")}
    model = cnnzoo.create_model("squeezenet1_1", num_classes=10)
    conv10_before = model.classifier[1].weight.clone()
    result = load_torchvision_state_dict(model, checkpoint, strict=False)
    assert sorted(result.missing_keys) == ["classifier.1.bias", "classifier.1.weight"]
    assert torch.equal(model.features[0].weight, torch.full_like(model.features[0].weight, 0.5))
    assert torch.equal(model.classifier[1].weight, conv10_before)
    # A 1000-class conv10 cannot go into a 10-class model, strict or not: a ValueError naming it.
    full = {k: torch.zeros(shape) for k, shape in layout.items()}
    with pytest.raises(ValueError, match=r"shape mismatch in classifier\.1\.bias, classifier\.1\.weight"):
        load_torchvision_state_dict(model, full, strict=False)


@pytest.mark.parametrize("not_a_dict", ["resnet18.pth", Path("resnet18.pth")])
def test_a_path_instead_of_a_state_dict_says_what_to_call(not_a_dict):
    model = cnnzoo.create_model("resnet20")
    with pytest.raises(TypeError, match=r"takes a state dict .*create_model\(name, weights='file.pth'\)"):
        load_torchvision_state_dict(model, not_a_dict)
