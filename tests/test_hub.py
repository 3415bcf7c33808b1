"""torch.hub entry points (hubconf.py) and Hugging Face Hub folders (save_pretrained /
from_pretrained), all on local files: no test touches the network."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelHubMixin
from torch import nn

import cnnzoo
from cnnzoo.layers.residual import BasicBlock
from cnnzoo.models import Classifier
from cnnzoo.models._hub import HubFolder
from cnnzoo.models.resnet import ResNet

ROOT = Path(__file__).resolve().parents[1]


def same_structure(a: nn.Module, b: nn.Module) -> bool:
    shapes = {key: value.shape for key, value in a.state_dict().items()}
    return type(a) is type(b) and shapes == {key: value.shape for key, value in b.state_dict().items()}


# --- torch.hub ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [("resnet50", dict(num_classes=10)), ("resnet20", dict(in_chans=1))])
def test_torch_hub_loads_from_the_local_checkout(name, options):
    model = torch.hub.load(str(ROOT), name, source="local", **options)
    assert same_structure(model, cnnzoo.create_model(name, **options))
    assert model.build_config.options == options


def test_hubconf_has_one_entry_point_per_registered_model():
    spec = importlib.util.spec_from_file_location("cnnzoo_hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # torch.hub.list's rule: the public callables of the module.
    entry_points = sorted(name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_"))
    assert entry_points == cnnzoo.list_models()
    assert hubconf.dependencies == ["torch"]
    assert hubconf.resnet20.__doc__ == cnnzoo.models.resnet.resnet20.__doc__


# --- save_pretrained / from_pretrained ---------------------------------------------------


def round_trip(model: nn.Module, folder: Path, x: torch.Tensor) -> nn.Module:
    model.save_pretrained(folder)
    loaded = cnnzoo.from_pretrained(folder)
    assert same_structure(model, loaded)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded.eval()(x))
    return loaded


def test_a_classifier_round_trips_with_its_options_and_its_head(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=10, in_chans=1, drop_path_rate=0.1)
    model.reset_classifier(4, global_pool="avgmax")  # the head as it is now is what is saved
    loaded = round_trip(model, tmp_path, torch.randn(2, 1, 32, 32))
    assert sorted(os.listdir(tmp_path)) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {
        "architecture": "resnet20",
        "options": {"num_classes": 10, "in_chans": 1, "drop_path_rate": 0.1},
        "head": {"num_classes": 4, "global_pool": "avgmax"},
    }
    assert (loaded.num_classes, loaded.global_pool_type) == (4, "avgmax")
    assert loaded.get_classifier().weight.shape == (4, 64)
    assert loaded.build_config.options == config["options"]  # so it can be saved again


def test_a_headless_classifier_and_a_segmenter_round_trip(tmp_path):
    torch.manual_seed(0)
    headless = cnnzoo.create_model("squeezenet1_1", num_classes=10)
    headless.reset_classifier(0)
    assert round_trip(headless, tmp_path / "squeezenet", torch.randn(1, 3, 32, 32)).num_classes == 0
    unet = cnnzoo.create_model("unet", num_classes=3, in_chans=1, padding=True, base_width=4, depth=2)
    round_trip(unet, tmp_path / "unet", torch.randn(1, 1, 16, 16))
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config == {"architecture": "unet", "options": {"num_classes": 3, "in_chans": 1, "padding": True,
                                                          "base_width": 4, "depth": 2}}  # a segmenter has no head entry


def test_the_weights_metadata_travels_with_them(tmp_path):
    model = cnnzoo.create_model("resnet20")
    model.pretrained_cfg = {"mean": (0.5,), "std": (0.25,), "class_names": ["cat", "dog"]}
    model.save_pretrained(tmp_path)
    assert cnnzoo.from_pretrained(tmp_path).pretrained_cfg == {"mean": [0.5], "std": [0.25], "class_names": ["cat", "dog"]}


def test_options_override_the_saved_ones_and_must_fit_the_weights(tmp_path):
    cnnzoo.create_model("resnet20").save_pretrained(tmp_path)
    finetune = cnnzoo.from_pretrained(tmp_path, drop_path_rate=0.2)
    assert finetune.layer3[2].stochastic_depth.p == 0.2 * 8 / 9
    with pytest.raises(ValueError, match=r"do not fit resnet20 with \{'in_chans': 2\}: stem.conv.weight"):
        cnnzoo.from_pretrained(tmp_path, in_chans=2)


def test_from_pretrained_goes_through_the_model_hub_mixin(tmp_path):
    cnnzoo.create_model("resnet20").save_pretrained(tmp_path)
    assert issubclass(HubFolder, ModelHubMixin)
    assert isinstance(HubFolder.from_pretrained(tmp_path).model, ResNet)
    assert isinstance(Classifier.from_pretrained(tmp_path), ResNet)  # the classmethod, on any base
    with pytest.raises(ValueError, match="holds a ResNet, not a Segmenter"):
        cnnzoo.models._segmenter.Segmenter.from_pretrained(tmp_path)


def test_what_cannot_be_saved_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="only cnnzoo.create_model"):
        ResNet(BasicBlock, (1, 1), widths=(8, 16), stem="cifar", stem_width=8).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="cannot save option act_layer=.*JSON values only"):
        cnnzoo.create_model("mobilenet_v1", act_layer=nn.ReLU).save_pretrained(tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_folder_that_is_not_a_saved_model_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        cnnzoo.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder: ./no/such/folder"):
        cnnzoo.from_pretrained("./no/such/folder")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet20", "options": {}}))
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        cnnzoo.from_pretrained(tmp_path)


def test_a_hub_repository_offline_is_one_line(tmp_path):
    # HF_HUB_OFFLINE is read when huggingface_hub is imported, so in a fresh interpreter;
    # the empty cache guarantees no copy of the repository is found.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = "import cnnzoo\ntry:\n    cnnzoo.from_pretrained('nobody/no-such-cnnzoo-model')\n" \
           "except FileNotFoundError as err:\n    print(err)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "cannot load 'nobody/no-such-cnnzoo-model': it is not a local folder, and the Hugging Face Hub "
        "is offline (HF_HUB_OFFLINE=1) with no copy in the cache"
    )


def test_a_head_without_num_classes_is_named_not_a_bare_key(tmp_path):
    model = cnnzoo.create_model("resnet20")
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    del config["head"]["num_classes"]
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"the head in config.json lacks num_classes"):
        cnnzoo.from_pretrained(tmp_path)
