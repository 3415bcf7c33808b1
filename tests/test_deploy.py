"""The deploy path: batch-norm folding, runners on every runtime, int8, choosing by measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.deploy import compile as deploy_compile
from cnnzoo.deploy import runners as runners_module
from cnnzoo.deploy import timing
from cnnzoo.deploy.compile import compile_runner
from cnnzoo.deploy.fold import fold_batchnorm, folded_conv
from cnnzoo.deploy.quantize import quantize_int8
from cnnzoo.deploy.runners import available_runtimes, build_runner, check_supported
from cnnzoo.deploy.timing import Timing, choose_fastest, model_key, time_alternating
from cnnzoo.utils import cpu

RUNTIMES_HERE = available_runtimes()


def with_random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with running statistics and affine parameters far from their init, so a
    fold that ignored one of them would show."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(channels, generator=generator) * 0.2)
    return model.eval()


def seeded(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return with_random_statistics(cnnzoo.create_model(name, **kwargs))


# ------------------------------------------------------------------------------ folding

def test_folded_conv_matches_the_formula():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, bias=True).double()
    norm = with_random_statistics(nn.Sequential(nn.BatchNorm2d(4))).double()[0]
    fused = folded_conv(conv, norm)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # W' = W s, b' = (b - mu) s + beta
    torch.testing.assert_close(fused.weight, conv.weight * scale.view(-1, 1, 1, 1))
    torch.testing.assert_close(fused.bias, (conv.bias - norm.running_mean) * scale + norm.bias)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(fused(x), norm(conv(x)))


@pytest.mark.parametrize("name, kwargs, size", [
    ("resnet20", {"num_classes": 10, "in_chans": 1}, 28),
    ("vgg11_bn", {"num_classes": 5}, 64),  # a flat Sequential of conv, BN, ReLU
    ("mobilenet_v1", {"num_classes": 7, "width_mult": 0.25}, 64),
])
def test_fold_batchnorm_keeps_the_outputs_and_removes_the_norms(name, kwargs, size):
    model = seeded(name, **kwargs)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, model.in_chans, size, size)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())  # untouched


def test_a_norm_before_its_conv_is_left_alone():
    model = seeded("densenet_bc_100_k12", num_classes=3, in_chans=1)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    # DenseNet's layers are BN-ReLU-conv: only the stem's conv-BN pair (if any) can fold.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) >= norms - 1
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ runners

@pytest.mark.parametrize("runtime", RUNTIMES_HERE)
def test_every_runtime_gives_the_eager_outputs(runtime):
    model = seeded("resnet20", num_classes=10, in_chans=1)
    runner = build_runner(model, runtime, (1, 28, 28))
    for batch in (1, 3):  # the batch size is free
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(runner(x), expected, rtol=1e-4, atol=1e-4)
        got = runner(x.numpy())
        assert isinstance(got, np.ndarray) and got.shape == (batch, 10)


@pytest.mark.parametrize("runtime", RUNTIMES_HERE)
def test_a_segmenter_runs_on_every_runtime(runtime):
    torch.manual_seed(0)
    unet = with_random_statistics(cnnzoo.create_model("unet", num_classes=3, in_chans=1, padding=True, depth=2,
                                                      base_width=4, batch_norm=True))
    runner = build_runner(unet, runtime, (1, 32, 32))
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(runner(x), unet(x), rtol=1e-4, atol=1e-4)


def test_unsupported_choices_say_why(monkeypatch):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        check_supported("tensorrt", "fp32")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        check_supported("torch", "fp8")
    with pytest.raises(ValueError, match="torch runs fp32 and bf16, not int8"):
        check_supported("torch", "int8")
    with pytest.raises(ValueError, match="onnxruntime runs fp32 and int8, not bf16"):
        check_supported("onnxruntime", "bf16")
    monkeypatch.setattr(runners_module, "has_native_bf16", lambda: False)
    with pytest.raises(ValueError, match="no native bf16"):
        check_supported("torch", "bf16")
    monkeypatch.setattr(runners_module, "available_runtimes", lambda: ["torch"])
    with pytest.raises(ValueError, match="openvino is not installed: pip install"):
        check_supported("openvino", "fp32")


def test_cpu_flags_decide_native_support(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not cpu.has_native_bf16() and not cpu.has_native_int8()
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}))
    assert cpu.has_native_bf16() and cpu.has_native_int8()


@pytest.mark.skipif(not cpu.has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_runner_is_close_to_fp32():
    model = seeded("resnet20", num_classes=10, in_chans=1)
    runner = build_runner(model, "torch", (1, 28, 28), "bf16")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    assert float((runner(x) - expected).abs().max()) <= 5e-2 * max(1.0, float(expected.abs().max()))


# --------------------------------------------------------------------------------- int8

def calibration_batches(count: int = 4, size: int = 28, channels: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(8, channels, size, size, generator=generator) for _ in range(count)]


def test_int8_graph_is_quantized_and_close_on_calibration_like_inputs():
    onnx = pytest.importorskip("onnx")
    model = seeded("resnet20", num_classes=10, in_chans=1)
    cache: dict[str, bytes] = {}
    runner = build_runner(model, "onnxruntime", (1, 28, 28), "int8", calibration=calibration_batches(),
                          onnx_cache=cache)
    operators = {node.op_type for node in onnx.load_model_from_string(cache["int8"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    x = calibration_batches(1)[0]
    with torch.no_grad():
        expected = model(x)
    got = runner(x)
    # int8 moves the logits a little, not the ranking of a net this small on its own kind of input
    assert float((got - expected).abs().max()) < 0.25 * float(expected.abs().max())
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.75


def test_int8_needs_enough_calibration_images():
    model = seeded("resnet20", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match="int8 needs calibration images"):
        build_runner(model, "onnxruntime", (1, 28, 28), "int8")
    with pytest.raises(ValueError, match="at least 8 images, got 4"):
        quantize_int8(b"not used", [torch.randn(4, 1, 28, 28)])
    with pytest.raises(ValueError, match="N x C x H x W"):
        quantize_int8(b"not used", [torch.randn(10, 28, 28)])


# ------------------------------------------------------------------------- measurement

def test_time_alternating_rotates_the_order_and_counts_rounds():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    timings = time_alternating(calls, batch=4, rounds=3, warmup=1)
    assert order[:3] == ["a", "b", "c"]  # the warm-ups
    assert order[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(t.seconds) == 3 for t in timings.values())


def test_timing_statistics():
    timing = Timing("x", batch=8, seconds=[0.4, 0.1, 0.2, 0.3, 0.5])
    assert timing.median == 0.3 and timing.images_per_second == pytest.approx(8 / 0.3)
    assert timing.percentile(50) == 0.3 and timing.percentile(90) == 0.5 and timing.percentile(0) == 0.1


def test_model_key_depends_on_structure_not_weights():
    a, b = cnnzoo.create_model("resnet20"), cnnzoo.create_model("resnet20")
    assert model_key(a) == model_key(b)
    assert model_key(a) != model_key(cnnzoo.create_model("resnet32"))


def fake_timings(seconds: dict[str, float]):
    def measure(calls, batch, rounds=5, warmup=1):
        return {label: Timing(label, batch, [seconds[label]] * rounds) for label in calls}
    return measure


def test_choose_fastest_measures_once_then_remembers(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(timing, "time_alternating", fake_timings({"slow": 0.3, "fast": 0.1}))
    built = []
    candidates = {name: (lambda name=name: built.append(name) or (lambda x: x)) for name in ("slow", "fast")}
    model, example = cnnzoo.create_model("resnet20"), torch.zeros(2, 3, 32, 32)
    first = choose_fastest(model, (2, 3, 32, 32), "fp32", candidates, example)
    assert first.label == "fast" and not first.from_cache and first.runner is not None and built == ["slow", "fast"]
    saved = json.loads((tmp_path / "runtimes.json").read_text())
    assert [entry["choice"] for entry in saved.values()] == ["fast"]
    again = choose_fastest(model, (2, 3, 32, 32), "fp32", candidates, example)
    assert again.label == "fast" and again.from_cache and built == ["slow", "fast"]  # nothing built again
    other_shape = choose_fastest(model, (4, 3, 32, 32), "fp32", candidates, example)
    assert not other_shape.from_cache


def test_compile_runner_auto_keeps_the_fastest_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(deploy_compile, "candidate_runtimes", lambda precision: ["torch", "onnxruntime"])
    monkeypatch.setattr(timing, "time_alternating", fake_timings({"torch": 0.2, "onnxruntime": 0.05}))
    lines = []
    runner = compile_runner(seeded("resnet20", num_classes=10, in_chans=1), (1, 28, 28), "auto", log=lines.append)
    assert runner.runtime == "onnxruntime" and runner.report.seconds == {"torch": 0.2, "onnxruntime": 0.05}
    assert lines == [runner.report.choice_line()] and "runtime auto: onnxruntime fp32" in lines[0]
    assert runner.report.max_abs_diff <= runner.report.tolerance


def test_a_runner_that_disagrees_is_refused(monkeypatch):
    model = seeded("resnet20", num_classes=10, in_chans=1)

    class Wrong(runners_module.TorchRunner):
        def run(self, batch):
            return super().run(batch) + 1.0

    monkeypatch.setattr(deploy_compile, "build_runner", lambda m, rt, size, prec, **kw: Wrong(m, size, prec, False))
    with pytest.raises(ValueError, match="disagrees with the eager model by up to 1"):
        compile_runner(model, (1, 28, 28), "torch")
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        compile_runner(model, (1, 28, 28), "tvm")
    with pytest.raises(ValueError, match="batch size must be a positive integer"):
        compile_runner(model, (1, 28, 28), "torch", batch=0)


# ------------------------------------------------------------------- exports that describe themselves

def test_uint8_input_divides_by_255_and_normalizes():
    from cnnzoo.deploy.preprocess import Uint8Input

    model = seeded("resnet20", num_classes=3)
    wrapped = Uint8Input(model, (0.4, 0.5, 0.6), (0.2, 0.25, 0.5)).eval()
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(images), model(((images.double() / 255 - mean) / std).float()))
    with pytest.raises(ValueError, match="takes uint8 images"):
        wrapped(images.float())
    with pytest.raises(ValueError, match="std must be positive"):
        Uint8Input(model, (0.5,), (0.0,))


def test_onnx_metadata_is_added_and_replaced():
    import onnx

    from cnnzoo.deploy.onnx import to_onnx, with_metadata

    data, _ = to_onnx(nn.Conv2d(1, 1, 1).eval(), torch.randn(1, 1, 4, 4), exporter="legacy")
    first = with_metadata(data, {"task": "classification", "mean": "[0.5]"})
    second = with_metadata(first, {"mean": "[0.25]"})
    props = {entry.key: entry.value for entry in onnx.load_model_from_string(second).metadata_props}
    assert props == {"task": "classification", "mean": "[0.25]"}


def test_to_onnx_leaves_the_height_and_width_free_on_request():
    import onnx

    from cnnzoo.deploy.onnx import to_onnx

    data, _ = to_onnx(nn.Conv2d(1, 2, 3, padding=1).eval(), torch.randn(1, 1, 8, 8), exporter="legacy",
                      dynamic_size=True)
    dims = onnx.load_model_from_string(data).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 1, "height", "width"]


@pytest.mark.skipif("openvino" not in RUNTIMES_HERE, reason="openvino is not installed")
def test_openvino_runner_compiles_each_input_shape():
    model = seeded("unet", num_classes=2, in_chans=1, base_width=4, depth=2, padding=True)
    from cnnzoo.deploy.onnx import to_onnx

    data, _ = to_onnx(model, torch.randn(2, 1, 16, 16), dynamic_batch=True, dynamic_size=True)
    runner = runners_module.OpenVinoRunner(model, (1, 16, 16), "fp32", data)
    for shape in [(1, 1, 16, 16), (3, 1, 24, 32)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(runner(x), model(x), atol=1e-4, rtol=1e-4)
    assert sorted(runner.compiled) == [(1, 1, 16, 16), (3, 1, 24, 32)]
