"""ONNX and TorchScript export: each written file is loaded here independently (our own
onnxruntime session, our own ``torch.jit.load``) and compared with the eager model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.engine.checkpoint import save_checkpoint

# torch.jit.load (reading the TorchScript files back) warns that TorchScript is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
from cnnzoo.engine.export import export_model
from cnnzoo.engine.sources import default_input_size, load_model_source


def seeded_model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return cnnzoo.create_model(name, **kwargs).eval()


def onnx_outputs(path, x: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (only_input,) = session.get_inputs()
    return session.run(None, {only_input.name: x.numpy()})[0]


def eager(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("name, size, kwargs", [
    ("resnet20", (1, 28, 28), {"in_chans": 1}),
    ("mobilenet_v1", (3, 32, 32), {"width_mult": 0.25}),
    ("squeezenet1_1", (3, 32, 32), {"num_classes": 7}),
])
def test_onnx_export_agrees_with_onnxruntime(tmp_path, name, size, kwargs):
    model = seeded_model(name, **kwargs)
    out = tmp_path / f"{name}.onnx"
    result = export_model(model, out, input_size=size)
    onnx.checker.check_model(str(out))
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(7))
    expected = eager(model, x)
    np.testing.assert_allclose(onnx_outputs(out, x), expected, atol=1e-4 * max(1, np.abs(expected).max()))
    assert result.path == out and result.size_bytes == out.stat().st_size
    assert result.input_size == size and result.max_abs_diff <= result.tolerance
    assert not np.all(expected == expected.flat[0])  # a constant output would check nothing


def test_dynamic_batch_runs_at_any_batch_size(tmp_path):
    model = seeded_model("resnet20", num_classes=4)
    out = tmp_path / "resnet20.onnx"
    export_model(model, out, input_size=(3, 32, 32), dynamic_batch=True)
    x = torch.randn(5, 3, 32, 32)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 32, 32]


def test_static_batch_is_fixed_to_one(tmp_path):
    out = tmp_path / "r.onnx"
    export_model(seeded_model("resnet20"), out, input_size=(3, 32, 32))
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 32, 32]


def test_opset_is_the_one_asked_for(tmp_path):
    out = tmp_path / "r.onnx"
    result = export_model(seeded_model("resnet20"), out, input_size=(3, 32, 32), opset=17)
    opsets = {entry.domain: entry.version for entry in onnx.load(str(out)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == 17 == result.opset


@pytest.mark.slow
def test_dynamo_exporter_agrees_too(tmp_path):
    model = seeded_model("resnet20")
    out = tmp_path / "dynamo.onnx"
    result = export_model(model, out, input_size=(3, 32, 32), exporter="dynamo", dynamic_batch=True)
    assert result.exporter == "dynamo"
    assert not list(tmp_path.glob("*.data"))  # one self-contained file, no external weights
    x = torch.randn(3, 3, 32, 32)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)


@pytest.mark.slow
def test_auto_falls_back_on_dynamo_where_legacy_cannot_export(tmp_path):
    # Adaptive pooling 4 -> 3 (not a divisor) with a free batch: the legacy exporter refuses it.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(3), nn.Flatten()).eval()
    with pytest.raises(ValueError, match=r"ONNX export \(legacy\) failed"):
        export_model(model, tmp_path / "a.onnx", input_size=(1, 4, 4), dynamic_batch=True, exporter="legacy")
    result = export_model(model, tmp_path / "a.onnx", input_size=(1, 4, 4), dynamic_batch=True)
    assert result.exporter == "dynamo"
    x = torch.randn(3, 1, 4, 4)
    np.testing.assert_allclose(onnx_outputs(tmp_path / "a.onnx", x), eager(model, x), atol=1e-5)


def test_torchscript_export_agrees_with_the_eager_model(tmp_path):
    model = seeded_model("squeezenet1_1", num_classes=5)
    out = tmp_path / "squeezenet.pt"
    result = export_model(model, out, format="torchscript", input_size=(3, 48, 48), dynamic_batch=True)
    loaded = torch.jit.load(str(out))
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), eager(model, x), atol=1e-5)
    assert result.exporter == "trace" and result.opset is None


def test_small_unet_exports(tmp_path):
    model = seeded_model("unet", num_classes=3, in_chans=1, base_width=4, depth=2, padding=True, batch_norm=True)
    out = tmp_path / "unet.onnx"
    export_model(model, out, input_size=(1, 32, 32), dynamic_batch=True)
    x = torch.randn(2, 1, 32, 32)
    got = onnx_outputs(out, x)
    assert got.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(got, eager(model, x), atol=1e-4)


def test_a_registered_name_exports_at_its_default_input(tmp_path):
    out = tmp_path / "r.onnx"
    result = export_model("resnet20", out, model_kwargs={"in_chans": 1, "num_classes": 3})
    assert result.input_size == (1, 32, 32)  # resnet20's default input (3, 32, 32), in_chans from the options
    got = onnx_outputs(out, torch.randn(1, 1, 32, 32))
    assert got.shape == (1, 3)


def test_a_trained_run_exports_at_its_training_size(tmp_path):
    model = seeded_model("resnet20", num_classes=3, in_chans=1)
    meta = {
        "model": "resnet20", "model_kwargs": {}, "task": "classification", "num_classes": 3, "in_chans": 1,
        "class_names": ["a", "b", "c"], "mean": [0.5], "std": [0.25], "image_size": [24, 20], "ignore_index": None,
        "data": "test", "epoch": 0, "metrics": {},
    }
    save_checkpoint(tmp_path / "best", model, meta)
    loaded, loaded_meta = load_model_source(tmp_path)
    assert default_input_size(loaded, loaded_meta) == (1, 24, 20)
    out = tmp_path / "run.onnx"
    export_model(tmp_path / "best.safetensors", out)
    x = torch.randn(1, 1, 24, 20)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)


class BatchSizeTimes(nn.Module):
    """Multiplies by the batch size: a tracer records the traced batch as a constant, so the
    exported model is wrong at any other batch size."""

    def forward(self, x):
        return x * float(x.shape[0])


class Threes(nn.Module):
    def forward(self, x):
        return x * 0 + 3


def test_the_tolerance_scales_with_the_largest_output(tmp_path):
    # bound = tolerance * max(1, max |output|) = 1e-4 * 3
    result = export_model(Threes(), tmp_path / "t.onnx", input_size=(1, 2, 2))
    assert result.max_abs_output == 3.0 and result.tolerance == pytest.approx(3e-4) and result.max_abs_diff == 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_that_differs_is_refused_and_nothing_written(tmp_path, fmt):
    out = tmp_path / "bad.model"
    out.write_bytes(b"old")
    with pytest.raises(ValueError, match="differs from the original.*nothing written"):
        export_model(BatchSizeTimes(), out, format=fmt, input_size=(1, 4, 4), dynamic_batch=True)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.model"]  # no temporary left


def test_bad_requests_are_clear_errors(tmp_path):
    model = seeded_model("resnet20")
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(model, tmp_path / "a", format="tflite", input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="unknown ONNX exporter"):
        export_model(model, tmp_path / "a", exporter="jit", input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="opset applies only to ONNX"):
        export_model(model, tmp_path / "a", format="torchscript", opset=17, input_size=(3, 32, 32))
    with pytest.raises(ValueError, match="it is a folder"):
        export_model(model, tmp_path, input_size=(3, 32, 32))
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        export_model(model, tmp_path / "missing" / "a.onnx", input_size=(3, 32, 32))
    with pytest.raises(FileNotFoundError, match="no run directory or checkpoint"):
        export_model("runs/nothing-here", tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="unknown model 'resnet21'"):
        export_model("resnet21", tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="input size must be three positive integers"):
        export_model(model, tmp_path / "a.onnx", input_size=(3, 0, 32))
    with pytest.raises(ValueError, match="input size is not known"):
        export_model(BatchSizeTimes(), tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_input_below_the_model_minimum_names_it(tmp_path):
    # AlexNet's documented minimum input side is 63 (registry); the model's own check says so.
    with pytest.raises(ValueError, match="63"):
        export_model("alexnet", tmp_path / "a.onnx", input_size=(3, 32, 32))
