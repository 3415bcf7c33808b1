"""ONNX and TorchScript export: each written file is loaded here independently (our own
onnxruntime session, our own ``torch.jit.load``) and compared with the eager model."""

from __future__ import annotations

import json

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
        export_model(BatchSizeTimes(), out, format=fmt, input_size=(1, 4, 4), dynamic_batch=True, overwrite=True)
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


# ------------------------------------------------------------- what an export says about itself

def pretrained_style_run(folder, in_chans=3, **fields):
    """A run directory whose RunMeta has every preprocessing field set."""
    model = seeded_model("resnet20", num_classes=3, in_chans=in_chans)
    meta = {
        "model": "resnet20", "model_kwargs": {}, "task": "classification", "num_classes": 3, "in_chans": in_chans,
        "class_names": ["cat", "dog", "fox"], "mean": [0.485, 0.456, 0.406][:in_chans],
        "std": [0.229, 0.224, 0.225][:in_chans], "image_size": [24, 24], "ignore_index": None, "data": "test",
        "epoch": 0, "metrics": {}, "resize_size": 28, "interpolation": "bicubic", "weights": "IMAGENET1K_V1",
        **fields,
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "best", model, meta)
    return model, meta


def test_onnx_metadata_describes_the_run(tmp_path):
    _, meta = pretrained_style_run(tmp_path / "run")
    out = tmp_path / "model.onnx"
    result = export_model(tmp_path / "run", out, dynamic_batch=True)
    props = {entry.key: entry.value for entry in onnx.load(str(out)).metadata_props}
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == props
    assert props["task"] == "classification" and props["model"] == "resnet20" and props["channel_order"] == "RGB"
    assert json.loads(props["class_names"]) == meta["class_names"]
    assert json.loads(props["mean"]) == meta["mean"] and json.loads(props["std"]) == meta["std"]
    assert json.loads(props["input_size"]) == [3, 24, 24] and json.loads(props["model_kwargs"]) == {}
    assert props["resize_method"] == "shorter_side_then_center_crop" and json.loads(props["resize_size"]) == 28
    assert props["interpolation"] == "bicubic" and props["weights"] == "IMAGENET1K_V1"
    assert props["input_dtype"] == "float32" and json.loads(props["pixel_scale"]) == 1
    assert json.loads(props["normalized_in_graph"]) is False and json.loads(props["dynamic_batch"]) is True
    assert json.loads(props["size_multiple"]) == 1 and json.loads(props["dynamic_size"]) is False  # a classifier
    assert props["cnnzoo_version"] == cnnzoo.__version__ and props["exporter"] == "legacy"
    # The sidecar holds the same fields as native JSON.
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert result.sidecar == tmp_path / "model.json" and sidecar == result.metadata
    # In the ONNX file: strings as they are, the rest as JSON text, fields without a value left out.
    assert sidecar["output_size"] is None and "output_size" not in props  # a classifier's output has no size
    assert {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in sidecar.items() if value is not None} == props


@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt"), ("openvino", "m.xml")])
def test_every_format_gets_a_sidecar_and_carries_the_metadata_inside(tmp_path, fmt, name):
    pretrained_style_run(tmp_path / "run", in_chans=1)
    result = export_model(tmp_path / "run", tmp_path / name, format=fmt)
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["format"] == fmt and sidecar["channel_order"] == "gray" and sidecar["class_names"][0] == "cat"
    if fmt == "torchscript":
        extra = {"cnnzoo.json": ""}
        torch.jit.load(str(tmp_path / name), _extra_files=extra)
        assert json.loads(extra["cnnzoo.json"]) == sidecar
    if fmt == "openvino":
        import openvino

        graph = openvino.Core().read_model(str(tmp_path / name))
        assert graph.get_rt_info(["cnnzoo", "class_names"]).astype(str) == json.dumps(sidecar["class_names"])
        assert graph.get_rt_info(["cnnzoo", "task"]).astype(str) == "classification"
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == sorted(["m.json", *(p.name for p in result.files)])  # no temporary left


