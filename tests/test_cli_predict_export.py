"""``cnnzoo predict`` and ``cnnzoo export`` end to end: files, printed results, exit codes."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.engine.checkpoint import save_checkpoint

# torch.jit.load (reading the TorchScript files back) warns that TorchScript is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_run(folder, name, task, num_classes, in_chans, image_size, **kwargs):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs).eval()
    meta = {
        "model": name, "model_kwargs": kwargs, "task": task, "num_classes": num_classes, "in_chans": in_chans,
        "class_names": [f"c{i}" for i in range(num_classes)], "mean": [0.5] * in_chans, "std": [0.25] * in_chans,
        "image_size": list(image_size), "ignore_index": None, "data": "test", "epoch": 0, "metrics": {},
    }
    folder.mkdir(parents=True)
    save_checkpoint(folder / "best", model, meta)
    return model


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        save_png(tmp_path / "images" / name, rng.integers(0, 256, (12, 12), dtype=np.uint8))
    return tmp_path / "images"


# -------------------------------------------------------------------------------- predict

def test_predict_classifier_prints_and_writes_csv(capsys, tmp_path, images):
    model = make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 12))
    code, out, err = run_cli(capsys, "predict", tmp_path / "run", images, "--top-k", "2", "--format", "csv",
                             "--out", tmp_path / "out")
    assert code == 0, err
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "image,rank,class_index,class_name,probability" and len(lines) == 5
    pixels = np.array(Image.open(images / "a.png"), dtype=np.float32) / 255
    with torch.no_grad():
        probabilities = model((torch.from_numpy(pixels)[None, None] - 0.5) / 0.25).softmax(1)[0]
    best = int(probabilities.argmax())
    assert lines[1].split(",")[3] == f"c{best}"
    assert f"c{best} {float(probabilities[best]):.3f}" in out  # the printed table
    assert "top-1" in out and "top-2" in out and "wrote" in out


def test_predict_segmenter_writes_masks_and_overlays(capsys, tmp_path, images):
    make_run(tmp_path / "run", "unet", "segmentation", 2, 1, (16, 16), base_width=4, depth=2, padding=True)
    code, out, err = run_cli(capsys, "predict", tmp_path / "run", images, "--out", tmp_path / "masks", "--overlay")
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == ["a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png"]
    assert "whole" in out and "wrote 4 files" in out


@pytest.mark.parametrize("argv, message", [
    (["{run}", "{tmp}/nowhere"], "no such image file or folder"),
    (["{run}", "{tmp}/empty"], "no images"),
    (["{tmp}/no-run", "{images}"], "no checkpoint at"),
    (["{run}", "{images}", "--tile-size", "32"], "applies only to segmentation"),
    (["{segmenter}", "{images}", "--keep-aspect"], "aspect ratio applies only to classifiers"),
    (["{run}", "{images}", "--out", "{tmp}/file.txt"], "is a file"),
    (["{run}", "{tmp}/broken.png"], "broken.png"),
])
def test_predict_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, images, argv, message):
    make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 12))
    make_run(tmp_path / "segmenter", "unet", "segmentation", 2, 1, (16, 16), base_width=4, depth=2, padding=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    values = {"run": tmp_path / "run", "tmp": tmp_path, "images": images, "segmenter": tmp_path / "segmenter"}
    code, out, err = run_cli(capsys, "predict", *[a.format(**values) for a in argv])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------- export

def assert_onnx_gives(path, model, x, model_input=None):
    """The ONNX file at ``path`` gives, for the input ``x``, the model's outputs on
    ``model_input`` (default ``x``); returns its onnxruntime session."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x if model_input is None else model_input).numpy()
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], expected, atol=1e-4)
    return session


def test_export_a_run_and_load_it_with_onnxruntime(capsys, tmp_path):
    model = make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 12))
    out = tmp_path / "model.onnx"
    code, stdout, err = run_cli(capsys, "export", tmp_path / "run", "--out", out, "--dynamic-batch")
    assert code == 0, err
    assert "input 1x12x12" in stdout and "onnxruntime agrees" in stdout
    assert_onnx_gives(out, model, torch.randn(3, 1, 12, 12))


def test_export_a_segmenter_with_a_free_size_and_its_metadata(capsys, tmp_path):
    model = make_run(tmp_path / "run", "unet", "segmentation", 2, 1, (96, 96), base_width=4, depth=2, padding=True)
    out = tmp_path / "unet.onnx"
    code, stdout, err = run_cli(capsys, "export", tmp_path / "run", "--out", out)
    assert code == 0, err
    assert "input 1xHxW (H, W = 4 + 4k; checked at 96x96, 100x104)" in stdout and "unet.json" in stdout
    session = assert_onnx_gives(out, model, torch.randn(1, 1, 304, 384))  # exported at 96x96
    metadata = json.loads((tmp_path / "unet.json").read_text())
    assert metadata["class_names"] == ["c0", "c1"] and metadata["size_multiple"] == 4 and metadata["dynamic_size"]
    assert session.get_modelmeta().custom_metadata_map["task"] == "segmentation"


