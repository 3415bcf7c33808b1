"""Checkpoints: safetensors weights plus a JSON sidecar, never a pickle.

A checkpoint ``NAME`` is up to three files in one folder:

- ``NAME.safetensors``: the model's ``state_dict``;
- ``NAME.optim.safetensors`` (``last`` only): every tensor of the training state
  (optimizer moments, grad-scaler scale, the torch / CUDA random-generator states);
- ``NAME.json``: everything else, readable by a person: epoch, step, metrics, the resolved
  config, what is needed to rebuild the model (name, options, classes, channels) and to
  feed it (mean, std, image size), and the training state's structure, in which each
  tensor is a ``{"__tensor__": KEY}`` reference into ``NAME.optim.safetensors``.

The files are written as one commit (:func:`cnnzoo.utils.atomic.write_files_atomically`):
temporary files, then a journal, then the renames; a save interrupted after its journal is
finished by the next reader, one interrupted before leaves the previous checkpoint whole. A
training run commits its ``best``, its ``last`` and ``metrics.csv`` together
(:func:`checkpoint_payloads`). Each file also carries the same random ``checkpoint_id`` (the
safetensors files in their metadata), so files mixed by hand are recognized on load instead
of silently mixing two epochs.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.registry import create_model, data_options
from cnnzoo.utils.atomic import finish_interrupted_commits, write_files_atomically
from cnnzoo.utils.text import first_line

__all__ = [
    "FORMAT",
    "Trained",
    "checkpoint_paths",
    "checkpoint_payloads",
    "load_trained",
    "load_training_state",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "unwrap_model",
]

FORMAT = "cnnzoo-checkpoint/1"


@dataclass
class Trained:
    """A trained model, in eval mode, and what is known about it (its :class:`RunMeta`)."""

    model: nn.Module
    meta: RunMeta


def checkpoint_paths(stem: str | Path) -> dict[str, Path]:
    """The files of checkpoint ``stem`` (``run/best`` -> ``run/best.safetensors``, ...)."""
    stem = Path(stem)
    return {
        "weights": stem.with_name(stem.name + ".safetensors"),
        "optim": stem.with_name(stem.name + ".optim.safetensors"),
        "sidecar": stem.with_name(stem.name + ".json"),
    }


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_checkpoint(
    stem: str | Path,
    model: nn.Module,
    meta: RunMeta | Mapping[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``stem`` (e.g. ``run_dir / "last"``) atomically; returns the weights' path.

    ``meta``: the run's :class:`RunMeta`, or a mapping of its fields (which must hold
    :data:`~cnnzoo.engine.runmeta.REQUIRED_KEYS`). ``training_state`` (any nesting of dicts,
    lists, tuples, numbers, strings, NumPy arrays and tensors: optimizer, scheduler and
    grad-scaler ``state_dict()``, RNG states, the sampler position) makes it resumable.
    """
    paths = checkpoint_paths(stem)
    if not paths["weights"].parent.is_dir():
        raise FileNotFoundError(f"checkpoint folder does not exist: {paths['weights'].parent}")
    write_files_atomically(checkpoint_payloads(stem, model, meta, training_state))
    return paths["weights"]


def checkpoint_payloads(
    stem: str | Path,
    model: nn.Module,
    meta: RunMeta | Mapping[str, Any],
    training_state: dict[str, Any] | None = None,
) -> dict[Path, bytes]:
    """The files of checkpoint ``stem`` as bytes, sidecar last (the arguments of
    :func:`save_checkpoint`): for a caller that commits them with other files in one step."""
    if not isinstance(meta, RunMeta):
        meta = RunMeta.from_dict(meta)
    paths = checkpoint_paths(stem)
    checkpoint_id = uuid.uuid4().hex
    file_metadata = {"format": FORMAT, "checkpoint_id": checkpoint_id}
    weights = {
        name: tensor.detach().to("cpu").clone().contiguous()
        for name, tensor in unwrap_model(model).state_dict().items()
    }
    payloads = {paths["weights"]: save_safetensors_bytes(weights, metadata=file_metadata)}
    sidecar = {"format": FORMAT, "checkpoint_id": checkpoint_id, **meta.to_dict()}
    sidecar["files"] = {"weights": paths["weights"].name, "optim": None}
    sidecar["training_state"] = None
    if training_state is not None:
        tensors: dict[str, torch.Tensor] = {}
        sidecar["training_state"] = _encode(training_state, tensors, "state")
        sidecar["files"]["optim"] = paths["optim"].name
        payloads[paths["optim"]] = save_safetensors_bytes(tensors, metadata=file_metadata)
    payloads[paths["sidecar"]] = (json.dumps(sidecar, indent=1, allow_nan=False) + "\n").encode()
    return payloads


