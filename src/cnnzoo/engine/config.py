"""The options of one training run: :class:`TrainConfig`, read from flags and config files.

Every field is a ``cnnzoo train`` flag (``batch_size`` is ``--batch-size``) and a key of a
YAML or JSON config file. :func:`resolve_config` merges the two: a flag given on the
command line wins over the file, the file over the defaults. A few defaults depend on the
task of the model (read from the registry) or on the optimizer; they are filled in by
:func:`resolve_config`, so the resolved config written to a run's ``config.json`` holds
every value the run used:

=================  ====================  ===================================  ================
option             classification        segmentation                         reconstruction
=================  ====================  ===================================  ================
``optimizer``      ``sgd``               ``adamw``                            ``adamw``
``batch_size``     128                   8    (at most; a small data set       64 (at most)
                                         gets less, below)
``lr``             0.1 (sgd), 1e-3 (adamw)
``weight_decay``   5e-4 (sgd), 0.01 (adamw)
``loss``           ``ce``                ``weighted-ce`` when the data set    ``mse``
                                         has per-pixel weights (``cells``),
                                         else ``ce``
=================  ====================  ===================================  ================

A reconstruction model (an auto-encoder, ``conv_autoencoder``) trains on the images of any
data set, each image its own target (:mod:`cnnzoo.data.reconstruction`).

(``loss`` for segmentation is settled by :func:`cnnzoo.engine.losses.choose_loss` once the
trainer has seen the data, and ``batch_size`` by :func:`fit_batch_size`: the task's default,
or less for a small training set, so that an epoch has about 16 steps or more.) Three speed settings are settled by the trainer too
(:mod:`cnnzoo.engine.speed`), and ``config.json`` records what the run used: ``threads``
(``None``: PyTorch's default, all cores), ``amp`` (``bf16`` asked for on a CPU without bf16
instructions becomes ``none`` when a probe finds it slower) and ``channels_last``
(``None``, "auto": measured on the CPU, off on a GPU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnzoo.engine.distributed import check_device_name
from cnnzoo.engine.losses import LOSSES
from cnnzoo.registry import model_info
from cnnzoo.utils.sizes import check_side, parse_input_size
from cnnzoo.utils.text import closest_names

__all__ = [
    "AMP_MODES",
    "AUGMENT_LEVELS",
    "OPTIMIZERS",
    "PROGRESS_MODES",
    "TrainConfig",
    "config_keys",
    "fit_batch_size",
    "config_to_dict",
    "load_config",
    "resolve_config",
]

OPTIMIZERS = ("sgd", "adamw")
# torch.Generator.manual_seed takes at most 2**64 - 1, and epoch e seeds with seed + e.
MAX_SEED = 2**63 - 1
UPPER_BOUNDS = {"epochs": 100_000, "batch_size": 65_536, "accum_steps": 65_536, "workers": 256, "threads": 1024,
                "num_overlays": 256}
AMP_MODES = ("none", "bf16", "fp16")
AUGMENT_LEVELS = ("none", "light", "default", "strong")  # cnnzoo.data.augment.LEVELS (kept here: no kornia import for --help)
PROGRESS_MODES = ("auto", "bar", "log")

TASK_DEFAULTS = {
    "classification": {"optimizer": "sgd", "batch_size": 128, "loss": "ce"},
    "segmentation": {"optimizer": "adamw", "batch_size": 8, "loss": None},
    "reconstruction": {"optimizer": "adamw", "batch_size": 64, "loss": "mse"},
}
OPTIMIZER_DEFAULTS = {
    "sgd": {"lr": 0.1, "weight_decay": 5e-4},
    "adamw": {"lr": 1e-3, "weight_decay": 0.01},
}


@dataclass
class TrainConfig:
    """One training run. ``None`` means "the default for this task / optimizer" (see the
    module docstring) until :func:`resolve_config` fills it in."""

    model: str
    data: str
    data_dir: str | None = None
    out: str | None = None  # the run directory; default runs/MODEL-DATA-TIMESTAMP
    resume: str | None = None  # a run directory to continue from its `last` checkpoint
    epochs: int = 10
    batch_size: int | None = None  # per process (per GPU under torchrun)
    lr: float | None = None  # peak learning rate, reached at the end of the warm-up
    optimizer: str | None = None
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    nesterov: bool = False
    weight_decay: float | None = None  # never applied to norm layers nor to biases
    warmup_epochs: float = 0.0  # linear warm-up, then cosine decay to 0, per step
    label_smoothing: float = 0.0
    loss: str | None = None
    clip_grad: float | None = None  # max global gradient norm
    amp: str = "none"  # mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with a grad scaler)
    channels_last: bool | None = None  # None ("auto"): measured on the CPU (engine.speed), off on a GPU
    compile: bool = False  # torch.compile the model
    accum_steps: int = 1  # gradient accumulation: one optimizer step per N batches
    workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    threads: int | None = None  # PyTorch's intra-op threads (None: PyTorch's default, all cores)
    seed: int = 0
    device: str = "auto"  # auto = cuda when available, else cpu
    image_size: tuple[int, int] | None = None  # data set's own size unless given
    train_size: int | None = None  # built-in data sets: number of samples (any size)
    val_size: int | None = None
    augment: str = "default"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # published name, .safetensors / .pth file or run directory (cnnzoo.pretrained)
    freeze: str | None = None  # freeze up to this module ("backbone": all but the head: a linear probe)
    backbone_lr_scale: float = 1.0  # the learning rate of everything but the head, as a fraction of lr
    num_overlays: int = 4  # segmentation: validation images drawn in plots/overlays.png
    progress: str = "auto"  # bar on a terminal, log lines otherwise
    tensorboard: bool | None = None  # TensorBoard events; None: when the package is installed (engine.tensorboard_log)
    time_limit: float | None = None  # seconds from the start; no epoch is begun that would not end in time


def config_keys() -> list[str]:
    """The names of the options, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain JSON types (tuples become lists)."""
    values = dataclasses.asdict(config)
    if values["image_size"] is not None:
        values["image_size"] = list(values["image_size"])
    return values


def load_config(path: str | Path) -> dict[str, Any]:
    """The options in a YAML (``.yaml``/``.yml``) or JSON file, keys normalized
    (``batch-size`` -> ``batch_size``) and checked against :class:`TrainConfig`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from None
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"config file {path} is not valid YAML: {_yaml_problem(err)}") from None
    _check_expansion(values, path)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(values).__name__}")
    return _normalize_keys(values, source=f"config file {path}")


