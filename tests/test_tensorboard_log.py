"""TensorBoard events of a run: asked for or not, installed or not, and what they hold."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image

from cnnzoo.engine.rundir import RunDir
from cnnzoo.engine.tensorboard_log import MISSING, hparam_values, scalar_tag
from cnnzoo.engine.trainer import train
from test_engine_train import config_for  # a tiny classification run on three classes of 8x8 images

EPOCHS = [{"epoch": 1, "train_loss": 0.9, "train_acc1": 0.4, "val_loss": 1.0, "acc1": 0.5, "lr": 0.1,
           "seconds": 2.0, "iou_per_class": [0.1]},
          {"epoch": 2, "train_loss": 0.5, "train_acc1": 0.7, "val_loss": 0.6, "acc1": 0.75, "lr": 0.05,
           "seconds": 2.0}]


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter and records its calls."""

    calls: list[tuple] = []

    def __init__(self, log_dir):
        FakeWriter.calls = [("log_dir", log_dir)]

    def __getattr__(self, method):
        return lambda *args, **kwargs: FakeWriter.calls.append((method, *args, *kwargs.items()))


@pytest.fixture()
def fake_tensorboard(monkeypatch):
    FakeWriter.calls = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    return FakeWriter


@pytest.fixture()
def no_tensorboard(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import raises ImportError


@pytest.mark.parametrize("key, tag", [
    ("train_loss", "loss/train"), ("val_loss", "loss/val"), ("train_acc1", "acc1/train"), ("acc1", "acc1/val"),
    ("miou", "miou/val"), ("lr", "optim/lr"), ("seconds", "time/epoch_seconds"),
])
def test_train_and_val_values_of_a_metric_share_its_prefix(key, tag):
    assert scalar_tag(key) == tag


def test_hparam_values_are_what_the_hparams_tab_takes():
    values = hparam_values({"lr": 0.1, "epochs": 2, "nesterov": True, "model": "resnet20", "clip_grad": None,
                            "image_size": [28, 28], "model_kwargs": {"width": 2}})
    assert values == {"lr": 0.1, "epochs": 2, "nesterov": True, "model": "resnet20", "clip_grad": "null",
                      "image_size": "[28, 28]", "model_kwargs": '{"width": 2}'}


def test_a_run_logs_scalars_layout_pictures_and_hparams(tmp_path, fake_tensorboard):
    run = RunDir(tmp_path / "run")
    run.create()
    run.write_config({"model": "resnet20", "lr": 0.1, "clip_grad": None})
    for row in EPOCHS:
        run.log_tensorboard(row["epoch"], row)
    Image.fromarray(np.full((4, 6, 4), 200, np.uint8)).save(run.plots / "curves.png")  # RGBA, as matplotlib's
    run.close()
    calls = fake_tensorboard.calls
    assert calls[0] == ("log_dir", str(tmp_path / "run" / "tensorboard"))
    layouts = [call[1] for call in calls if call[0] == "add_custom_scalars"]
    assert layouts == [{"train and val": {"acc1": ["Multiline", ["acc1/train", "acc1/val"]],
                                          "loss": ["Multiline", ["loss/train", "loss/val"]]}}]
    scalars = [call[1:] for call in calls if call[0] == "add_scalar"]
    assert scalars[:6] == [("loss/train", 0.9, 1), ("acc1/train", 0.4, 1), ("loss/val", 1.0, 1),
                           ("acc1/val", 0.5, 1), ("optim/lr", 0.1, 1), ("time/epoch_seconds", 2.0, 1)]
    assert len(scalars) == 12  # six an epoch; the per-class list is left out
    (image,) = [call for call in calls if call[0] == "add_image"]
    assert image[1] == "plots/curves" and image[2].shape == (4, 6, 3) and image[3] == 2
    (hparams,) = [call for call in calls if call[0] == "add_hparams"]
    assert hparams[1] == {"model": "resnet20", "lr": 0.1, "clip_grad": "null"}
    assert hparams[2] == {"loss/train": 0.5, "acc1/train": 0.7, "loss/val": 0.6, "acc1/val": 0.75}
    assert ("run_name", ".") in hparams and ("global_step", 2) in hparams
    assert calls[-1] == ("close",)


def test_asked_for_without_the_package_warns_once_and_writes_nothing(tmp_path, capsys, no_tensorboard):
    run = RunDir(tmp_path / "run", tensorboard=True)
    run.create()
    run.log_tensorboard(1, EPOCHS[0])
    run.close()
    assert capsys.readouterr().err == MISSING + "\n" and "pip install tensorboard" in MISSING
    assert not (tmp_path / "run" / "tensorboard").exists()


@pytest.mark.parametrize("asked", [None, False])
def test_not_asked_for_says_nothing(tmp_path, capsys, no_tensorboard, asked):
    run = RunDir(tmp_path / "run", tensorboard=asked)
    run.create()
    run.log_tensorboard(1, EPOCHS[0])
    run.close()
    assert capsys.readouterr().err == "" and not (tmp_path / "run" / "tensorboard").exists()


def test_turned_off_writes_nothing_even_when_installed(tmp_path, fake_tensorboard):
    run = RunDir(tmp_path / "run", tensorboard=False)
    run.create()
    run.log_tensorboard(1, EPOCHS[0])
    run.close()
    assert fake_tensorboard.calls == []


def test_training_writes_real_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")  # the optional extra: `pip install tensorboard`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    result = train(config_for(tmp_path, epochs=2, tensorboard=True))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/val", "acc1/train", "acc1/val", "optim/lr"} <= set(tags["scalars"])
    logged = events.Scalars("acc1/val")[:2]  # then the final value again, for the HParams tab
    assert [event.step for event in logged] == [row["epoch"] for row in result.history]
    assert [event.value for event in logged] == pytest.approx([row["acc1"] for row in result.history])
    assert set(tags["images"]) == {"plots/curves", "plots/confusion"}
    assert "custom_scalars__config__" in tags["tensors"]
    start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["lr"].number_value == pytest.approx(0.1)
    assert start.session_start_info.hparams["model"].string_value == "resnet20"
