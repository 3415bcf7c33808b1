"""How fast a run trains: threads, bf16 where it pays, channels-last, and the step timer."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cnnzoo.engine import speed, trainer
from cnnzoo.engine.batches import ModelFeed
from cnnzoo.engine.losses import build_loss
from cnnzoo.engine.trainer import train
from cnnzoo.registry import create_model
from test_engine_train import config_for, train_interrupted_after_epoch_1

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_use_threads_sets_and_restores_the_count():
    before = torch.get_num_threads()
    with speed.use_threads(1) as inside:
        assert inside == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with speed.use_threads(None) as inside:
        assert inside == before
    with pytest.raises(RuntimeError), speed.use_threads(1):
        raise RuntimeError("the count comes back after an error too")
    assert torch.get_num_threads() == before


def test_the_open_choices_of_a_run():
    assert speed.channels_last_choices(CPU) == [True, False] and speed.channels_last_choices(GPU) == [False]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_probed_only_on_a_cpu_without_it(monkeypatch, native):
    monkeypatch.setattr(speed, "has_native_bf16", lambda: native)
    assert speed.bf16_needs_probe(CPU, "bf16") is not native
    assert not speed.bf16_needs_probe(CPU, "none") and not speed.bf16_needs_probe(GPU, "bf16")
    assert speed.default_amp(CPU) == ("bf16" if native else "none")
    assert speed.precision_choices(CPU, "bf16") == (["bf16"] if native else ["none", "bf16"])
    assert speed.precision_choices(CPU, "none") == ["none"] and speed.precision_choices(GPU, "bf16") == ["bf16"]
    assert speed.default_amp(GPU) == "none"


def test_fastest_thread_count_keeps_the_faster_and_its_best_time():
    before = torch.get_num_threads()
    calls = []

    def measure():  # one thread 1 s then 3 s (a busy moment); all threads 2 s
        calls.append(torch.get_num_threads())
        if torch.get_num_threads() == 1:
            return 1.0 if calls.count(1) == 1 else 3.0
        return 2.0

    try:
        fastest, timings = speed.fastest_thread_count(measure, rounds=2)
        assert fastest == 1 and torch.get_num_threads() == 1
        assert timings[1] == 1.0  # the best of its rounds
    finally:
        torch.set_num_threads(before)
    assert calls == sorted({1, os.cpu_count() or 1}) * 2  # in turn, round after round


def tiny_batch():
    return {"image": torch.rand(4, 1, 16, 16), "target": torch.randint(0, 3, (4,))}


def fake_steps(monkeypatch, seconds):
    """seconds_per_step answers by the setting of the feed the step was built with."""
    built = []
    real = speed.training_step

    def training_step(model, loss_fn, feed, batch, *args, **kwargs):
        built.append((model, feed.amp, feed.channels_last))
        step = real(model, loss_fn, feed, batch, *args, **kwargs)
        step.setting = (feed.amp, feed.channels_last)
        return step

    monkeypatch.setattr(speed, "training_step", training_step)
    monkeypatch.setattr(speed, "seconds_per_step", lambda step, steps=3, warmup=1: seconds[step.setting])
    return built


SETTINGS = [("none", True), ("none", False), ("bf16", True), ("bf16", False)]


def test_the_probe_times_copies_and_leaves_the_model_alone(monkeypatch):
    model = create_model("resnet20", num_classes=3, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    built = fake_steps(monkeypatch, dict(zip(SETTINGS, [0.2, 0.3, 0.5, 0.1])))
    feed = ModelFeed.create([0.5], [0.25], CPU, model)
    loss = build_loss("ce", task="classification", num_classes=3)
    timings = speed.probe_settings(model, loss, feed, tiny_batch(), SETTINGS)
    assert timings == dict(zip(SETTINGS, [0.2, 0.3, 0.5, 0.1]))
    assert [setting for _, *setting in built] == [list(s) for s in SETTINGS]
    assert all(twin is not model for twin, *_ in built)
    def a_conv(module):  # one with several input channels: the memory formats differ
        return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1).weight

    assert a_conv(built[0][0]).is_contiguous(memory_format=torch.channels_last)  # the first copy
    assert a_conv(model).is_contiguous() and not a_conv(model).is_contiguous(memory_format=torch.channels_last)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    warning = speed.slow_bf16_warning(timings)
    assert "float32 channels-last 0.2 s" in warning and "bf16 0.1 s" in warning and "amp: none" in warning


def test_a_slow_first_step_ends_the_probe(monkeypatch):
    monkeypatch.setattr(speed, "PROBE_MAX_STEP_SECONDS", 0.0)
    model = create_model("resnet20", num_classes=3, in_chans=1)
    feed = ModelFeed.create([0.5], [0.25], CPU, model)
    timings = speed.probe_settings(model, build_loss("ce", task="classification", num_classes=3), feed, tiny_batch(),
                                   SETTINGS)
    assert list(timings) == [SETTINGS[0]]


def test_the_choice_is_measured_once_then_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNZOO_CACHE", str(tmp_path))
    model = create_model("resnet20", num_classes=3, in_chans=1)
    feed = ModelFeed.create([0.5], [0.25], CPU, model)
    loss = build_loss("ce", task="classification", num_classes=3)
    built = fake_steps(monkeypatch, dict(zip(SETTINGS, [0.2, 0.3, 0.5, 0.1])))
    first = speed.choose_setting(model, loss, feed, tiny_batch(), SETTINGS)
    assert (first.amp, first.channels_last, first.from_cache) == ("bf16", False, False)
    count = len(built)
    fake_steps(monkeypatch, dict(zip(SETTINGS, [0.1, 0.3, 0.5, 0.9])))  # the machine changed its mind
    again = speed.choose_setting(model, loss, feed, tiny_batch(), SETTINGS)
    assert (again.amp, again.channels_last, again.from_cache) == ("bf16", False, True)
    assert again.timings == first.timings and len(built) == count  # nothing timed
    other_shape = {"image": torch.rand(2, 1, 16, 16), "target": torch.randint(0, 3, (2,))}
    assert not speed.choose_setting(model, loss, feed, other_shape, SETTINGS).from_cache


def test_a_training_step_learns_and_its_timer_counts_seconds():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = build_loss("ce", task="classification", num_classes=3)
    feed = ModelFeed.create([0.5], [0.25], CPU, model)
    batch = tiny_batch()
    step = speed.training_step(model, loss_fn, feed, batch, optimizer)

    def loss_now():
        model.eval()
        with torch.no_grad():
            return float(loss_fn(feed.logits(model, batch["image"]), batch["target"], None))

    first = loss_now()
    model.train()
    for _ in range(5):
        step()
    assert loss_now() < first  # the same batch, five steps: the loss falls
    assert all(p.grad is None for p in model.parameters())  # gradients cleared after each step
    timer = speed.training_step_timer("resnet20", 3, (1, 16, 16), 4, "classification", steps=1)
    assert 0 < timer() < 10


def slow_bf16(*args, **kwargs):
    return speed.SettingChoice("none", True, {("none", True): 0.1, ("bf16", True): 0.3}, from_cache=False)


def test_a_run_without_native_bf16_that_finds_it_slower_trains_in_float32(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(speed, "precision_choices", lambda device, amp: ["none", "bf16"])
    monkeypatch.setattr(trainer, "choose_setting", slow_bf16)
    result = train(config_for(tmp_path, epochs=1, amp="bf16", threads=1))
    assert "warning: --amp bf16 is slower than float32" in capsys.readouterr().err
    recorded = json.loads((result.run_dir / "config.json").read_text())
    assert recorded["amp"] == "none" and recorded["channels_last"] is True and recorded["threads"] == 1


def test_a_run_records_the_measured_memory_format(tmp_path, monkeypatch, capsys):
    seen = []

    def contiguous_wins(model, loss_fn, feed, batch, settings):
        seen.append(settings)
        return speed.SettingChoice("none", False, {("none", True): 0.3, ("none", False): 0.1}, from_cache=False)

    monkeypatch.setattr(trainer, "choose_setting", contiguous_wins)
    result = train(config_for(tmp_path, epochs=1))
    assert seen == [[("none", True), ("none", False)]]
    assert json.loads((result.run_dir / "config.json").read_text())["channels_last"] is False
    assert "speed (measured now, seconds per training step): float32 channels-last 0.3 s, float32 0.1 s" in \
        capsys.readouterr().out


def test_a_run_told_its_memory_format_measures_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "choose_setting", lambda *args: pytest.fail("no probe when nothing is open"))
    result = train(config_for(tmp_path, epochs=1, channels_last=False))
    assert json.loads((result.run_dir / "config.json").read_text())["channels_last"] is False


def test_the_thread_count_of_a_run_is_put_back(tmp_path):
    before = torch.get_num_threads()
    train(config_for(tmp_path, epochs=1, threads=2))
    assert torch.get_num_threads() == before


def test_a_resumed_run_keeps_the_memory_format_it_recorded(tmp_path, monkeypatch):
    def contiguous_wins(model, loss_fn, feed, batch, settings):
        return speed.SettingChoice("none", False, {("none", True): 0.3, ("none", False): 0.1}, from_cache=False)

    monkeypatch.setattr(trainer, "choose_setting", contiguous_wins)
    first = config_for(tmp_path, epochs=2)
    train_interrupted_after_epoch_1(monkeypatch, first)
    monkeypatch.setattr(trainer, "choose_setting", lambda *args: pytest.fail("a resumed run measures nothing"))
    resumed = train(config_for(tmp_path, data=first.data, epochs=2, resume=str(tmp_path / "run"), out=None))
    assert json.loads((resumed.run_dir / "config.json").read_text())["channels_last"] is False
