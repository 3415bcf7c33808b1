"""Two processes on the CPU under torchrun (gloo): one run directory, written by rank 0, whose
metrics are those of evaluating its checkpoint in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnzoo.engine.evaluate import evaluate_checkpoint


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "cnnzoo.cli.main", "train", "unet", "--data", "shapes", "--train-size", "16", "--val-size", "6",
        "--image-size", "16", "-k", "depth=1", "-k", "base_width=4", "-k", "padding=True", "-k", "batch_norm=True",
        "--batch-size", "4", "--epochs", "1", "--out", str(run), "--progress", "log", "--num-overlays", "1",
        "--device", "cpu",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no second run directory from rank 1
    assert done.stdout.count("run directory:") == 1  # rank 0 alone reports

    sidecar = json.loads((run / "best.json").read_text())
    # Each process took half of the 16 training images: 2 batches of 4, so 2 optimizer steps.
    assert sidecar["step"] == 2
    saved = sidecar["metrics"]
    # The metrics synchronized over both processes (each scored 3 of the 6 validation images)
    # are those of the whole validation set scored in one process.
    single = evaluate_checkpoint(str(run), device="cpu", batch_size=4)
    assert single["samples"] == 6
    assert single["confusion"].tolist() == saved["confusion"]
    assert single["miou"] == pytest.approx(saved["miou"], abs=1e-12)
    assert single["pixel_acc"] == pytest.approx(saved["pixel_acc"], abs=1e-12)
    assert single["loss"] == pytest.approx(saved["val_loss"], rel=1e-5)
