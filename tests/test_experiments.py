"""Both experiments on a tiny budget: the files exist, the tables have their four rows, and
the numbers agree with each other and with the papers where the papers fix them."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.engine.experiments import Recipe, run_experiment

TINY = dict(epochs=1, train_size=None, val_size=None, batch_size=16, progress="log")


@pytest.fixture()
def classes(tmp_path):
    """A folder data set (3 classes of 8x8 gray images, 10 each): fast to load, and no
    download needed (Fashion-MNIST, the default data, may be absent)."""
    rng = np.random.default_rng(0)
    for label in range(3):
        for index in range(10):
            path = tmp_path / "classes" / f"class{label}" / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path)
    return str(tmp_path / "classes")


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.slow
def test_degradation_on_a_tiny_budget(tmp_path, capsys, classes):
    result = run_experiment("degradation", Recipe(**TINY, data=classes), tmp_path / "deg")
    assert [row.model for row in result.rows] == ["plain20", "plain56", "resnet20", "resnet56"]
    for path in (result.figure, result.csv, result.markdown):
        assert path.is_file() and path.stat().st_size > 0
    assert result.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_model = {row.model: row for row in result.rows}
    # He et al. 2016, sec. 4.2: option A shortcuts (identity, zero-padded) add no parameter,
    # so each plain net has exactly its ResNet's parameters; Table 6: 0.27M and 0.85M
    # (10 classes there, 3 here: 7 x 65 parameters fewer, the same when rounded).
    assert by_model["plain20"].params == by_model["resnet20"].params
    assert by_model["plain56"].params == by_model["resnet56"].params
    assert round(by_model["resnet20"].params / 1e6, 2) == 0.27
    assert round(by_model["resnet56"].params / 1e6, 2) == 0.85
    # MACs by hand at 1x8x8: every 3x3 conv of the three stages costs the same (16->16 at
    # 8x8 = 32->32 at 4x4 = 64->64 at 2x2) except the two stride-2 ones, half each; plus
    # the stem (1->16 at 8x8) and the fc (64->3). Additions are no multiply-adds, so the
    # plain twins cost the same.
    full = 16 * 16 * 9 * 8 * 8
    for depth in (20, 56):
        expected = 1 * 16 * 9 * 8 * 8 + (depth - 2 - 1) * full + 64 * 3
        assert by_model[f"resnet{depth}"].macs == by_model[f"plain{depth}"].macs == expected
    for row in result.rows:
        assert len(row.history) == 1 and (row.run_dir / "best.safetensors").is_file()
        assert row.train_error == pytest.approx(1 - row.history[-1]["train_acc1"])
        assert row.test_error == pytest.approx(1 - row.history[-1]["acc1"])
        assert 0 <= row.train_error <= 1 and 0 <= row.test_error <= 1
    saved = list(csv.DictReader(result.csv.open()))
    assert [r["model"] for r in saved] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert [int(r["params"]) for r in saved] == [row.params for row in result.rows]
    assert float(saved[0]["train_error"]) == pytest.approx(result.rows[0].train_error, abs=1e-6)
    cells = table_rows(result.table)
    assert [c[0] for c in cells] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert cells[0][5] == f"{100 * result.rows[0].train_error:.2f}"
    assert result.table in result.markdown.read_text()


@pytest.mark.slow
def test_multipliers_from_the_command_line(tmp_path, capsys, classes):
    code = main(["experiment", "multipliers", "--data", classes, "--epochs", "1", "--train-size", "all",
                 "--val-size", "all", "--batch-size", "16", "--out", str(tmp_path / "mult")])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("multipliers.png", "multipliers.csv", "multipliers.md"):
        assert (tmp_path / "mult" / name).is_file()
    rows = list(csv.DictReader((tmp_path / "mult" / "multipliers.csv").open()))
    assert [r["options"] for r in rows] == [f"width_mult={w} stem_stride=1" for w in (1.0, 0.75, 0.5, 0.25)]
    macs = [int(r["macs"]) for r in rows]
    params = [int(r["params"]) for r in rows]
    assert macs == sorted(macs, reverse=True) and len(set(macs)) == 4
    assert params == sorted(params, reverse=True) and len(set(params)) == 4
    # Pointwise convolutions dominate and scale with width^2 (Howard et al. 2017, sec. 3.3);
    # Table 6 at 224: 149 / 569 = 0.26 for width 0.5.
    assert 0.2 < macs[2] / macs[0] < 0.32
    printed = table_rows(out[out.index("| width"):])
    assert [c[0] for c in printed] == ["1.0", "0.75", "0.5", "0.25"]
    assert [c[6] for c in printed] == ["70.6", "68.4", "63.7", "50.6"]  # Table 6 top-1, as published


def test_a_segmentation_data_set_is_refused_before_anything_is_written(tmp_path, capsys):
    code = main(["experiment", "degradation", "--data", "shapes", "--train-size", "2", "--val-size", "2",
                 "--out", str(tmp_path / "deg")])
    err = capsys.readouterr().err
    assert code == 2 and "'shapes' is a segmentation data set" in err
    assert not (tmp_path / "deg").exists()


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'depth'"):
        run_experiment("depth", Recipe(**TINY), tmp_path / "a")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(FileExistsError, match="not empty; choose another --out"):
        run_experiment("degradation", Recipe(**TINY), tmp_path / "used")
    with pytest.raises(ValueError, match="unknown data set .no-such-set."):
        run_experiment("multipliers", Recipe(**TINY, data="no-such-set"), tmp_path / "b")


def test_help_names_both_experiments_and_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    out = capsys.readouterr().out
    assert "degradation" in out and "multipliers" in out and "examples:" in out


def test_each_experiment_runs_its_own_recipe_unless_told_otherwise(monkeypatch, capsys):
    import cnnzoo.cli.experiment as command
    from cnnzoo.engine.experiments import DEFAULT_RECIPES

    seen = {}

    def capture(name, recipe, out):
        seen[name] = recipe
        raise ValueError("stop here")

    monkeypatch.setattr(command, "run_experiment", capture)
    assert main(["experiment", "multipliers"]) == 2
    assert main(["experiment", "degradation", "--augment", "default", "--train-size", "all"]) == 2
    assert seen["multipliers"] == DEFAULT_RECIPES["multipliers"]
    # The recipes the docs measured: the degradation nets train without augmentation (the
    # paper's claim is about training error), the width multipliers with crop + flip and
    # label smoothing 0.1 (they compare test accuracy).
    assert (DEFAULT_RECIPES["degradation"].augment, DEFAULT_RECIPES["multipliers"].augment) == ("none", "default")
    assert DEFAULT_RECIPES["multipliers"].label_smoothing == 0.1
    # The multipliers' budget of docs/experiments.md: every training and test image, 4 epochs.
    multipliers = seen["multipliers"]
    assert (multipliers.train_size, multipliers.val_size, multipliers.epochs) == (None, None, 4)
    degradation = seen["degradation"]
    assert degradation.augment == "default" and degradation.train_size is None
    assert degradation.epochs == DEFAULT_RECIPES["degradation"].epochs == 10


def test_the_multiplier_nets_keep_a_stride_1_stem():
    from cnnzoo.engine.experiments import EXPERIMENTS

    members = EXPERIMENTS["multipliers"][0]
    assert [m.model_kwargs for m in members] == [{"width_mult": w, "stem_stride": 1} for w in (1.0, 0.75, 0.5, 0.25)]
