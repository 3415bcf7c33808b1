"""The ``cnnzoo`` command end to end: outputs, exit codes and error messages."""

from __future__ import annotations

import io
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
    (["summary", "resnet18", "--input", "99999999999"], "a side can be at most 65536 pixels"),
    (["summary", "resnet20", "--input", "3x99999999999999999999x1"], "a side can be at most 65536 pixels"),
    (["summary", "resnet20", "--input", "99999999999999999999x32x32"], "at most 65536 channels"),
    # an option of the wrong type fails deep inside PyTorch unless the builder checks it
    (["summary", "mobilenet_v1", "-k", "width_mult=abc"], "width_mult"),
    (["summary", "resnet18", "-k", "num_classes=[10]"], "num_classes"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "cnnzoo: error: argument COMMAND: invalid choice: 'bogus'"),
    (["train", "resnet20", "--epochs", "abc"], "cnnzoo train: error: argument --epochs: invalid int value: 'abc'"),
    (["export", "resnet20"], "cnnzoo export: error: the following arguments are required: --out"),
    (["summary", "resnet20", "--no-such-flag"], "cnnzoo: error: unrecognized arguments: --no-such-flag"),
    ([], "cnnzoo: error: the following arguments are required: COMMAND"),
])
def test_argument_errors_are_one_line_without_the_usage_banner(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith(message)
    assert len(err.strip().splitlines()) == 1 and "usage:" not in err and err.strip().endswith("--help`)")


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


# ------------------------------------------------------------------ summary: channels, runs, plot message

def test_summary_of_other_channels_says_which_option_builds_them(capsys):
    code, out, err = run_cli(capsys, "summary", "resnet20", "--input", "1x28x28")
    assert code == 2 and out == ""
    assert err.strip() == (
        "cnnzoo summary: error: resnet20 is built with 3 input channel(s) but --input 1x28x28 has 1: "
        "add -k in_chans=1"
    )
    code, out, _ = run_cli(capsys, "summary", "resnet20", "--input", "1x28x28", "-k", "in_chans=1", "--format", "json")
    total = json.loads(out)["total"]
    # He et al. 2016, Table 6: ResNet-20 has 0.27 M parameters (269,722 with 3 channels); one
    # input channel leaves 16 x 3 x 3 x 2 = 288 fewer weights in the first convolution.
    assert code == 0 and total["params"] == 269_722 - 288
    assert total["input_size"] == [1, 1, 28, 28]


def test_summary_of_a_run_is_at_the_runs_model_and_input(capsys, tmp_path):
    from test_cli_predict_export import make_run  # a run directory with a best checkpoint

    make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 16))
    expected = json.loads(run_cli(capsys, "summary", "resnet20", "-k", "in_chans=1", "-k", "num_classes=3",
                                  "--input", "1x12x16", "--format", "json")[1])
    for target in (tmp_path / "run", tmp_path / "run" / "best.safetensors"):
        code, out, err = run_cli(capsys, "summary", str(target), "--format", "json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["total"] == expected["total"] and summary["total"]["input_size"] == [1, 1, 12, 16]
        assert summary["model"] == f"resnet20 ({target})"
    code, out, _ = run_cli(capsys, "summary", str(tmp_path / "run"), "--input", "24x32", "--format", "json")
    assert code == 0 and json.loads(out)["total"]["macs"] > expected["total"]["macs"]


@pytest.mark.parametrize("extra, message", [
    (["--input", "3x12x16"], "the run's resnet20 is built with 1 input channel(s) but --input 3x12x16 has 3: "
                             "give --input as HxW"),
    (["-k", "in_chans=1"], "model options apply only to a registered model name"),
])
def test_summary_of_a_run_refuses_what_does_not_fit_it(capsys, tmp_path, extra, message):
    from test_cli_predict_export import make_run  # a run directory with a best checkpoint

    make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 16))
    code, _, err = run_cli(capsys, "summary", str(tmp_path / "run"), *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_summary_of_a_missing_checkpoint_is_a_user_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "summary", str(tmp_path / "nothing.safetensors"))
    assert code == 2 and "no run directory or checkpoint at" in err


class _Sink(io.RawIOBase):
    """One place both streams write to, in the order the bytes leave them (a terminal, or
    ``> log 2>&1``)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.text += data if isinstance(data, str) else bytes(data).decode()
        return len(data)


def test_summary_plot_message_comes_after_the_summary_on_its_own_line(monkeypatch, tmp_path):
    sink = _Sink()
    # stdout buffered as Python buffers a file or a pipe, stderr unbuffered
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(sink, buffer_size=1 << 20)))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(sink, write_through=True))
    path = tmp_path / "r20.png"
    assert main(["summary", "resnet20", "--depth", "0", "--plot", str(path)]) == 0
    sys.stdout.flush()
    lines = sink.text.splitlines()
    assert lines[-1] == f"wrote {path}" and lines[-2].startswith("Receptive field:")
    assert sink.text.endswith("\n")


# ------------------------------------------------------------------ a reader that closes stdout early

class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_ends_the_command_quietly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["explain"]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, unbuffered", [(["explain"], False), (["explain"], True), (["--help"], False)])
def test_a_reader_that_leaves_early_gets_no_error_message(argv, unbuffered):
    # `cnnzoo explain | head -0`: the reading end is closed before the command writes a byte.
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    try:
        result = subprocess.run([sys.executable, "-m", "cnnzoo.cli.main", *argv], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, env=env)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")


# ------------------------------------------------------------------ compare: where the top-1 was measured

def test_compare_at_another_input_says_where_the_top1_was_measured(capsys):
    code, out, _ = run_cli(capsys, "compare", "resnet18", "squeezenet1_0", "--input", "3x128x128")
    assert code == 0 and "3x128x128" in out
    assert out.rstrip().splitlines()[-1] == (
        "top-1 % at the published input (224x224), not at 128x128: the costs alone follow --input."
    )
    _, out, _ = run_cli(capsys, "compare", "resnet18", "inception_v3", "--input", "160", "--format", "markdown")
    assert "(resnet18 224x224, inception_v3 299x299), not at 160x160" in out
    _, out, _ = run_cli(capsys, "compare", "resnet18", "inception_v3")
    assert "published input" not in out  # each at its own input: nothing to warn about
    _, out, _ = run_cli(capsys, "compare", "resnet18", "unet", "--format", "json")
    assert [row["top1_input"] for row in json.loads(out)] == ["224x224", None]  # unet: no published top-1