def test_export_fixed_size_and_uint8_input(capsys, tmp_path):
    model = make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 12))
    out = tmp_path / "r.onnx"
    code, stdout, err = run_cli(capsys, "export", tmp_path / "run", "--out", out, "--preprocess-in-graph")
    assert code == 0, err
    assert "input 1x12x12, uint8 normalized in the graph" in stdout
    images = torch.randint(0, 256, (1, 1, 12, 12), dtype=torch.uint8)
    assert_onnx_gives(out, model, images, model_input=(images.float() / 255 - 0.5) / 0.25)
    code, stdout, err = run_cli(capsys, "export", tmp_path / "run", "--out", out, "--fixed-size", "--format", "onnx",
                                   "--overwrite")
    assert code == 0 and "input 1x12x12," in stdout


def test_predict_keep_aspect_crops_the_centre(capsys, tmp_path):
    model = make_run(tmp_path / "run", "resnet20", "classification", 3, 1, (12, 12))
    pixels = np.random.default_rng(1).integers(0, 256, (12, 24), dtype=np.uint8)
    save_png(tmp_path / "wide" / "w.png", pixels)
    code, _, err = run_cli(capsys, "predict", tmp_path / "run", tmp_path / "wide", "--keep-aspect", "--top-k", "1",
                           "--format", "csv", "--out", tmp_path / "out")
    assert code == 0, err
    centre = torch.from_numpy(pixels[:, 6:18].astype(np.float32) / 255)[None, None]  # 12x24 covers 12x12 as it is
    with torch.no_grad():
        best = int(model((centre - 0.5) / 0.25).argmax())
    assert (tmp_path / "out" / "predictions.csv").read_text().splitlines()[1].split(",")[3] == f"c{best}"


def test_export_a_model_name_with_options_and_a_size(capsys, tmp_path):
    out = tmp_path / "m.pt"
    code, stdout, err = run_cli(capsys, "export", "mobilenet_v1", "-k", "width_mult=0.25", "-k", "num_classes=4",
                                "--format", "torchscript", "--input-size", "3,40,40", "--out", out)
    assert code == 0, err
    loaded = torch.jit.load(str(out))
    assert loaded(torch.randn(1, 3, 40, 40)).shape == (1, 4)
    assert "traced" in stdout


@pytest.mark.parametrize("argv, message", [
    (["resnet21", "--out", "{tmp}/a.onnx"], "unknown model 'resnet21'"),
    (["resnet20", "--out", "{tmp}/missing/a.onnx"], "output folder does not exist"),
    (["resnet20", "--out", "{tmp}"], "it is a folder"),
    (["resnet20", "--out", "{tmp}/a.pt", "--format", "torchscript", "--opset", "17"], "--opset applies only"),
    (["resnet20", "--out", "{tmp}/a.onnx", "--input-size", "3x0x4"], "must be positive"),
    (["alexnet", "--out", "{tmp}/a.onnx", "--input-size", "32"], "63"),
    (["resnet20", "--out", "{tmp}/a.onnx", "-k", "widht=2"], "bad option for model"),
    (["alexnet", "--out", "{tmp}/a.onnx", "--dynamic-size"], "pools to a fixed 6x6 grid"),
    (["resnet20", "--out", "{tmp}/a.pt", "--format", "torchscript", "--preprocess-in-graph"],
     "needs the mean and std of a trained run"),
    (["resnet20", "--out", "{tmp}/a.json"], "another suffix than .json"),
    (["resnet20", "--out", "{tmp}/a.onnx", "--opset", "0"], "opset 0 is not one the ONNX exporter writes: choose 7 to"),
    (["resnet20", "--out", "{tmp}/a.onnx", "--opset", "5"], "opset 5 is not one the ONNX exporter writes"),
    (["resnet20", "--out", "{tmp}/a.onnx", "--opset", "99"], "opset 99 is not one the ONNX exporter writes"),
    (["resnet20", "--out", "{tmp}/a.onnx", "--opset", "9", "--exporter", "dynamo"], "wrote opset 18, not the 9 asked"),
])
def test_export_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "export", *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.pt"))


def test_help_has_an_example(capsys):
    for command in ("predict", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out
