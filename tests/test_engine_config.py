"""Training options: config files, flags winning over them, defaults, checks."""

from __future__ import annotations

import json

import pytest

from cnnzoo.engine.config import TrainConfig, config_keys, config_to_dict, load_config, resolve_config


def test_flags_win_over_the_file_and_the_file_over_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: resnet20\ndata: fashion-mnist\nepochs: 7\nbatch-size: 32\nlr: 1e-3\nnesterov: true\n")
    config = resolve_config(load_config(path), {"epochs": 3, "lr": None, "model": None})
    assert config.epochs == 3  # flag
    assert config.batch_size == 32  # file (dashes accepted)
    assert config.lr == 0.001  # YAML reads `1e-3` as text: converted
    assert config.nesterov is True
    assert config.momentum == 0.9  # default
    assert config.model == "resnet20"


def test_json_config_files_are_read(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "resnet20", "data": "x", "image_size": [20, 24], "model_kwargs": {"zero_init_residual": True}}))
    config = resolve_config(load_config(path), {})
    assert config.image_size == (20, 24)
    assert config.model_kwargs == {"zero_init_residual": True}


def test_task_and_optimizer_defaults_are_filled_in():
    classifier = resolve_config({}, {"model": "resnet20", "data": "fashion-mnist"})
    assert (classifier.optimizer, classifier.loss) == ("sgd", "ce")
    assert classifier.batch_size is None  # fitted to the training set by the trainer (fit_batch_size)
    assert (classifier.lr, classifier.weight_decay) == (0.1, 5e-4)
    adamw = resolve_config({}, {"model": "resnet20", "data": "x", "optimizer": "adamw"})
    assert (adamw.lr, adamw.weight_decay) == (1e-3, 0.01)


def test_unknown_key_names_the_closest_valid_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: resnet20\ndata: x\nbatch_szie: 8\n")
    with pytest.raises(ValueError, match=r"unknown option 'batch_szie'.*did you mean batch_size"):
        load_config(path)
    with pytest.raises(ValueError, match=r"unknown option 'lerning_rate'"):
        resolve_config({"lerning_rate": 0.1}, {"model": "resnet20", "data": "x"})


@pytest.mark.parametrize("key, first", [("lr_rate", "lr"), ("epoch", "epochs"), ("batchsize", "batch_size"),
                                        ("batch-szie", "batch_size"), ("Epochs_count", "epochs")])
def test_unknown_key_offers_the_key_it_most_likely_meant_first(key, first):
    with pytest.raises(ValueError, match=rf"unknown option '{key}' in the config; did you mean {first}\b"):
        resolve_config({key: 1}, {"model": "resnet20", "data": "x"})


