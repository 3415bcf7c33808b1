"""The ``cnnzoo`` command end to end: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import torch

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.registry import create_meta_model as meta_model

# torchvision 0.28 weights metadata (tests/fixtures/torchvision/metadata.json)
RESNET18_PARAMS = 11_689_512
RESNET18_GMACS = 1.814


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_filters_by_pattern(capsys):
    code, out, _ = run_cli(capsys, "list", "resnet*")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert "resnet18" in names and "resnet50" in names
    assert all(name.startswith("resnet") for name in names)


def test_list_without_match_is_a_user_error(capsys):
    code, _, err = run_cli(capsys, "list", "nothing-like-this*")
    assert code == 2 and "no model matches" in err


def test_summary_json_totals_match_torchvision(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--format", "json")
    assert code == 0
    total = json.loads(out)["total"]
    assert total["params"] == RESNET18_PARAMS
    assert abs(total["macs"] / (RESNET18_GMACS * 1e9) - 1) < 0.01


def test_summary_passes_model_options(capsys):
    # Howard et al. 2017, Table 6: MobileNet 0.5 at 224 has 149 M mult-adds.
    code, out, _ = run_cli(capsys, "summary", "mobilenet_v1", "-k", "width_mult=0.5", "--format", "json")
    assert code == 0
    assert round(json.loads(out)["total"]["macs"] / 1e6) == 149


@pytest.mark.parametrize("fmt, marker", [("table", "Total"), ("csv", ","), ("markdown", "|")])
def test_summary_formats(capsys, fmt, marker):
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--depth", "1", "--format", fmt)
    assert code == 0 and marker.lower() in out.lower()
    assert "layer1" in out


def test_summary_names_the_registered_model(capsys):
    _, out, _ = run_cli(capsys, "summary", "resnet18", "--format", "json", "--depth", "0")
    assert json.loads(out)["model"] == "resnet18"  # not the class name, ResNet, shared by five models
    _, out, _ = run_cli(capsys, "summary", "resnet18", "--depth", "0")
    assert out.startswith("resnet18, batch of 1")


def test_summary_plot_into_a_folder_fails_before_any_output(capsys, tmp_path):
    code, out, err = run_cli(capsys, "summary", "resnet18", "--plot", str(tmp_path))
    assert code == 2 and out == ""
    assert err.strip() == f"cnnzoo summary: error: cannot write {tmp_path}: it is a folder; give a file name"


def test_summary_plot_creates_a_missing_folder(capsys, tmp_path):
    path = tmp_path / "new" / "folder" / "costs.png"
    code, _, _ = run_cli(capsys, "summary", "squeezenet1_1", "--plot", str(path))
    assert code == 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, depth", [([], 1), (["--depth", "2"], 2)])
def test_summary_plot_is_drawn_at_the_tables_depth(capsys, tmp_path, monkeypatch, argv, depth):
    from cnnzoo.analysis.summary import Summary

    drawn = []
    monkeypatch.setattr(Summary, "plot", lambda self, path, depth=1, title=None: drawn.append(depth))
    code, _, _ = run_cli(capsys, "summary", "resnet20", "--plot", str(tmp_path / "x.png"), *argv)
    assert code == 0 and drawn == [depth]


def test_summary_plot_writes_a_png(capsys, tmp_path):
    path = tmp_path / "costs.png"
    code, _, _ = run_cli(capsys, "summary", "resnet18", "--depth", "1", "--plot", str(path))
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnt18"], "did you mean resnet18"),
    (["summary", "alexnet", "--input", "3x10x10"], "at least 63x63"),
    (["summary", "resnet18", "--input", "big"], "malformed input size"),
    (["summary", "resnet18", "-k", "no_such_option=1"], "bad option"),
    (["summary", "resnet18", "-k", "width"], "NAME=VALUE"),
    (["compare", "resnet18", "vgg1"], "unknown model"),
    (["explain", "no-such-topic"], "topic"),
    (["summary", "resnet18", "--depth", "-1"], "depth must be a non-negative integer"),
    (["summary", "resnet18", "--input", "99999999999"], "cannot create an input of size"),
    # an option of the wrong type fails deep inside PyTorch unless the builder checks it
    (["summary", "mobilenet_v1", "-k", "width_mult=abc"], "width_mult"),
    (["summary", "resnet18", "-k", "num_classes=[10]"], "num_classes"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_compare_json(capsys):
    code, out, _ = run_cli(capsys, "compare", "resnet18", "squeezenet1_0", "--format", "json")
    assert code == 0
    rows = {row["model"]: row for row in json.loads(out)}
    assert rows["resnet18"]["params"] == RESNET18_PARAMS
    assert rows["squeezenet1_0"]["params"] == 1_248_424  # torchvision 0.28 metadata
    assert rows["resnet18"]["top1"] == pytest.approx(69.758)  # torchvision IMAGENET1K_V1
    assert rows["squeezenet1_0"]["macs"] < rows["resnet18"]["macs"]


def test_explain_lists_topics_and_computes_the_examples(capsys):
    code, out, _ = run_cli(capsys, "explain")
    assert code == 0 and "depthwise-separable" in out
    assert "Cost of a convolution layer" in out  # each topic with its title
    code, out, _ = run_cli(capsys, "explain", "depthwise-separable")
    assert code == 0 and "162" in out and "72" in out


def test_console_script_reports_errors_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "cnnzoo.cli.main", "summary", "vgg16", "--input", "3x8x8"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "at least" in result.stderr and "Traceback" not in result.stderr


def test_help_has_examples():
    result = subprocess.run([sys.executable, "-m", "cnnzoo.cli.main", "summary", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "example" in result.stdout


@pytest.mark.parametrize("name", ["resnet20", "googlenet", "efficientnet_b0", "densenet40_k12"])
def test_meta_model_has_the_real_models_shapes(name):
    # meta_model skips the random initialisers (nothing to fill on the meta device): the
    # model must come out the same as one built on the CPU, only without values.
    meta = meta_model(name)
    real = cnnzoo.create_model(name)
    assert all(t.is_meta for t in meta.state_dict().values())
    assert {k: (v.shape, v.dtype) for k, v in meta.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in real.state_dict().items()}
    # the initialisers still work outside it
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5
