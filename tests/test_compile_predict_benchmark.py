"""Compiled runs: int8 calibrated and judged on the run's own data, predict on every runtime,
OpenVINO export, and `cnnzoo benchmark`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.deploy import runners
from cnnzoo.deploy.runners import available_runtimes
from cnnzoo.engine import compile as engine_compile
from cnnzoo.engine.benchmark import EAGER, benchmark
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.engine.compile import AccuracyChange, compile_model, run_inputs, spread
from cnnzoo.engine.export import export_model
from cnnzoo.engine.predict import predict
from cnnzoo.engine.sources import data_of_run

MEAN, STD = 0.45, 0.25
OPENVINO = pytest.mark.skipif("openvino" not in available_runtimes(), reason="openvino is not installed")


def class_folder(root: Path, per_class: int = 12, size: int = 16) -> Path:
    """Two classes a classifier can tell apart: dark and bright images with noise."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 60), ("bright", 190)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = np.clip(rng.normal(level, 25, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


@pytest.fixture()
def classifier_run(tmp_path):
    """A run directory of a seeded ResNet-20 over a folder data set (data resolvable, as a real run's)."""
    data = class_folder(tmp_path / "data")
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=2, in_chans=1).eval()
    meta = {"model": "resnet20", "model_kwargs": {}, "task": "classification", "num_classes": 2, "in_chans": 1,
            "class_names": ["bright", "dark"], "mean": [MEAN], "std": [STD], "image_size": [16, 16],
            "ignore_index": None, "data": str(data), "epoch": 1, "metrics": {}}
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best", model, meta)
    return run, model


def test_calibration_inputs_are_the_runs_images_normalized(classifier_run):
    run, _ = classifier_run
    meta = cnnzoo.engine.checkpoint.load_trained(run).meta
    spec = data_of_run(meta)
    indices = spread(len(spec.train), 5)
    assert indices == sorted(set(indices)) and indices[0] == 0 and indices[-1] == len(spec.train) - 1
    (batch,) = list(run_inputs(spec.train, meta, (1, 16, 16), indices))
    expected = (spec.train[indices[2]]["image"] - MEAN) / STD
    torch.testing.assert_close(batch[2], expected)


def test_calibration_inputs_reach_a_segmenters_tile_by_mirroring():
    meta = type("Meta", (), {"mean": (0.0,), "std": (1.0,)})()
    dataset = [{"image": torch.arange(16.0).view(1, 4, 4)}]
    (batch,) = list(run_inputs(dataset, meta, (1, 8, 6), [0]))
    assert batch.shape == (1, 1, 8, 6)
    torch.testing.assert_close(batch[0, 0, 2:6, 1:5], dataset[0]["image"][0])  # the image in the middle


def test_int8_of_a_run_is_calibrated_and_judged_on_its_data(classifier_run):
    run, model = classifier_run
    lines = []
    runner = compile_model(run, "onnxruntime", "int8", max_drop=0.99, log=lines.append)
    accuracy = runner.report.accuracy
    # The fp32 score is the model's own top-1 on the validation images, computed here independently.
    meta = cnnzoo.engine.checkpoint.load_trained(run).meta
    spec = data_of_run(meta)
    inputs = torch.stack([(spec.val[i]["image"] - MEAN) / STD for i in range(len(spec.val))])
    truth = torch.tensor([int(spec.val[i]["target"]) for i in range(len(spec.val))])
    with torch.no_grad():
        top1 = float((model(inputs).argmax(1) == truth).float().mean())
    assert accuracy["metric"] == "acc1" and accuracy["images"] == len(spec.val)
    assert accuracy["fp32"] == pytest.approx(top1)
    assert 0 <= accuracy["agreement"] <= 1 and lines and lines[-1].startswith("int8 on")


def test_int8_that_costs_too_much_is_refused(classifier_run, monkeypatch):
    run, _ = classifier_run
    monkeypatch.setattr(engine_compile, "_accuracy_change",
                        lambda *args: AccuracyChange("acc1", 0.90, 0.85, 24, 0.9))
    with pytest.raises(ValueError, match=r"int8 costs 5.00 points of acc1 \(0.9000 -> 0.8500\), more than the 1"):
        compile_model(run, "onnxruntime", "int8", log=None)


def test_int8_without_images_and_bad_drops_are_refused():
    with pytest.raises(ValueError, match="int8 needs calibration images"):
        compile_model("resnet20", "onnxruntime", "int8", log=None)
    with pytest.raises(ValueError, match="max_drop must be between 0 and 1"):
        compile_model("resnet20", "onnxruntime", "int8", max_drop=5, log=None)


@pytest.mark.parametrize("runtime", [r for r in available_runtimes() if r != "torch"])
def test_predict_on_a_runtime_gives_the_eager_classes(classifier_run, tmp_path, runtime):
    run, _ = classifier_run
    images = sorted((tmp_path / "data").rglob("*.png"))[:6]
    eager = predict(run, images, top_k=2)
    compiled = predict(run, images, top_k=2, runtime=runtime)
    assert [p.classes for p in compiled.predictions] == [p.classes for p in eager.predictions]
    for a, b in zip(compiled.predictions, eager.predictions):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)


