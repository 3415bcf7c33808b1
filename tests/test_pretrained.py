"""Pretrained weights: published names through a temporary torch hub cache, local files, run
directories; a new head, adapted input channels, freezing; and every bad file refused."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import cnnzoo
from cnnzoo import pretrained
from cnnzoo.pretrained import catalog, sources
from cnnzoo.torchvision_compat import torchvision_to_cnnzoo_keys

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision"


def torchvision_checkpoint(fixture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A trained-looking checkpoint in torchvision's own layout of ``fixture`` (keys as
    recorded from torchvision 0.28 in tests/fixtures/torchvision/): a seeded cnnzoo model's
    weights (sane scales, so activations stay finite), its batch-norm statistics made
    non-trivial, under torchvision's names."""
    layout = json.loads((FIXTURES / f"{fixture}.json").read_text())
    torch.manual_seed(seed)
    model = cnnzoo.create_model(fixture)
    ours = torchvision_to_cnnzoo_keys(model, {key: key for key in layout})  # cnnzoo name -> torchvision name
    generator = torch.Generator().manual_seed(seed)
    checkpoint = {}
    for name, value in model.state_dict().items():
        if name.endswith("running_mean"):
            value = torch.randn(value.shape, generator=generator) * 0.1
        elif name.endswith("running_var"):
            value = torch.rand(value.shape, generator=generator) + 0.5
        checkpoint[ours[name]] = value.clone()
    assert list(checkpoint) == list(layout) or sorted(checkpoint) == sorted(layout)
    return checkpoint


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub cache holding a torchvision-layout resnet18 file, published (in this test)
    as IMAGENET1K_V1 under its own hash, and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoint = torchvision_checkpoint("resnet18")
    staging = tmp_path / "staging.pth"
    torch.save(checkpoint, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    name = f"resnet18-{digest[:8]}.pth"
    folder = sources.hub_checkpoints_dir()
    folder.mkdir(parents=True)
    staging.rename(folder / name)
    entry = {"url": f"https://download.pytorch.org/models/{name}", "resize_size": 256, "crop_size": 224,
             "interpolation": "bilinear", "acc1": 69.758, "acc5": 89.078, "num_params": 11689512, "recipe": "r"}
    monkeypatch.setitem(catalog.WEIGHTS, "resnet18", {"IMAGENET1K_V1": entry})
    monkeypatch.setitem(catalog.DEFAULT, "resnet18", "IMAGENET1K_V1")

    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return folder / name, checkpoint


def test_published_weights_load_exactly_with_their_metadata(hub):
    _, checkpoint = hub
    model = cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1")
    renamed = torchvision_to_cnnzoo_keys(model, checkpoint)
    for key, value in model.state_dict().items():
        assert torch.equal(value, renamed[key].to(value.dtype)), key
    cfg = model.pretrained_cfg
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    assert (cfg["resize_size"], cfg["crop_size"], cfg["interpolation"]) == (256, 224, "bilinear")
    assert len(cfg["class_names"]) == 1000 and not cfg["new_head"]
    assert "69.758" in cfg["source"] and cfg["weights"] == "torchvision resnet18 IMAGENET1K_V1"
    assert cnnzoo.create_model("resnet18", weights="DEFAULT").pretrained_cfg["weights"].endswith("IMAGENET1K_V1")


def test_a_new_head_and_every_other_tensor_loaded(hub):
    _, checkpoint = hub
    model = cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1", num_classes=10)
    renamed = torchvision_to_cnnzoo_keys(model, checkpoint)
    head = set(model.head_children())
    for key, value in model.state_dict().items():
        if key.split(".")[0] in head:
            assert value.shape[0] == 10 and not torch.equal(value, torch.zeros_like(value))
        else:
            assert torch.equal(value, renamed[key].to(value.dtype)), key
    cfg = model.pretrained_cfg
    assert cfg["new_head"] and cfg["class_names"] is None
    assert "new head: head.fc" in cfg["loaded"] and "120 of 122 tensors loaded" in cfg["loaded"]


def test_one_input_channel_sums_the_first_convolution(hub):
    _, checkpoint = hub
    rgb = cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1").eval()
    gray = cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1", in_chans=1).eval()
    first = next(key for key in gray.state_dict() if key.endswith("weight") and gray.state_dict()[key].dim() == 4)
    torch.testing.assert_close(gray.state_dict()[first], rgb.state_dict()[first].sum(dim=1, keepdim=True))
    # An RGB image whose three channels are one gray image gives the same logits.
    image = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(gray(image), rgb(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
    assert "input convolution adapted" in gray.pretrained_cfg["loaded"]


def test_other_channel_counts_repeat_and_rescale():
    weight = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)
    five = pretrained.adapt_input_conv(weight, 5)
    expected = torch.cat([weight, weight[:, :2]], dim=1) * 3 / 5
    torch.testing.assert_close(five, expected)
    # With six channels (two copies of RGB) an input whose channels are equal responds as RGB did.
    torch.testing.assert_close(pretrained.adapt_input_conv(weight, 6).sum(dim=1), weight.sum(dim=1))


def test_the_normalization_follows_the_adapted_channels():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    assert pretrained.adapt_normalization(mean, std, 3) == (mean, std)
    gray_mean, gray_std = pretrained.adapt_normalization(mean, std, 1)
    assert gray_mean == pytest.approx(((0.485 + 0.456 + 0.406) / 3,)) and gray_std == pytest.approx(((0.229 + 0.224 + 0.225) / 3,))
    assert len(pretrained.adapt_normalization(mean, std, 4)[0]) == 4


def test_weights_not_cached_and_no_network_say_where_to_put_them(hub, monkeypatch):
    path, _ = hub
    path.unlink()
    with pytest.raises(FileNotFoundError) as caught:
        cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1")
    message = str(caught.value)
    assert "could not be downloaded (" in message and "Temporary failure" in message
    assert f"download {catalog.WEIGHTS['resnet18']['IMAGENET1K_V1']['url']} and put it at {path}" in message


def test_a_tampered_file_fails_its_hash(hub):
    path, _ = hub
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"is not the published resnet18 IMAGENET1K_V1: its SHA-256 starts"):
        cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1")


def test_names_torchvision_does_not_publish_are_listed(hub):
    with pytest.raises(ValueError, match=r"resnet18 has no published weights 'IMAGENET1K_V9' \(torchvision publishes "
                                         r"IMAGENET1K_V1, DEFAULT for resnet18\)"):
        cnnzoo.create_model("resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(ValueError, match=r"torchvision publishes no weights for resnet20; it does for .*resnet18"):
        cnnzoo.create_model("resnet20", weights="IMAGENET1K_V1")


def test_weights_of_another_architecture_name_the_tensors(tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save(torchvision_checkpoint("vgg11"), path)
    with pytest.raises(ValueError, match=r"these weights are not for ResNet \(missing or of another shape: stem"):
        cnnzoo.create_model("resnet18", weights=path)


def test_a_pickle_that_is_not_a_state_dict_is_never_executed(tmp_path):
    path = tmp_path / "evil.pth"
    marker = tmp_path / "executed"
    with open(path, "wb") as stream:
        pickle.dump(_Boom(str(marker)), stream, protocol=2)  # torch.save's protocol
    with pytest.raises(ValueError, match="is not a plain state dict: torch.load\\(weights_only=True\\) refused it"):
        cnnzoo.create_model("resnet18", weights=path)
    assert not marker.exists()


class _Boom:
    """Unpickling it would create a file: proof that the loader never runs pickled code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_truncated_files_are_refused(tmp_path):
    torch.save(torchvision_checkpoint("resnet18"), tmp_path / "r.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "r.pth").read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot read .*cut.pth as PyTorch weights"):
        cnnzoo.create_model("resnet18", weights=tmp_path / "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="cannot read .*cut.safetensors as safetensors"):
        cnnzoo.create_model("resnet18", weights=tmp_path / "cut.safetensors")
    with pytest.raises(FileNotFoundError, match="no weights file, run directory or published weights named"):
        cnnzoo.create_model("resnet18", weights=tmp_path / "missing.pth")


def test_safetensors_and_wrapped_checkpoints_load(tmp_path):
    source = cnnzoo.create_model("resnet20", num_classes=10)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "w.pth")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        model = cnnzoo.create_model("resnet20", num_classes=10, weights=path)
        for key, value in model.state_dict().items():
            assert torch.equal(value, source.state_dict()[key]), key
        assert model.pretrained_cfg["mean"] is None  # nothing known of its preprocessing


def test_freeze_up_to_a_module_and_the_backbone():
    model = cnnzoo.create_model("resnet20", num_classes=10)
    frozen = pretrained.freeze(model, "layer2")
    names = [name for name, _ in model.named_parameters()]
    assert frozen == names[: max(i for i, n in enumerate(names) if n.startswith("layer2.")) + 1]
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith(("stem", "layer1", "layer2")))
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("layer3", "head")))
    probe = cnnzoo.create_model("resnet20", num_classes=10)
    pretrained.freeze(probe, "backbone")
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]
    probe.train()
    pretrained.keep_frozen_norms_in_eval(probe)
    assert not any(m.training for m in probe.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match=r"--freeze 'layer9' names no module with parameters in ResNet; choose one "
                                         r"of backbone, stem, layer1, layer2, layer3, head"):
        pretrained.freeze(probe, "layer9")


# ---------------------------------------------------------------------------- fine-tuning


def test_fine_tuning_from_a_hub_file_keeps_the_backbone_and_trains_a_new_head(hub, tmp_path, capsys):
    from cnnzoo.engine.checkpoint import load_trained
    from cnnzoo.engine.trainer import train
    from test_engine_train import config_for

    _, checkpoint = hub
    config = config_for(tmp_path, model="resnet18", weights="IMAGENET1K_V1", freeze="backbone", epochs=4,
                        image_size=(32, 32), optimizer="adamw", lr=1e-3, channels_last=False)
    result = train(config)
    out = capsys.readouterr().out
    assert "weights: torchvision resnet18 IMAGENET1K_V1: 120 of 122 tensors loaded; new head: head.fc" in out
    assert "frozen: 60 of 62 parameter tensors (up to backbone)" in out
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]  # the new head learns
    trained = load_trained(result.run_dir, "last")
    renamed = torchvision_to_cnnzoo_keys(trained.model, checkpoint)
    for key, value in trained.model.state_dict().items():
        if key.startswith("head."):
            continue
        expected = renamed[key].to(value.dtype)
        if expected.dim() == 4 and expected.shape[1] == 3 and value.shape[1] == 1:  # the gray stem: summed
            expected = expected.sum(dim=1, keepdim=True)
        assert torch.equal(value, expected), key  # frozen: still the file's (batch-norm statistics too)
    meta = trained.meta
    # The folder's images are gray: ImageNet's statistics averaged over the three channels.
    assert meta.mean == pytest.approx((sum(catalog.IMAGENET_MEAN) / 3,))
    assert meta.std == pytest.approx((sum(catalog.IMAGENET_STD) / 3,))
    assert meta.resize_size == round(32 * 256 / 224) and meta.interpolation == "bilinear"
    assert meta.weights == "torchvision resnet18 IMAGENET1K_V1"
    assert json.loads((result.run_dir / "config.json").read_text())["weights"] == "IMAGENET1K_V1"


def test_a_lower_backbone_learning_rate_goes_to_its_own_groups():
    from cnnzoo.engine.optim import build_optimizer

    model = cnnzoo.create_model("resnet20", num_classes=10)
    optimizer = build_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, backbone_lr_scale=0.1)
    head = {id(p) for p in model.head.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) <= 1
        if group["params"]:
            assert group["lr"] == pytest.approx(0.1 if in_head == {True} else 0.01)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


# ------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("flags, message", [
    (["--weights", "IMAGENET1K_V1"], "torchvision publishes no weights for resnet20; it does for alexnet"),
    (["--weights", "nowhere/w.pth"], "no weights file, run directory or published weights named 'nowhere/w.pth'"),
    (["--freeze", "layer9"], "--freeze 'layer9' names no module with parameters in ResNet"),
    (["--backbone-lr-scale", "0"], "option 'backbone_lr_scale' must be in (0, 1], got 0.0"),
])
def test_cnnzoo_train_bad_weights_options_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    from cnnzoo.cli.main import main
    from test_engine_train import make_class_folder

    data = make_class_folder(tmp_path / "images")
    out = tmp_path / "run"
    code = main(["train", "resnet20", "--data", str(data), "--epochs", "1", "--out", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


# ---------------------------------------------------------------------------- the catalog


def test_every_published_entry_fits_its_cnnzoo_architecture():
    from cnnzoo.registry import create_meta_model, list_models

    assert len(catalog.imagenet_classes()) == 1000
    assert catalog.imagenet_classes()[0] == "tench" and catalog.imagenet_classes()[999] == "toilet tissue"
    for model in catalog.published_models():
        assert model in list_models()
        entries = catalog.published_weights(model)
        assert entries["DEFAULT"] in entries.values()
        # torchvision's parameter count of the weights (its enum's meta) equals cnnzoo's model.
        count = sum(p.numel() for p in create_meta_model(model).parameters())
        for entry in entries.values():
            assert entry.num_params == count, (model, entry.name)
            assert len(entry.hash_prefix) >= 8 and entry.file_name.endswith(".pth")
            assert entry.crop_size <= entry.resize_size and entry.interpolation in ("bilinear", "bicubic")


def test_cnnzoo_weights_lists_names_accuracies_and_the_cache(hub, capsys):
    from cnnzoo.cli.main import main

    assert main(["weights", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "resnet18  IMAGENET1K_V1 (DEFAULT)  69.76  89.08  256 -> 224      bilinear       yes" in out
    assert main(["weights", "nothing*"]) == 2
    assert "no published weights for a model matching 'nothing*'" in capsys.readouterr().err


def test_predict_summary_and_export_take_published_weights(hub, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from cnnzoo.cli.main import main

    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)
    assert main(["predict", "resnet18", "--weights", "IMAGENET1K_V1", str(photo), "--top-k", "1",
                 "--out", str(tmp_path / "out")]) == 0
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    # Independently: shorter side to 256 (bilinear), the centre 224 crop, ImageNet's normalization.
    with Image.open(photo) as image:
        resized = image.resize((round(400 * 256 / 300), 256), Image.BILINEAR)
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    pixels = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    x = (torch.from_numpy(pixels).permute(2, 0, 1) - torch.tensor(catalog.IMAGENET_MEAN)[:, None, None]) / \
        torch.tensor(catalog.IMAGENET_STD)[:, None, None]
    model = cnnzoo.create_model("resnet18", weights="IMAGENET1K_V1").eval()
    with torch.no_grad():
        expected = catalog.imagenet_classes()[int(model(x[None]).argmax())]
    (only,) = predictions["predictions"]
    assert only["top"][0]["class_name"] == expected
    capsys.readouterr()

    assert main(["summary", "resnet18", "--weights", "IMAGENET1K_V1", "--depth", "0"]) == 0
    assert "weights: torchvision resnet18 IMAGENET1K_V1: 122 of 122 tensors loaded" in capsys.readouterr().out

    assert main(["export", "resnet18", "--weights", "IMAGENET1K_V1", "--out", str(tmp_path / "r18.onnx")]) == 0
    sidecar = json.loads((tmp_path / "r18.json").read_text())
    assert sidecar["mean"] == list(catalog.IMAGENET_MEAN) and len(sidecar["class_names"]) == 1000
    assert sidecar["resize_size"] == 256 and sidecar["weights"] == "torchvision resnet18 IMAGENET1K_V1"


def test_a_kept_head_for_other_classes_is_said(tmp_path):
    from cnnzoo.data import build_data
    from cnnzoo.engine.finetune import start_from_weights
    from test_engine_train import make_class_folder

    spec = build_data(str(make_class_folder(tmp_path / "images")))
    model = cnnzoo.create_model("resnet20", num_classes=3, in_chans=1)
    model.pretrained_cfg = {"weights": "run x", "loaded": "116 of 116 tensors loaded", "class_names": ["a", "b", "c"],
                            "mean": None, "std": None}
    said = []
    start_from_weights(model, spec, None, said.append)
    assert said[1] == (f"note: the weights' head was trained on classes a, b, c, this data's are "
                       f"{', '.join(spec.class_names)}: it is kept, and training re-learns which is which")
    said.clear()
    model.pretrained_cfg["class_names"] = list(spec.class_names)
    start_from_weights(model, spec, None, said.append)
    assert len(said) == 1  # the same classes: nothing to say