def test_unknown_key_without_a_near_one_lists_the_valid_keys():
    with pytest.raises(ValueError, match=r"unknown option 'zqx' in the flags; valid keys: model, data, ") as info:
        resolve_config({}, {"model": "resnet20", "data": "x", "zqx": 1})
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": 0}, "'epochs' must be at least 1"),
        ({"epochs": "ten"}, "'epochs' must be an integer"),
        ({"epochs": 2.5}, "'epochs' must be an integer"),
        ({"lr": -0.1}, "'lr' must be positive"),
        ({"lr": "fast"}, "'lr' must be a number"),
        ({"momentum": 1.0}, "'momentum' must be in"),
        ({"optimizer": "rmsprop"}, "'optimizer' must be one of sgd, adamw"),
        ({"amp": "fp8"}, "'amp' must be one of"),
        ({"label_smoothing": 1.0}, "'label_smoothing' must be in"),
        ({"warmup_epochs": 20}, "'warmup_epochs' must be between 0 and epochs"),
        ({"accum_steps": 0}, "'accum_steps' must be at least 1"),
        ({"nesterov": "maybe"}, "'nesterov' must be true or false"),
        ({"image_size": "3x28x28"}, "'image_size' is HxW or N"),
        ({"image_size": [0, 4]}, "'image_size' must be N, HxW"),
        ({"model_kwargs": ["a"]}, "'model_kwargs' must be a mapping"),
        ({"device": "tpu:zero"}, "unknown device 'tpu:zero': use auto, cpu, cuda or cuda:N"),
        ({"lr": "inf"}, "'lr' must be a finite number, got inf"),
        ({"lr": float("nan")}, "'lr' must be a finite number, got nan"),
        ({"lr": 10**400}, "'lr' must be a finite number"),
        ({"time_limit": float("inf")}, "'time_limit' must be a finite number"),
        ({"seed": -1}, r"'seed' must be in \[0, 2\*\*63 - 1\]"),
        ({"seed": 2**64}, r"'seed' must be in \[0, 2\*\*63 - 1\]"),
        ({"image_size": [70000, 4]}, "'image_size' must be 1 to 65536 pixels a side"),
        ({"image_size": "70000"}, "a side can be at most 65536 pixels"),
        ({"loss": "focal"}, "'loss' must be one of ce, dice"),
        ({"loss": "dice"}, "a classifier trains with loss 'ce' only"),
        ({"momentum": 0.0, "nesterov": True}, "nesterov needs a momentum above 0"),
        ({"clip_grad": 0}, "'clip_grad' must be positive"),
    ],
)
def test_bad_values_are_rejected_with_the_option_named(values, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(values, {"model": "resnet20", "data": "fashion-mnist"})


def test_model_and_data_are_required_and_the_model_must_exist():
    with pytest.raises(ValueError, match="no model given"):
        resolve_config({}, {"data": "x"})
    with pytest.raises(ValueError, match="no data given"):
        resolve_config({}, {"model": "resnet20"})
    with pytest.raises(ValueError, match="unknown model 'resnet21'; did you mean"):
        resolve_config({}, {"model": "resnet21", "data": "x"})


def test_text_values_from_flags_are_converted():
    config = resolve_config({}, {"model": "resnet20", "data": "x", "image_size": "32x48", "epochs": "4", "compile": "no"})
    assert config.image_size == (32, 48) and config.epochs == 4 and config.compile is False
    assert resolve_config({}, {"model": "resnet20", "data": "x", "image_size": "40"}).image_size == (40, 40)


def test_config_files_that_are_not_mappings_or_are_broken(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.json").write_text("{model: }")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml") == {}


def test_resolved_config_round_trips_through_json():
    config = resolve_config({}, {"model": "resnet20", "data": "x", "image_size": "20x24"})
    values = json.loads(json.dumps(config_to_dict(config)))
    assert resolve_config(values, {}) == config
    assert list(values) == config_keys() == [f for f in TrainConfig.__dataclass_fields__]


def test_augment_levels_are_the_data_packages():
    from cnnzoo.data.augment import LEVELS
    from cnnzoo.engine.config import AUGMENT_LEVELS

    assert AUGMENT_LEVELS == LEVELS


@pytest.mark.parametrize("task, images, batch", [
    ("classification", 60_000, 128), ("classification", 400, 16), ("classification", 4000, 128),
    ("classification", 100, 4), ("classification", 10, 4), ("segmentation", 3000, 8), ("segmentation", 40, 4),
    ("segmentation", 100, 4), ("segmentation", 130, 8),
])
def test_the_default_batch_size_fits_small_training_sets(task, images, batch):
    from cnnzoo.engine.config import fit_batch_size

    assert fit_batch_size(task, images) == batch
    assert images // batch >= 16 or batch == 4  # 16 steps an epoch or more, unless the set is tiny


def test_a_config_whose_aliases_expand_is_refused_at_once(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):  # 9 ** 9 = 387,420,489 strings in 1 KB
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines + ["lr: *i"]) + "\n")
    assert len(path.read_bytes()) < 1500
    with pytest.raises(ValueError, match=r"expands to more than 10000 values \(aliases nested in aliases\?\)"):
        load_config(path)


@pytest.mark.parametrize("text, message", [
    ("epochs: [1, 2\nlr: 0.1\n", r"is not valid YAML: expected ',' or '\]', but got ':' \(line 2, column 3\)"),
    ('lr: !!python/object/apply:os.system ["echo hi"]\n', r"constructor for the tag .*safe loader"),
])
def test_broken_yaml_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)