def test_a_registered_name_says_what_it_knows(tmp_path):
    result = export_model("unet", tmp_path / "u.onnx", input_size=(1, 52, 52),
                          model_kwargs={"num_classes": 3, "base_width": 4, "depth": 2})
    meta = result.metadata
    assert meta["model"] == "unet" and meta["model_kwargs"] == {"num_classes": 3, "base_width": 4, "depth": 2}
    assert meta["mean"] is None and meta["class_names"] is None and meta["num_classes"] == 3
    assert meta["task"] == "segmentation" and meta["resize_method"] == "none"
    assert meta["output_size"] == [12, 12]  # valid convolutions: 52 -> 12 at depth 2 (docs/models/unet_segnet.md)


def test_the_sidecar_never_replaces_a_checkpoint_or_the_export(tmp_path):
    pretrained_style_run(tmp_path / "run")
    before = (tmp_path / "run" / "best.json").read_bytes()
    with pytest.raises(ValueError, match="is the metadata of the checkpoint"):
        export_model(tmp_path / "run", tmp_path / "run" / "best.onnx")
    with pytest.raises(ValueError, match="another suffix than .json"):
        export_model(tmp_path / "run", tmp_path / "model.json")
    assert (tmp_path / "run" / "best.json").read_bytes() == before
    assert not list(tmp_path.glob("*.onnx")) and not list((tmp_path / "run").glob("*.onnx"))


# ------------------------------------------------------------------ uint8 in, normalized inside

def test_preprocess_in_graph_takes_uint8_images(tmp_path):
    model, meta = pretrained_style_run(tmp_path / "run")
    out = tmp_path / "uint8.onnx"
    result = export_model(tmp_path / "run", out, preprocess_in_graph=True, dynamic_batch=True)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    images = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    mean, std = (torch.tensor(meta[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
    expected = eager(model, (images.float() / 255 - mean) / std)
    np.testing.assert_allclose(session.run(None, {"input": images.numpy()})[0], expected, atol=1e-4)
    assert result.metadata["input_dtype"] == "uint8" and result.metadata["pixel_scale"] == 255
    assert result.metadata["normalized_in_graph"] is True


def test_preprocess_in_graph_in_torchscript_and_without_a_run(tmp_path):
    model, meta = pretrained_style_run(tmp_path / "run", in_chans=1)
    export_model(tmp_path / "run", tmp_path / "m.pt", format="torchscript", preprocess_in_graph=True)
    images = torch.randint(0, 256, (1, 1, 24, 24), dtype=torch.uint8)
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "m.pt"))(images).numpy()
    expected = eager(model, (images.float() / 255 - meta["mean"][0]) / meta["std"][0])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="needs the mean and std of a trained run"):
        export_model("resnet20", tmp_path / "r.onnx", preprocess_in_graph=True)


# ------------------------------------------------------------------------- free height and width

def small_unet(**kwargs):
    return seeded_model("unet", num_classes=3, in_chans=1, base_width=4, depth=2, **kwargs)


def test_a_segmenter_takes_other_sizes_by_default(tmp_path):
    model = small_unet(padding=True)
    out = tmp_path / "unet.onnx"
    result = export_model(model, out, input_size=(1, 96, 96))
    assert result.dynamic_size and result.checked_sizes == ((96, 96), (100, 104))
    x = torch.randn(1, 1, 304, 384)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)
    assert (result.metadata["min_size"], result.metadata["size_multiple"]) == (4, 4)  # 2**depth
    export_model(model, out, input_size=(1, 96, 96), dynamic_size=False, overwrite=True)
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        onnx_outputs(out, x)  # a fixed 96x96 graph refuses the larger image


