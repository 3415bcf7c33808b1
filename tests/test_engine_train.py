"""The training engine end to end on tiny data: run directory, exact resume, gradient
accumulation, non-finite losses, valid U-Net cropping, evaluation, progress and plots."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo.registry
from cnnzoo.data import build_data
from cnnzoo.engine import losses as losses_module
from cnnzoo.engine import trainer as trainer_module
from cnnzoo.engine.checkpoint import load_trained, load_training_state, read_checkpoint
from cnnzoo.engine.config import resolve_config
from cnnzoo.engine.plots import colorize_mask, plot_confusion, plot_curves, plot_overlays
from cnnzoo.engine.progress import Progress, format_duration
from cnnzoo.engine.rundir import RunDir, check_new_run_dir, default_run_dir
from cnnzoo.engine.evaluate import evaluate, make_eval_loader
from cnnzoo.engine.trainer import NonFiniteLossError, train
from cnnzoo.layers.spatial import center_crop

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_class_folder(root: Path, per_class: int = 10, size: int = 8, seed: int = 0) -> Path:
    """Three classes of small grey images: dark, bright, and horizontal stripes."""
    rng = np.random.default_rng(seed)
    patterns = {
        "dark": lambda: rng.uniform(0, 60, (size, size)),
        "bright": lambda: rng.uniform(190, 255, (size, size)),
        "stripes": lambda: np.tile(np.array([[30.0], [220.0]]), (size // 2, size)) + rng.uniform(0, 20, (size, size)),
    }
    for name, draw in patterns.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(draw().clip(0, 255).astype(np.uint8)).save(root / name / f"{index}.png")
    return root


def config_for(tmp_path: Path, model: str = "resnet20", data: str | None = None, **values):
    if data is None:
        data = str(make_class_folder(tmp_path / "images"))
    flags = {"model": model, "data": data, "out": str(tmp_path / "run"), "epochs": 2, "batch_size": 8,
             "progress": "log", "workers": 0}
    flags.update(values)
    return resolve_config({}, flags)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def independent_accuracy(run_dir: Path, data: str) -> float:
    """Top-1 accuracy of the saved best model on the validation split, by a plain loop."""
    trained = load_trained(run_dir)
    spec = build_data(data)
    mean, std = trained.meta.mean[0], trained.meta.std[0]
    correct = 0
    with torch.no_grad():
        for index in range(len(spec.val)):
            sample = spec.val[index]
            logits = trained.model(((sample["image"] - mean) / std)[None])
            correct += int(logits.argmax(1).item() == int(sample["target"]))
    return correct / len(spec.val)


def test_classification_run_writes_its_directory(tmp_path, capsys):
    config = config_for(tmp_path)
    result = train(config)
    run = tmp_path / "run"
    assert result.run_dir == run
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.csv", "best.safetensors", "best.json", "last.safetensors", "last.json",
            "last.optim.safetensors", "plots"} <= names
    for plot in ("curves.png", "confusion.png"):
        assert (run / "plots" / plot).read_bytes().startswith(PNG_SIGNATURE)
    saved_config = json.loads((run / "config.json").read_text())
    assert saved_config["model"] == "resnet20" and saved_config["optimizer"] == "sgd" and saved_config["loss"] == "ce"
    assert saved_config["batch_size"] == 8 and saved_config["out"] == str(run)
    assert saved_config["data"] == str(Path(config.data).resolve())  # a folder: its absolute path

    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "train_acc1", "val_loss", "acc1", "lr", "seconds"} <= set(rows[0])
    assert "acc5" not in rows[0]  # 3 classes: top-5 is meaningless
    for row, history in zip(rows, result.history):
        assert float(row["acc1"]) == history["acc1"] and float(row["val_loss"]) == history["val_loss"]
        assert 0 <= history["train_acc1"] <= 1
    best = max(result.history, key=lambda r: r["acc1"])
    assert result.best["acc1"] == best["acc1"]
    # The best checkpoint's accuracy is what a plain loop over the validation images gives.
    assert independent_accuracy(run, config.data) == pytest.approx(result.best["acc1"])
    assert read_checkpoint(run, "best")[1].epoch == result.best["epoch"]
    assert load_trained(run, "last").meta.epoch == 2
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "img/s" in out and "ETA" in out


def train_interrupted_after_epoch_1(monkeypatch, config) -> None:
    """Train ``config`` and stop it (Ctrl-C) when epoch 2 begins: epoch 1 is saved."""
    original_epoch = trainer_module._Run._epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        original_epoch(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module._Run, "_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(config)


@pytest.mark.slow
def test_resume_continues_bit_for_bit(tmp_path, monkeypatch):
    data = str(make_class_folder(tmp_path / "images"))
    # The same 2-epoch run twice: once straight through ...
    straight = train(config_for(tmp_path, data=data, out=str(tmp_path / "straight"), augment="default"))
    # ... and once interrupted after epoch 1, then resumed.
    train_interrupted_after_epoch_1(monkeypatch, config_for(tmp_path, data=data, out=str(tmp_path / "parts"),
                                                            augment="default"))
    assert load_trained(tmp_path / "parts", "last").meta.epoch == 1
    resumed = train(config_for(tmp_path, data=data, resume=str(tmp_path / "parts"), out=None, augment="default"))

    weights_straight = read_checkpoint(straight.run_dir, "last")[0]
    weights_resumed = read_checkpoint(resumed.run_dir, "last")[0]
    assert weights_straight.keys() == weights_resumed.keys()
    for name in weights_straight:
        assert torch.equal(weights_straight[name], weights_resumed[name]), name
    state_straight = load_training_state(straight.run_dir)
    state_resumed = load_training_state(resumed.run_dir)
    for index, buffers in state_straight["optimizer"]["state"].items():
        assert torch.equal(buffers["momentum_buffer"], state_resumed["optimizer"]["state"][index]["momentum_buffer"])
    assert state_straight["step"] == state_resumed["step"]
    assert [r["val_loss"] for r in straight.history] == [r["val_loss"] for r in resumed.history]
    assert len(read_csv(resumed.run_dir / "metrics.csv")) == 2


def test_resume_of_another_architecture_is_refused(tmp_path):
    first = train(config_for(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="'resnet20' model, not 'resnet32'"):
        train(config_for(tmp_path, model="resnet32", data=str(tmp_path / "images"), resume=str(first.run_dir), out=None))


@pytest.mark.slow
def test_gradient_accumulation_equals_one_big_batch(tmp_path, monkeypatch):
    # A BN-free network in float64: accumulating 2 batches of 4 is the same SGD step as one
    # batch of 8 (the loss of each half is divided by 2), to rounding.
    original_create = cnnzoo.registry.create_model
    monkeypatch.setattr(trainer_module, "create_model", lambda *a, **k: original_create(*a, **k).double())
    options = dict(model="unet", data="shapes", train_size=16, val_size=4, image_size="16", epochs=1,
                   augment="none", model_kwargs={"depth": 1, "base_width": 4, "padding": True},
                   optimizer="sgd", lr=0.5, num_overlays=0)
    accumulated = train(config_for(tmp_path, out=str(tmp_path / "a"), batch_size=4, accum_steps=2, **options))
    big = train(config_for(tmp_path, out=str(tmp_path / "b"), batch_size=8, **options))
    small = train(config_for(tmp_path, out=str(tmp_path / "c"), batch_size=4, **options))
    a, b, c = (read_checkpoint(r.run_dir, "last")[0] for r in (accumulated, big, small))
    assert all(tensor.dtype == torch.float64 for tensor in a.values() if tensor.is_floating_point())
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-12)
    assert any(not torch.allclose(a[name], c[name]) for name in a)  # 4 steps of 4 differ
    assert read_checkpoint(accumulated.run_dir, "last")[1].step == 2


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original_build = losses_module.build_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss = original_build(*args, **kwargs)
        if kwargs.get("label_smoothing") is None:
            return loss  # the validation loss stays clean
        def forward(logits, target, weight=None):
            calls["n"] += 1
            value = loss(logits, target, weight)
            return value * float("nan") if calls["n"] > 3 else value  # epoch 1 has 3 batches
        return forward

    monkeypatch.setattr(trainer_module, "build_loss", poisoned)
    config = config_for(tmp_path, epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan in epoch 2 at batch 1.*last good checkpoint.*epoch 1"):
        train(config)
    run = tmp_path / "run"
    trained = load_trained(run, "last")
    assert trained.meta.epoch == 1
    assert all(torch.isfinite(p).all() for p in trained.model.parameters())
    assert len(read_csv(run / "metrics.csv")) == 1


def test_huge_learning_rate_ends_in_a_clear_error(tmp_path):
    config = config_for(tmp_path, lr=1e30, epochs=1, weight_decay=0.0)
    with pytest.raises(NonFiniteLossError, match="Try a lower --lr"):
        train(config)


def test_valid_unet_logits_are_scored_against_the_cropped_target(tmp_path):
    # Depth 1, unpadded: 32 x 32 in, 16 x 16 out; the target's centre is what is scored.
    config = config_for(
        tmp_path, model="unet", data="shapes", train_size=8, val_size=4, image_size="32", epochs=1, batch_size=4,
        model_kwargs={"depth": 1, "base_width": 4}, num_overlays=2,
    )
    result = train(config)
    assert (result.run_dir / "plots" / "overlays.png").read_bytes().startswith(PNG_SIGNATURE)
    trained = load_trained(result.run_dir)
    spec = build_data("shapes", train_size=8, val_size=4, image_size=32)
    images = torch.stack([spec.val[i]["image"] for i in range(4)])
    targets = torch.stack([spec.val[i]["target"] for i in range(4)])
    mean = torch.tensor(trained.meta.mean).view(1, -1, 1, 1)
    std = torch.tensor(trained.meta.std).view(1, -1, 1, 1)
    with torch.no_grad():
        predicted = trained.model((images - mean) / std).argmax(1).numpy()
    assert predicted.shape == (4, 16, 16)
    truth = targets[:, 8:24, 8:24].numpy()  # the 16 x 16 centre, cropped by hand
    confusion = np.zeros((5, 5), dtype=np.int64)
    np.add.at(confusion, (truth.ravel(), predicted.ravel()), 1)
    assert trained.meta.metrics["confusion"] == confusion.tolist()
    assert result.history[0]["pixel_acc"] == pytest.approx(np.trace(confusion) / confusion.sum())


def test_cells_default_to_the_weighted_loss(tmp_path):
    config = config_for(
        tmp_path, model="unet", data="cells", train_size=4, val_size=2, image_size="16", epochs=1, batch_size=2,
        model_kwargs={"depth": 1, "base_width": 4, "padding": True}, num_overlays=0,
    )
    assert config.loss is None
    result = train(config)
    assert json.loads((result.run_dir / "config.json").read_text())["loss"] == "weighted-ce"


def test_evaluate_matches_a_plain_loop(tmp_path):
    folder = make_class_folder(tmp_path / "images")
    spec = build_data(str(folder))
    torch.manual_seed(0)
    model = cnnzoo.registry.create_model("resnet20", num_classes=3, in_chans=1).eval()
    results = evaluate(model, make_eval_loader(spec.val, batch_size=4), spec, "cpu")
    correct = 0
    confusion = np.zeros((3, 3), dtype=np.int64)
    with torch.no_grad():
        for i in range(len(spec.val)):
            sample = spec.val[i]
            logits = model(((sample["image"] - spec.mean[0]) / spec.std[0])[None])
            confusion[int(sample["target"]), int(logits.argmax())] += 1
            correct += int(logits.argmax()) == int(sample["target"])
    assert results["acc1"] == pytest.approx(correct / len(spec.val))
    assert results["confusion"].tolist() == confusion.tolist()
    assert "loss" not in results


@pytest.mark.parametrize(
    "values, message",
    [
        ({"data": "shapes", "train_size": 4, "val_size": 2}, "'resnet20' is a classification model, but data 'shapes' is a segmentation"),
        ({"amp": "fp16", "device": "cpu"}, "amp fp16 needs a GPU"),
        ({"model": "unet", "data": "shapes", "image_size": "32", "train_size": 4, "val_size": 2}, "at least 188"),
        ({"model_kwargs": {"num_classes": 7}}, "num_classes=7 contradicts the data"),
    ],
)
def test_errors_before_training_leave_no_run_directory(tmp_path, values, message):
    with pytest.raises(ValueError, match=message):
        train(config_for(tmp_path, **values))
    assert not (tmp_path / "run").exists()


def test_a_used_run_directory_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not empty; continue it with --resume"):
        train(config_for(tmp_path))
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]


def test_time_limit_stops_between_epochs(tmp_path, capsys):
    result = train(config_for(tmp_path, epochs=3, time_limit=1e-3))
    assert [row["epoch"] for row in result.history] == [1]
    assert "stopping before epoch 2" in capsys.readouterr().out


def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path):
    result = train(config_for(tmp_path, epochs=1, amp="bf16", channels_last=True, clip_grad=1.0))
    assert math.isfinite(result.history[0]["train_loss"])


# --- progress, run directory and plots --------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_lines_when_not_on_a_terminal():
    out = io.StringIO()
    progress = Progress("auto", stream=io.StringIO(), out=out, lines_per_epoch=4)
    assert progress.mode == "log"
    progress.start_epoch(1, 3, total_batches=20)
    for _ in range(20):
        progress.update(images=8, loss=0.5)
    assert progress.end_epoch() >= 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("epoch 1/3  batch 20/20  loss 0.5000")
    assert all("img/s" in line and "ETA" in line for line in lines)


def test_progress_draws_a_bar_on_a_terminal():
    terminal, out = FakeTerminal(), io.StringIO()
    progress = Progress("auto", stream=terminal, out=out)
    assert progress.mode == "bar"
    progress.start_epoch(2, 5, total_batches=3)
    for _ in range(3):
        progress.update(images=4, loss=1.25)
    progress.write("summary line")
    progress.end_epoch()
    assert "epoch 2/5" in terminal.getvalue() and "img/s" in terminal.getvalue()
    assert out.getvalue() == "summary line\n"


def test_silent_progress_prints_nothing():
    out, stream = io.StringIO(), FakeTerminal()
    progress = Progress("bar", enabled=False, stream=stream, out=out)
    progress.start_epoch(1, 1, 2)
    progress.update(1, 0.1)
    progress.write("x")
    progress.end_epoch()
    assert out.getvalue() == stream.getvalue() == ""


def test_format_duration():
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(59.6) == "0:01:00"


def test_run_dir_helpers(tmp_path):
    assert default_run_dir("unet", "data/my_cells/", root=tmp_path).name.startswith("unet-my_cells-")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_new_run_dir(tmp_path / "file")
    assert check_new_run_dir(tmp_path / "new") == tmp_path / "new"
    run = RunDir(tmp_path / "run")
    run.create()
    run.write_metrics([{"epoch": 1, "loss": 0.5, "per_class": [1.0]}, {"epoch": 2, "loss": float("nan"), "acc": 0.25}])
    assert (tmp_path / "run" / "metrics.csv").read_text() == "epoch,loss,acc\n1,0.5,\n2,nan,0.25\n"
    silent = RunDir(tmp_path / "other", enabled=False)
    silent.create()
    silent.write_metrics([{"epoch": 1}])
    assert not (tmp_path / "other").exists()


def test_colorize_mask_uses_black_background_and_grey_ignore():
    picture = colorize_mask(torch.tensor([[0, 1], [255, 2]]), num_classes=3, ignore_index=255)
    assert picture[0, 0].tolist() == [0, 0, 0]
    assert picture[1, 0].tolist() == [128, 128, 128]
    assert picture[0, 1].tolist() != picture[1, 1].tolist()
    assert picture[0, 1].tolist() != [0, 0, 0]


def test_plots_are_png_files(tmp_path):
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "acc1": 0.5, "train_acc1": 0.4},
               {"epoch": 2, "train_loss": 0.8, "val_loss": 1.0, "acc1": 0.6, "train_acc1": 0.55}]
    paths = [
        plot_curves(history, "classification", tmp_path / "curves.png"),
        plot_confusion(torch.tensor([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "confusion.png"),
        plot_overlays(torch.rand(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)), torch.randint(0, 3, (2, 8, 8)), 3,
                      tmp_path / "sub" / "overlays.png", ["bg", "x", "y"]),
    ]
    for path in paths:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert center_crop(torch.arange(16).view(4, 4), 2, 2).tolist() == [[5, 6], [9, 10]]


# --- one run per directory; a failed run leaves nothing ----------------------------------

def test_two_runs_cannot_claim_one_directory(tmp_path):
    from cnnzoo.engine.rundir import CLAIM, check_new_run_dir, claim_run_dir

    first = claim_run_dir(tmp_path / "runs" / "resnet20-x-20261202-101010", default_name=True)
    assert (first / CLAIM).is_file()
    check_new_run_dir(first)  # a checker between the two steps still sees a free folder ...
    second = claim_run_dir(tmp_path / "runs" / "resnet20-x-20261202-101010", default_name=True)
    assert second.name == "resnet20-x-20261202-101010-2"  # ... but only one run gets it
    with pytest.raises(ValueError, match="is being written by another run"):
        claim_run_dir(first, default_name=False)  # a name the user gave is not changed


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    import cnnzoo.engine.rundir as rundir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt, *args: "20261202-101010")  # one second for both
    data = str(make_class_folder(tmp_path / "images"))
    first = train(config_for(tmp_path, data=data, out=None, epochs=1))
    second = train(config_for(tmp_path, data=data, out=None, epochs=1))
    assert first.run_dir != second.run_dir and second.run_dir.name.endswith("-2")
    assert (first.run_dir / "best.safetensors").is_file() and (second.run_dir / "best.safetensors").is_file()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_directory(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def boom(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module._Run, "_epoch", boom)
    with pytest.raises(KeyboardInterrupt):
        train(config_for(tmp_path, out=str(out), epochs=1))
    assert not out.exists()
    monkeypatch.undo()
    train(config_for(tmp_path, data=str(tmp_path / "images"), out=str(out), epochs=1))  # --out is free again
    assert (out / "best.safetensors").is_file()
