"""``cnnzoo train`` and ``cnnzoo evaluate``: help, a tiny run, and one test per bad input
(exit code 2, one clear message, no run directory left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.data import fashion_mnist

# A tiny U-Net on the built-in `shapes` set: trains in about a second.
TINY_UNET = [
    "unet", "--data", "shapes", "--train-size", "8", "--val-size", "4", "--image-size", "16",
    "-k", "depth=1", "-k", "base_width=4", "-k", "padding=True", "--batch-size", "4", "--progress", "log",
    "--num-overlays", "1",
]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_class_folder(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("bright", 180)):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.uniform(low, low + 70, (8, 8)).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_help_is_complete_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"cnnzoo {command} " in text.split("examples:")[1]
    if command == "train":
        from cnnzoo.engine.config import config_keys

        for key in config_keys():
            flag = "-k" if key == "model_kwargs" else f"--{key.replace('_', '-')}"
            assert key == "model" or flag in text, flag
        assert "torchrun --nproc_per_node" in text


def test_train_then_evaluate_gives_the_saved_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--out", str(run))
    assert code == 0, err
    assert f"run directory: {run}" in out and "best epoch 1: miou" in out
    code, out, err = run_cli(capsys, "evaluate", str(run), "--json", "--device", "cpu")
    assert code == 0, err
    results = json.loads(out)
    saved = json.loads((run / "best.json").read_text())["metrics"]
    assert results["confusion"] == saved["confusion"]
    assert results["miou"] == pytest.approx(saved["miou"])
    assert results["loss"] == pytest.approx(saved["val_loss"], rel=1e-5)
    assert results["samples"] == 4 and results["split"] == "val"
    code, out, _ = run_cli(capsys, "evaluate", str(run / "best.safetensors"), "--which", "last")
    assert code == 0 and "miou" in out and "per class:" in out


def test_config_file_with_flags_winning(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 3\nbatch-size: 2\nlr: 5e-3\nmodel_kwargs: {base_width: 8}\n")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *TINY_UNET, "--config", str(config), "--epochs", "1", "--out", str(run))
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 1  # flag over file
    assert saved["lr"] == 0.005  # file
    assert saved["batch_size"] == 4  # flag
    assert saved["model_kwargs"] == {"base_width": 4, "depth": 1, "padding": True}  # -k over the file's


def test_resume_continues_a_run_with_more_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--out", str(run))[0] == 0
    code, out, err = run_cli(capsys, "train", "--resume", str(run), "--epochs", "2", "--progress", "log")
    assert code == 0, err
    assert "epoch 2/2" in out
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()] == ["epoch", "1", "2"]


def expect_user_error(capsys, tmp_path, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err, err
    assert err.startswith("cnnzoo ") and err.count("error:") == 1
    assert not (tmp_path / "run").exists()
    return err


def test_unknown_model(capsys, tmp_path):
    expect_user_error(capsys, tmp_path, ["train", "unett", "--data", "shapes", "--out", str(tmp_path / "run")],
                      "unknown model 'unett'; did you mean unet")


def test_unknown_data_set(capsys, tmp_path):
    expect_user_error(capsys, tmp_path, ["train", "resnet20", "--data", "fashion-mnits", "--out", str(tmp_path / "run")],
                      "unknown data set 'fashion-mnits'")


def test_missing_data(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    err = expect_user_error(
        capsys, tmp_path,
        ["train", "resnet20", "--data", "fashion-mnist", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run")],
        "Fashion-MNIST",
    )
    assert "was not found" in err and str(tmp_path / "nowhere") in err


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "images").mkdir()
    expect_user_error(capsys, tmp_path, ["train", "resnet20", "--data", str(tmp_path / "images"), "--out", str(tmp_path / "run")],
                      str(tmp_path / "images"))


def test_resume_with_another_architecture(capsys, tmp_path):
    first = tmp_path / "first"
    assert run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--out", str(first))[0] == 0
    code, _, err = run_cli(capsys, "train", "fcn32s", "--resume", str(first))
    assert code == 2 and "its checkpoint is a 'unet' model, not 'fcn32s'" in err


def test_resume_of_a_folder_that_is_no_run(capsys, tmp_path):
    expect_user_error(capsys, tmp_path, ["train", "--resume", str(tmp_path)], "no config.json there")


def test_config_key_that_does_not_exist(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epoch: 3\n")
    expect_user_error(capsys, tmp_path, ["train", *TINY_UNET, "--config", str(config), "--out", str(tmp_path / "run")],
                      "unknown option 'epoch' in the config file")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "-1"], "'lr' must be positive"),
        (["--image-size", "3x9"], "at least"),
        (["-k", "no_such_option=1"], "bad option for model 'unet'"),
        (["--loss", "focal"], "'loss' must be one of"),
        (["--amp", "fp16", "--device", "cpu"], "amp fp16 needs a GPU"),
        (["--lr", "inf"], "option 'lr' must be a finite number, got inf"),
        (["--lr", "nan"], "option 'lr' must be a finite number, got nan"),
        (["--lr", "1e999"], "option 'lr' must be a finite number"),
        (["--time-limit", "inf"], "option 'time_limit' must be a finite number"),
        (["--momentum", "nan"], "option 'momentum' must be a finite number"),
        (["--weight-decay", "inf"], "option 'weight_decay' must be a finite number"),
        (["--label-smoothing", "nan"], "option 'label_smoothing' must be a finite number"),
        (["--warmup-epochs", "inf"], "option 'warmup_epochs' must be a finite number"),
        (["--clip-grad", "inf"], "option 'clip_grad' must be a finite number"),
        (["--backbone-lr-scale", "nan"], "option 'backbone_lr_scale' must be a finite number"),
        (["--seed", "100000000000000000000000"], "option 'seed' must be in [0, 2**63 - 1]"),
        (["--seed", str(2**63)], "option 'seed' must be in [0, 2**63 - 1]"),
        (["--device", "bogus"], "unknown device 'bogus': use auto, cpu, cuda or cuda:N"),
        (["--device", "mps"], "unknown device 'mps'"),
    ],
)
def test_bad_values(capsys, tmp_path, flags, message):
    expect_user_error(capsys, tmp_path, ["train", *TINY_UNET, *flags, "--out", str(tmp_path / "run")], message)


def test_a_gpu_asked_for_where_there_is_none(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expect_user_error(capsys, tmp_path, ["train", *TINY_UNET, "--device", "cuda:7", "--out", str(tmp_path / "run")],
                      "no CUDA device here (cuda:7 asked for): use --device cpu")


def test_evaluate_and_predict_refuse_an_unknown_device_in_one_line(capsys, tmp_path, monkeypatch):
    run = tmp_path / "trained"
    assert run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--out", str(run))[0] == 0
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in [
        ("bogus", "unknown device 'bogus': use auto, cpu, cuda or cuda:N"),
        ("cuda:7", "no CUDA device here (cuda:7 asked for): use --device cpu"),
    ]:
        for argv in (["evaluate", str(run)], ["predict", str(run), str(image), "--out", str(tmp_path / "masks")]):
            code, _, err = run_cli(capsys, *argv, "--device", device)
            assert code == 2 and message in err, err
            assert err.count("\n") == 1 and err.startswith(f"cnnzoo {argv[0]}: error: ")
    assert not (tmp_path / "masks").exists()


def test_task_mismatch(capsys, tmp_path):
    folder = make_class_folder(tmp_path / "images")
    expect_user_error(capsys, tmp_path, ["train", "unet", "--data", str(folder), "--out", str(tmp_path / "run")],
                      "'unet' is a segmentation model, but data")


def test_non_finite_loss_is_exit_code_2(capsys, tmp_path):
    folder = make_class_folder(tmp_path / "images")
    code, _, err = run_cli(capsys, "train", "resnet20", "--data", str(folder), "--lr", "1e30", "--weight-decay", "0",
                           "--epochs", "1", "--out", str(tmp_path / "run"), "--progress", "log")
    assert code == 2 and "the loss became" in err and "no checkpoint had been written yet" in err


def test_evaluate_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "best.safetensors" in err
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--out", str(run))[0] == 0
    folder = make_class_folder(tmp_path / "images")
    code, _, err = run_cli(capsys, "evaluate", str(run), "--data", str(folder))
    assert code == 2 and "does not fit the checkpoint: task classification vs segmentation" in err


def test_tensorboard_asked_for_without_the_package_warns_and_trains(capsys, tmp_path, monkeypatch):
    import sys

    from cnnzoo.engine.tensorboard_log import MISSING

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    code, out, err = run_cli(capsys, "train", *TINY_UNET, "--epochs", "1", "--tensorboard", "--out", str(tmp_path / "run"))
    assert code == 0 and "best epoch 1" in out
    assert err.count(MISSING) == 1 and "pip install tensorboard" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tensorboard"] is True


@pytest.mark.parametrize("flag, value", [([], None), (["--tensorboard"], True), (["--no-tensorboard"], False)])
def test_tensorboard_flag(flag, value):
    from cnnzoo.cli.main import build_parser
    from cnnzoo.cli.train import gather_config

    args = build_parser().parse_args(["train", "resnet20", "--data", "shapes", *flag])
    assert gather_config(args).tensorboard is value


@pytest.mark.parametrize("stop_at, saved", [(1, True), (0, False)])
def test_ctrl_c_says_what_is_saved_and_how_to_continue(capsys, tmp_path, monkeypatch, stop_at, saved):
    from cnnzoo.engine import trainer as trainer_module

    original_epoch = trainer_module._Run._epoch

    def stopped(self, epoch):
        if epoch == stop_at:
            raise KeyboardInterrupt
        original_epoch(self, epoch)

    monkeypatch.setattr(trainer_module._Run, "_epoch", stopped)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *TINY_UNET, "--epochs", "2", "--out", str(run))
    assert code == 130 and len(err.strip().splitlines()) == 1
    if saved:
        assert err.strip() == f"cnnzoo train: interrupted: epoch 1 is saved in {run}; continue with: cnnzoo train --resume {run}"
        assert (run / "last.safetensors").is_file()
    else:
        assert err.strip() == f"cnnzoo train: interrupted: no epoch had been saved, so {run} is removed"
        assert not run.exists()


def test_an_unexpected_error_is_one_line_and_a_report_file(capsys, monkeypatch):
    from cnnzoo.cli import zoo

    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(zoo, "run_list", broken)
    code, _, err = run_cli(capsys, "list")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("cnnzoo list: unexpected error: boom (full report: ")
    report = Path(err.strip().rsplit("full report: ", 1)[1].rstrip(")"))
    text = report.read_text()
    assert "Traceback" in text and "RuntimeError: boom" in text
    report.unlink()
