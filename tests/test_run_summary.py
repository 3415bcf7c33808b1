"""What a run says before epoch 1: checked against independent counts."""

from __future__ import annotations

import torch

from cnnzoo.analysis import count_macs
from cnnzoo.data import build_data
from cnnzoo.engine.config import resolve_config
from cnnzoo.engine.run_summary import class_shares, describe_run
from cnnzoo.engine.trainer import train
from cnnzoo.registry import create_model
from cnnzoo.utils.text import format_count
from test_engine_train import config_for, make_class_folder


def test_class_shares_of_a_folder_count_its_samples(tmp_path):
    spec = build_data(str(make_class_folder(tmp_path / "images", per_class=10)))
    counts = torch.bincount(torch.stack([spec.train[i]["target"] for i in range(len(spec.train))]), minlength=3)
    expected = {name: float(counts[i]) / len(spec.train) for i, name in enumerate(spec.class_names)}
    assert class_shares(spec) == expected


def test_class_shares_of_masks_count_labelled_pixels():
    spec = build_data("shapes", image_size=32, train_size=20, val_size=4)
    masks = torch.stack([spec.train[i]["target"] for i in range(len(spec.train))])  # 20 < SHARE_SAMPLES: all read
    counts = torch.bincount(masks.flatten(), minlength=spec.num_classes).double()
    shares = class_shares(spec)
    for index, name in enumerate(spec.class_names):
        assert shares[name] == float(counts[index] / counts.sum())


def test_describe_run_names_cost_data_schedule_hardware_and_weights(tmp_path):
    config = config_for(tmp_path, epochs=3, batch_size=8)
    spec = build_data(config.data)
    model = create_model("resnet20", num_classes=spec.num_classes, in_chans=spec.in_chans)
    lines = describe_run(model, spec, config, torch.device("cpu"), 3, None)
    macs = count_macs(model, (spec.in_chans, *spec.image_size))
    params = sum(p.numel() for p in model.parameters())
    assert lines[0] == f"model:    resnet20: {format_count(params)} parameters, {format_count(macs)} MACs per 1x8x8 image"
    shares = ", ".join(f"{name} {share:.0%}" for name, share in class_shares(spec).items())
    assert lines[1] == (f"data:     {spec.name} (classification): {len(spec.train)} training and {len(spec.val)} "
                        f"validation samples, 3 classes; training images by class: {shares}")
    assert lines[2] == "schedule: 3 epochs of 3 steps (batch 8), sgd lr 0.1"
    assert lines[3].startswith("hardware: cpu, ") and lines[4] == "weights:  random initialization (seed 0)"


def test_a_run_prints_its_summary_before_epoch_1(tmp_path, capsys):
    train(resolve_config({}, dict(model="unet", data="shapes", train_size=32, val_size=8, epochs=1,
                                  model_kwargs=dict(padding=True, base_width=4, depth=2), out=str(tmp_path / "r"),
                                  progress="log")))
    out = capsys.readouterr().out
    summary, first_epoch = out.index("model:    unet"), out.index("epoch 1/1")
    assert summary < first_epoch and "training pixels by class: background" in out
    assert "schedule: 1 epoch of 8 steps (batch 4)" in out  # 32 images: the default batch of 8 fitted down