def _resolve(path: str | Path, which: str) -> dict[str, Path]:
    path = Path(path)
    if path.is_dir():
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        stem = path / which
    elif path.name.endswith(".optim.safetensors"):
        stem = path.with_name(path.name[: -len(".optim.safetensors")])
    elif path.suffix in (".safetensors", ".json"):
        stem = path.with_suffix("")
    else:
        raise FileNotFoundError(f"no checkpoint at {path}: give a run directory or a .safetensors file")
    paths = checkpoint_paths(stem)
    if stem.parent.is_dir():
        finish_interrupted_commits(stem.parent)  # a save killed half-way is completed first
    for kind in ("weights", "sidecar"):
        if paths[kind].exists() and not paths[kind].is_file():
            raise ValueError(f"checkpoint file {paths[kind]} is not a file (a folder?); a checkpoint is two files")
        if paths[kind].is_file() and not os.access(paths[kind], os.R_OK):
            raise PermissionError(f"checkpoint file {paths[kind]} is not readable (permission denied)")
        if not paths[kind].is_file():
            hint = " (a run directory holds best.safetensors and last.safetensors once an epoch has ended)"
            raise FileNotFoundError(f"checkpoint file not found: {paths[kind]}{hint}")
    return paths


def read_checkpoint(path: str | Path, which: str = "best") -> tuple[dict[str, torch.Tensor], RunMeta]:
    """The weights (a ``state_dict`` on the CPU) and the :class:`RunMeta` of a checkpoint,
    after checking that the two files belong together."""
    paths = _resolve(path, which)
    weights, sidecar = _read_pair(paths)
    try:
        return weights, RunMeta.from_dict(sidecar)
    except (TypeError, ValueError) as err:  # a hand-edited or damaged sidecar
        raise ValueError(f"{paths['sidecar']} is not a usable cnnzoo checkpoint sidecar: {err}") from None


def _read_pair(paths: dict[str, Path]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and the raw sidecar of a checkpoint, checked to come from one save."""
    try:
        sidecar = json.loads(paths["sidecar"].read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint sidecar {paths['sidecar']} is not valid JSON: {err}") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise ValueError(f"{paths['sidecar']} is not a cnnzoo checkpoint sidecar (format {FORMAT})")
    weights, file_metadata = _read_safetensors(paths["weights"])
    if file_metadata.get("checkpoint_id") != sidecar.get("checkpoint_id"):
        raise ValueError(
            f"{paths['weights']} and {paths['sidecar']} come from different saves "
            "(files copied or replaced by hand?); use the other checkpoint of the run"
        )
    return weights, sidecar


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_safetensors_bytes(path.read_bytes()), metadata
    except (OSError, SafetensorError) as err:  # a truncated or foreign file
        raise ValueError(f"cannot read {path}: {err}") from None


def load_weights(
    model: nn.Module,
    model_name: str,
    path: str | Path,
    which: str = "last",
) -> RunMeta:
    """Load a checkpoint's weights into ``model`` (registered as ``model_name``); returns
    its :class:`RunMeta`. A checkpoint of another architecture, or of the same one built with other
    options, raises ``ValueError`` naming both."""
    weights, meta = read_checkpoint(path, which)
    saved = meta.model
    if saved != model_name:
        raise ValueError(
            f"checkpoint {path} holds a {saved!r} model; it cannot be loaded into {model_name!r}"
        )
    target = unwrap_model(model)
    try:
        target.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        # torch's first line says "Error(s) in loading state_dict"; the second says which.
        lines = str(err).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else first_line(err)
        raise ValueError(
            f"checkpoint {path} ({saved} with options {meta.model_kwargs}) does not fit "
            f"this {model_name} model: {detail}"
        ) from None
    return meta


def load_trained(path: str | Path, which: str = "best", map_location: str | torch.device = "cpu") -> Trained:
    """Rebuild a trained model from a run directory (its ``best`` or ``last`` checkpoint)
    or a ``.safetensors`` file with its ``.json`` sidecar beside it."""
    _, meta = read_checkpoint(path, which)
    model = create_model(
        meta.model, **data_options(meta.model, meta.num_classes, meta.in_chans),
        **{k: v for k, v in meta.model_kwargs.items() if k not in ("num_classes", "in_chans")},
    )
    load_weights(model, meta.model, path, which)
    model.to(map_location).eval()
    return Trained(model=model, meta=meta)


def load_training_state(path: str | Path, which: str = "last") -> dict[str, Any]:
    """The training state saved with a checkpoint (tensors restored from
    ``NAME.optim.safetensors``); ``ValueError`` if the checkpoint has none."""
    paths = _resolve(path, which)
    _, sidecar = _read_pair(paths)
    if sidecar.get("training_state") is None:
        raise ValueError(f"checkpoint {paths['weights']} holds no training state; resume from a `last` checkpoint")
    if not paths["optim"].is_file():
        raise FileNotFoundError(f"checkpoint file not found: {paths['optim']}")
    tensors, file_metadata = _read_safetensors(paths["optim"])
    if file_metadata.get("checkpoint_id") != sidecar["checkpoint_id"]:
        raise ValueError(
            f"{paths['optim']} and {paths['sidecar']} come from different saves (files copied or replaced by hand?)"
        )
    return _decode(sidecar["training_state"], tensors)


# --- a JSON + tensors encoding of nested state (optimizer state dicts have int keys, RNG
# states hold tuples and NumPy arrays, a grad scaler's scale may be a tensor) ---

def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return _encode(value.item(), tensors, key)
    if isinstance(value, dict):
        return {"__items__": [[_encode(k, tensors, f"{key}.k{i}"), _encode(v, tensors, f"{key}.{i}")]
                              for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint's training state ({key})")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=value["dtype"])
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    raise ValueError(f"unreadable training state entry {value!r}")
