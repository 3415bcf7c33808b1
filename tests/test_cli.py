"""The ``cnnzoo`` command end to end: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnzoo.cli.main import main

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