def test_predict_a_segmenter_through_onnxruntime_tiles(tmp_path):
    torch.manual_seed(0)
    unet = cnnzoo.create_model("unet", num_classes=3, in_chans=1, padding=True, depth=2, base_width=4).eval()
    meta = {"model": "unet", "model_kwargs": {"padding": True, "depth": 2, "base_width": 4}, "task": "segmentation",
            "num_classes": 3, "in_chans": 1, "class_names": ["a", "b", "c"], "mean": [0.5], "std": [0.25],
            "image_size": [32, 32], "ignore_index": None, "data": "shapes", "epoch": 1, "metrics": {}}
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run" / "best", unet, meta)
    image = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 56), dtype=np.uint8)).save(image)
    eager = predict(tmp_path / "run", [image], out=tmp_path / "eager", tile_size=32)
    compiled = predict(tmp_path / "run", [image], out=tmp_path / "ort", tile_size=32, runtime="onnxruntime")
    same = np.asarray(Image.open(compiled.predictions[0].mask)) == np.asarray(Image.open(eager.predictions[0].mask))
    assert same.mean() > 0.999  # the same tiles and cross-fade; at most a near-tie pixel flips


def test_compiled_predict_refuses_a_gpu_and_writes_nothing(classifier_run, tmp_path):
    run, _ = classifier_run
    with pytest.raises(ValueError, match="compiled runner runs on the CPU"):
        predict(run, [tmp_path / "data"], runtime="onnxruntime", device="cuda", out=tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


@OPENVINO
def test_openvino_export_writes_xml_and_bin_that_openvino_reads(classifier_run, tmp_path):
    import openvino

    run, model = classifier_run
    result = export_model(run, tmp_path / "model.xml", format="openvino", dynamic_batch=True)
    assert [p.name for p in result.files] == ["model.xml", "model.bin"]
    assert result.size_bytes == sum(p.stat().st_size for p in result.files)
    # f32 said explicitly: on a CPU with native bf16, OpenVINO's default runs in bf16.
    compiled = openvino.Core().compile_model(str(tmp_path / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x.numpy())[0], model(x).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="written as NAME.xml"):
        export_model(run, tmp_path / "model.onnx", format="openvino")
    assert not (tmp_path / "model.onnx").exists()


def test_benchmark_times_every_runner_against_eager(tmp_path, monkeypatch):
    monkeypatch.setattr(runners, "has_native_bf16", lambda: False)  # no bf16 runners on such a CPU
    size, rows = benchmark("resnet20", ["torch", "onnxruntime"], [1, 4], rounds=2, model_kwargs={"num_classes": 10})
    assert size == (3, 32, 32)
    assert [(row.runner, row.batch) for row in rows] == [
        (EAGER, 1), ("torch fp32", 1), ("onnxruntime fp32", 1), (EAGER, 4), ("torch fp32", 4), ("onnxruntime fp32", 4)]
    for row in rows:
        assert row.p50_ms <= row.p90_ms and row.images_per_second == pytest.approx(1000 * row.batch / row.p50_ms)
        eager = next(r for r in rows if r.runner == EAGER and r.batch == row.batch)
        assert row.speedup == pytest.approx(row.images_per_second / eager.images_per_second)


def test_benchmark_adds_bf16_runners_where_the_cpu_has_bf16(monkeypatch):
    monkeypatch.setattr(runners, "has_native_bf16", lambda: True)
    _, rows = benchmark("resnet20", ["torch", "onnxruntime"], [2], rounds=1, model_kwargs={"num_classes": 10})
    assert [row.runner for row in rows] == [EAGER, "torch fp32", "torch bf16", "onnxruntime fp32"]  # no bf16 in ORT


def test_benchmark_bad_input_is_refused():
    with pytest.raises(ValueError, match="batch sizes must be positive integers"):
        benchmark("resnet20", ["torch"], [0])
    with pytest.raises(ValueError, match="unknown runtime 'tpu'"):
        benchmark("resnet20", ["tpu"], [1])


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cnnzoo_benchmark_prints_a_table_and_a_plot(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "benchmark", "resnet20", "--runtime", "torch", "--batch", "2", "--rounds", "2",
                           "--plot", str(tmp_path / "b.png"), "-k", "num_classes=10")
    assert code == 0 and "x eager" in out and "torch fp32" in out
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv, message", [
    (["benchmark", "resnet20", "--batch", "0"], "--batch sizes must be positive integers"),
    (["benchmark", "resnet20", "--batch", "a,b"], "--batch takes comma-separated integers"),
    (["benchmark", "resnet20", "--runtime", "tpu"], "unknown runtime 'tpu'"),
    (["benchmark", "resnt20"], "unknown model 'resnt20'"),
])
def test_cnnzoo_benchmark_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cnnzoo_predict_int8_without_a_usable_drop_is_one_line(capsys, classifier_run, tmp_path):
    run, _ = classifier_run
    code, _, err = run_cli(capsys, "predict", str(run), str(tmp_path / "data"), "--int8", "--max-drop", "150")
    assert code == 2 and "--max-drop must be between 0 and 100 points" in err
