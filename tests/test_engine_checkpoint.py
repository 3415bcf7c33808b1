"""Checkpoints: safetensors + JSON sidecar, atomic pairs, exact training state, clear errors."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnzoo.engine.checkpoint import load_trained, load_training_state, load_weights, read_checkpoint, save_checkpoint
from cnnzoo.engine.seeding import capture_rng_state, restore_rng_state
from cnnzoo.engine.optim import build_optimizer, build_scheduler
from cnnzoo.registry import create_model


def meta_for(model_name: str = "resnet20", num_classes: int = 10, **extra) -> dict:
    meta = {
        "model": model_name, "model_kwargs": {}, "task": "classification", "num_classes": num_classes,
        "in_chans": 1, "class_names": [f"c{i}" for i in range(num_classes)], "mean": [0.5], "std": [0.25],
        "image_size": [16, 16], "ignore_index": None, "data": "somewhere", "epoch": 3,
        "metrics": {"acc1": 0.75, "iou_per_class": [0.5, float("nan")], "confusion": torch.eye(2, dtype=torch.int64)},
    }
    meta.update(extra)
    return meta


def trained_resnet20(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=num_classes, in_chans=1)
    model.train()
    model(torch.randn(4, 1, 16, 16))  # moves the BN running statistics away from their init
    return model


def test_run_directory_round_trip_gives_the_same_model_and_meta(tmp_path):
    model = trained_resnet20()
    save_checkpoint(tmp_path / "best", model, meta_for())
    trained = load_trained(tmp_path)
    assert not trained.model.training
    model.eval()
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(trained.model(x), model(x), rtol=0, atol=0)
    meta = trained.meta
    assert meta.model == "resnet20" and meta.num_classes == 10 and meta.epoch == 3
    assert meta.mean == (0.5,) and meta.class_names[9] == "c9" and meta.image_size == (16, 16)
    assert meta.metrics["acc1"] == 0.75
    assert meta.metrics["iou_per_class"][0] == 0.5 and math.isnan(meta.metrics["iou_per_class"][1])
    assert meta.metrics["confusion"] == [[1, 0], [0, 1]]


def test_files_are_safetensors_and_strict_json_never_pickle(tmp_path):
    save_checkpoint(tmp_path / "last", trained_resnet20(), meta_for(), {"optimizer": {"x": torch.ones(2)}})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last.json", "last.optim.safetensors", "last.safetensors"]
    sidecar = json.loads((tmp_path / "last.json").read_text(), parse_constant=pytest.fail)  # no NaN tokens
    assert sidecar["files"] == {"weights": "last.safetensors", "optim": "last.optim.safetensors"}
    for name in ("last.safetensors", "last.optim.safetensors"):
        raw = (tmp_path / name).read_bytes()
        header_length = int.from_bytes(raw[:8], "little")  # the safetensors layout: u64 + JSON header
        header = json.loads(raw[8 : 8 + header_length])
        assert header["__metadata__"]["checkpoint_id"] == sidecar["checkpoint_id"]
        assert not raw.startswith(b"\x80")  # a pickle starts with its protocol opcode


def test_load_from_a_safetensors_path_and_missing_files(tmp_path):
    save_checkpoint(tmp_path / "model", trained_resnet20(), meta_for())
    assert load_trained(tmp_path / "model.safetensors").meta.epoch == 3
    with pytest.raises(FileNotFoundError, match="best.safetensors"):
        load_trained(tmp_path)  # the folder holds no best checkpoint
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_trained(tmp_path / "model.safetensors")


def test_a_checkpoint_of_another_architecture_is_refused_naming_both(tmp_path):
    save_checkpoint(tmp_path / "last", trained_resnet20(), meta_for())
    other = create_model("resnet32", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match="'resnet20' model; it cannot be loaded into 'resnet32'"):
        load_weights(other, "resnet32", tmp_path, "last")
    fewer_classes = create_model("resnet20", num_classes=3, in_chans=1)
    with pytest.raises(ValueError, match="does not fit this resnet20 model"):
        load_weights(fewer_classes, "resnet20", tmp_path, "last")


def test_a_save_cut_between_its_renames_is_completed_when_read(tmp_path, monkeypatch):
    first, second = trained_resnet20(), create_model("resnet20", in_chans=1)
    save_checkpoint(tmp_path / "last", first, meta_for(epoch=1))
    real_replace, calls = os.replace, []

    def crash_before_the_sidecar(source, destination):
        calls.append(Path(destination).name)
        if str(destination).endswith("last.json"):
            raise OSError("disk full")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", crash_before_the_sidecar)  # utils.atomic renames the files
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "last", second, meta_for(epoch=2))
    monkeypatch.undo()
    assert calls[1:] == ["last.safetensors", "last.json"]  # after the journal: weights first, sidecar last
    # The journal was written before the renames: the reader finishes them, and sees epoch 2 whole.
    weights, meta = read_checkpoint(tmp_path, "last")
    assert meta.epoch == 2
    for name, tensor in second.state_dict().items():
        assert torch.equal(weights[name], tensor), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]


def test_files_of_two_saves_mixed_by_hand_are_recognized(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_checkpoint(tmp_path / "a" / "last", trained_resnet20(), meta_for(epoch=1))
    save_checkpoint(tmp_path / "b" / "last", create_model("resnet20", in_chans=1), meta_for(epoch=2))
    (tmp_path / "a" / "last.safetensors").write_bytes((tmp_path / "b" / "last.safetensors").read_bytes())
    with pytest.raises(ValueError, match="come from different saves"):
        read_checkpoint(tmp_path / "a", "last")


def test_a_failing_encoder_writes_nothing(tmp_path):
    save_checkpoint(tmp_path / "last", trained_resnet20(), meta_for(epoch=1))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(tmp_path / "last", trained_resnet20(), meta_for(epoch=2), {"thing": object()})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_missing_metadata_is_refused(tmp_path):
    meta = meta_for()
    del meta["mean"]
    with pytest.raises(ValueError, match="lacks mean"):
        save_checkpoint(tmp_path / "x", nn.Linear(2, 2), meta)


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_training_state_restores_optimizer_scheduler_and_rng_exactly(tmp_path, optimizer_name):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    optimizer = build_optimizer(model, optimizer_name, lr=0.1, weight_decay=1e-3, nesterov=optimizer_name == "sgd")
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_steps=2)

    def step(opt, sched, mdl):
        opt.zero_grad()
        mdl(torch.randn(8, 3)).square().mean().backward()
        opt.step()
        sched.step()

    for _ in range(3):
        step(optimizer, scheduler, model)
    random.seed(5)
    np.random.seed(6)
    state = {
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": capture_rng_state(),
        "sampler": {"epoch": 2, "seed": 0}, "step": 3,
    }
    save_checkpoint(tmp_path / "last", model, meta_for(), state)
    # The uninterrupted run's next values ...
    expected_random = (random.random(), np.random.rand(), torch.rand(1))
    step(optimizer, scheduler, model)
    expected_weights = [p.detach().clone() for p in model.parameters()]

    # ... and a fresh process-like restart from the checkpoint.
    restored = load_training_state(tmp_path)
    assert restored["sampler"] == {"epoch": 2, "seed": 0} and restored["step"] == 3
    model2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model2.load_state_dict(read_checkpoint(tmp_path, "last")[0])
    optimizer2 = build_optimizer(model2, optimizer_name, lr=0.1, weight_decay=1e-3, nesterov=optimizer_name == "sgd")
    scheduler2 = build_scheduler(optimizer2, total_steps=10, warmup_steps=2)
    optimizer2.load_state_dict(restored["optimizer"])
    scheduler2.load_state_dict(restored["scheduler"])
    torch.manual_seed(123)  # scramble, then restore
    restore_rng_state(restored["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected_random
    restore_rng_state(restored["rng"])
    random.random(), np.random.rand(), torch.rand(1)
    step(optimizer2, scheduler2, model2)
    for got, want in zip(model2.parameters(), expected_weights):
        assert torch.equal(got, want)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()


def test_training_state_of_a_best_checkpoint_is_absent(tmp_path):
    save_checkpoint(tmp_path / "best", trained_resnet20(), meta_for())
    with pytest.raises(ValueError, match="holds no training state"):
        load_training_state(tmp_path, "best")


def test_a_corrupt_weights_file_is_a_value_error(tmp_path):
    save_checkpoint(tmp_path / "best", trained_resnet20(), meta_for())
    (tmp_path / "best.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_trained(tmp_path)


def test_a_folder_in_place_of_the_weights_is_not_called_missing(tmp_path):
    save_checkpoint(tmp_path / "best", trained_resnet20(), meta_for())
    (tmp_path / "best.safetensors").unlink()
    (tmp_path / "best.safetensors").mkdir()
    with pytest.raises(ValueError, match="best.safetensors is not a file"):
        load_trained(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_weights_file_says_so(tmp_path):
    save_checkpoint(tmp_path / "best", trained_resnet20(), meta_for())
    (tmp_path / "best.safetensors").chmod(0)
    try:
        with pytest.raises(PermissionError, match="is not readable"):
            load_trained(tmp_path)
    finally:
        (tmp_path / "best.safetensors").chmod(0o644)


def test_a_sidecar_without_num_classes_names_the_file_and_the_key(tmp_path):
    save_checkpoint(tmp_path / "best", trained_resnet20(), meta_for())
    sidecar = tmp_path / "best.json"
    values = json.loads(sidecar.read_text())
    del values["num_classes"]
    sidecar.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"best\.json is not a usable .* lacks num_classes"):
        load_trained(tmp_path)