MAX_CONFIG_VALUES = 10_000  # a run's options are a few dozen values; YAML aliases can make billions


def _check_expansion(values: Any, path: Path) -> None:
    """Refuse a config that expands past :data:`MAX_CONFIG_VALUES` values: YAML aliases
    nested in aliases (a "billion laughs" file of a kilobyte) build a structure whose every
    walk, or printing in an error message, would not end."""
    budget = MAX_CONFIG_VALUES
    stack = [values]
    while stack:
        budget -= 1
        if budget < 0:
            raise ValueError(f"config file {path} expands to more than {MAX_CONFIG_VALUES} values "
                             "(aliases nested in aliases?); a run's options are a few dozen")
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def _yaml_problem(err: Exception) -> str:
    """PyYAML's several-line report as one line: the problem and where it is."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "constructor for the tag" in problem:
        problem += "; configs are read with YAML's safe loader, which builds no Python objects"
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def resolve_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> TrainConfig:
    """Merge the options: flags (those not ``None``) win over the file, the file over the
    defaults; check every value and fill in the task and optimizer defaults.

    An unknown key raises ``ValueError`` naming it and the closest valid keys.
    """
    merged = _normalize_keys(file_values, source="config")
    merged.update({k: v for k, v in _normalize_keys(flag_values, source="flags").items() if v is not None})
    for required, flag in (("model", "MODEL"), ("data", "--data NAME_OR_PATH")):
        if not merged.get(required):
            raise ValueError(f"no {required} given: pass {flag} or set {required!r} in the config file")
    values = {key: _check_value(key, value) for key, value in merged.items()}
    config = TrainConfig(**values)
    _fill_defaults(config)
    _check_ranges(config)
    return config


def _normalize_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    keys = config_keys()
    normalized = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in keys:
            close = closest_names(name, keys)  # lr_rate: lr; epoch: epochs; batchsize: batch_size
            hint = f"did you mean {', '.join(close)}?" if close else f"valid keys: {', '.join(keys)}"
            raise ValueError(f"unknown option {key!r} in the {source}; {hint}")
        normalized[name] = value
    return normalized


# The type each option takes: values from YAML / JSON / flags are checked and converted here.
_STRINGS = {"model", "data", "data_dir", "out", "resume", "device", "weights", "freeze"}
_CHOICES = {
    "optimizer": OPTIMIZERS, "amp": AMP_MODES, "augment": AUGMENT_LEVELS, "progress": PROGRESS_MODES,
}
_INTEGERS = {
    "epochs", "batch_size", "accum_steps", "workers", "threads", "seed", "train_size", "val_size", "num_overlays",
}
_FLOATS = {
    "lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "clip_grad", "time_limit", "backbone_lr_scale",
}
_BOOLEANS = {"nesterov", "channels_last", "compile", "tensorboard"}


def _check_value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _STRINGS:
        if not isinstance(value, (str, Path)):
            raise ValueError(f"option {key!r} must be a string, got {value!r}")
        return str(value)
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise ValueError(f"option {key!r} must be one of {', '.join(_CHOICES[key])}; got {value!r}")
        return value
    if key == "loss":
        return _check_loss(value)
    if key in _INTEGERS:
        return _as_int(key, value)
    if key in _FLOATS:
        return _as_float(key, value)
    if key == "channels_last" and isinstance(value, str) and value.lower() == "auto":
        return None  # measured by the trainer (cnnzoo.engine.speed.choose_setting)
    if key in _BOOLEANS:
        return _as_bool(key, value)
    if key == "image_size":
        return _as_image_size(value)
    if key == "model_kwargs":
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
            raise ValueError(f"option 'model_kwargs' must be a mapping of option name to value, got {value!r}")
        return dict(value)
    raise AssertionError(f"option {key!r} has no type check")  # a field added without one


def _check_loss(value: Any) -> str:
    if value not in LOSSES:
        raise ValueError(f"option 'loss' must be one of {', '.join(LOSSES)}; got {value!r}")
    return value


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"option {key!r} must be an integer, got {value!r}")
    return value


def _as_float(key: str, value: Any) -> float:
    # YAML 1.1 reads `1e-3` (no dot) as a string: accept numbers written as text.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"option {key!r} must be a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float (10**400)
        value = math.inf
    if not math.isfinite(value):  # inf / nan would pass the range checks below, or reach config.json
        raise ValueError(f"option {key!r} must be a finite number, got {value}")
    return value


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    if not isinstance(value, bool):
        also = " (or auto)" if key == "channels_last" else ""
        raise ValueError(f"option {key!r} must be true or false{also}, got {value!r}")
    return value


def _as_image_size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        _, height, width = parse_input_size(value, default_channels=1)
        if value.lower().count("x") == 2:
            raise ValueError(f"option 'image_size' is HxW or N (the channels come from the data), got {value!r}")
        return (height, width)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        isinstance(value, (list, tuple)) and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    ):
        return (check_side(value[0], "option 'image_size'"), check_side(value[1], "option 'image_size'"))
    raise ValueError(f"option 'image_size' must be N, HxW or [H, W] with positive integers, got {value!r}")


def _fill_defaults(config: TrainConfig) -> None:
    task = model_info(config.model).task  # an unknown model raises here, naming the closest
    if task not in TASK_DEFAULTS:
        raise ValueError(f"model {config.model!r} is a {task} model; cnnzoo trains {', '.join(TASK_DEFAULTS)} models")
    for key, value in TASK_DEFAULTS[task].items():
        if getattr(config, key) is None and key != "batch_size":  # batch_size: fit_batch_size, on the data
            setattr(config, key, value)
    if task == "classification" and config.loss != "ce":
        raise ValueError(f"a classifier trains with loss 'ce' only, got {config.loss!r}")
    for key, value in OPTIMIZER_DEFAULTS[config.optimizer].items():
        if getattr(config, key) is None:
            setattr(config, key, value)


def fit_batch_size(task: str, train_images: int) -> int:
    """The default batch size of ``task`` for a training split of ``train_images`` (per
    process): the task's default (128 classification, 8 segmentation), or the largest power
    of two up to ``train_images / 16`` when that is smaller (at least 4), so that a
    400-image folder trains 25 steps an epoch rather than 3."""
    default = TASK_DEFAULTS[task]["batch_size"]
    fitting = 1 << max(0, (train_images // 16).bit_length() - 1)
    return max(min(4, default), min(default, fitting))


def _check_ranges(config: TrainConfig) -> None:
    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)

    for key in ("epochs", "batch_size", "accum_steps", "train_size", "val_size", "threads"):
        value = getattr(config, key)
        require(value is None or value >= 1, f"option {key!r} must be at least 1, got {value}")
    for key in ("workers", "num_overlays"):
        require(getattr(config, key) >= 0, f"option {key!r} must be 0 or more, got {getattr(config, key)}")
    for key, most in UPPER_BOUNDS.items():  # far beyond any run, below what overflows or hangs a machine
        value = getattr(config, key)
        require(value is None or value <= most, f"option {key!r} must be at most {most}, got {value}")
    require(0 <= config.seed <= MAX_SEED, f"option 'seed' must be in [0, 2**63 - 1], got {config.seed}")
    require(config.lr > 0, f"option 'lr' must be positive, got {config.lr}")
    require(0 <= config.momentum < 1, f"option 'momentum' must be in [0, 1), got {config.momentum}")
    require(config.weight_decay >= 0, f"option 'weight_decay' must be 0 or more, got {config.weight_decay}")
    require(
        0 <= config.warmup_epochs <= config.epochs,
        f"option 'warmup_epochs' must be between 0 and epochs ({config.epochs}), got {config.warmup_epochs}",
    )
    require(0 <= config.label_smoothing < 1, f"option 'label_smoothing' must be in [0, 1), got {config.label_smoothing}")
    require(0 < config.backbone_lr_scale <= 1 and math.isfinite(config.backbone_lr_scale),
            f"option 'backbone_lr_scale' must be in (0, 1], got {config.backbone_lr_scale}")
    for key in ("clip_grad", "time_limit"):
        value = getattr(config, key)
        require(value is None or value > 0, f"option {key!r} must be positive, got {value}")
    require(
        not (config.nesterov and config.optimizer == "sgd" and config.momentum == 0),
        "nesterov needs a momentum above 0",
    )
    check_device_name(config.device)  # unknown names, and a GPU this machine lacks, before anything is written