def test_the_size_rule_is_the_one_the_model_keeps():
    from cnnzoo.engine.export_meta import size_rule

    model = small_unet()  # valid convolutions
    takes = []
    for side in range(30, 70):
        try:
            with torch.no_grad():
                model(torch.zeros(1, 1, side, side))
            takes.append(side)
        except ValueError:
            pass
    rule = size_rule(model, 52)
    assert takes == list(range(rule.min_size, 70, rule.multiple)) and rule.multiple == 4
    assert (size_rule(seeded_model("resnet20"), 32).min_size, size_rule(seeded_model("resnet20"), 32).multiple) == (
        seeded_model("resnet20").min_input_size, 1)


def test_a_fully_convolutional_classifier_takes_any_size_on_request(tmp_path):
    model = seeded_model("resnet20", num_classes=4)
    out = tmp_path / "r.onnx"
    result = export_model(model, out, input_size=(3, 32, 32), dynamic_size=True, dynamic_batch=True)
    assert result.dynamic_size and result.metadata["dynamic_size"] is True
    x = torch.randn(2, 3, 40, 57)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]


def test_a_head_pooling_to_a_fixed_grid_cannot_take_a_free_size(tmp_path):
    with pytest.raises(ValueError, match="alexnet cannot take a free height and width: .* fixed 6x6 grid"):
        export_model("alexnet", tmp_path / "a.onnx", dynamic_size=True)
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_fixes_its_size_falls_back_or_fails_as_asked(tmp_path):
    # auto_pad computes its padding in Python: the traced graph keeps the export size's.
    model = small_unet(padding=True, auto_pad=True)
    result = export_model(model, tmp_path / "u.pt", format="torchscript", input_size=(1, 32, 32))
    assert not result.dynamic_size and result.metadata["dynamic_size"] is False
    assert "fixed input size 32x32" in result.notes[0] and "33x34" in result.notes[0]
    with pytest.raises(ValueError, match="does not take a free height and width .*33x34.*--fixed-size"):
        export_model(model, tmp_path / "v.pt", format="torchscript", input_size=(1, 32, 32), dynamic_size=True)
    assert not (tmp_path / "v.pt").exists() and not (tmp_path / "v.json").exists()


@pytest.mark.slow
def test_auto_takes_dynamo_where_the_legacy_graph_fixes_the_size(tmp_path):
    # FCN crops its logits to the input's size computed in Python: the legacy graph fixes it,
    # torch.export keeps it symbolic.
    torch.manual_seed(0)
    model = cnnzoo.create_model("fcn32s", num_classes=3, backbone="resnet18").eval()
    out = tmp_path / "fcn.onnx"
    result = export_model(model, out, input_size=(3, 64, 64))
    assert result.exporter == "dynamo" and result.dynamic_size
    x = torch.randn(1, 3, 70, 90)
    np.testing.assert_allclose(onnx_outputs(out, x), eager(model, x), atol=1e-4)


def test_metadata_of_a_model_built_with_pretrained_weights_comes_from_them():
    from cnnzoo.engine.export_meta import export_metadata
    from cnnzoo.engine.runmeta import RunMeta
    from cnnzoo.engine.sources import ModelSource

    weights = RunMeta(model="resnet20", task="classification", num_classes=3, in_chans=3, class_names=["a", "b", "c"],
                      mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), image_size=(32, 32), ignore_index=None, data="",
                      epoch=0, metrics={}, resize_size=36, interpolation="bicubic", weights="SOME_WEIGHTS")
    meta = export_metadata(seeded_model("resnet20", num_classes=3), ModelSource("resnet20", {}, pretrained=weights),
                           format="onnx", exporter="legacy", opset=20, input_size=(3, 32, 32), dynamic_batch=False,
                           dynamic_size=False, preprocess_in_graph=False)
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["class_names"] == ["a", "b", "c"]
    assert meta["weights"] == "SOME_WEIGHTS"
    assert meta["resize_method"] == "shorter_side_then_center_crop" and meta["interpolation"] == "bicubic"
