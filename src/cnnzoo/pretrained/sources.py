"""Where weights come from: a published name, a local file, or a cnnzoo run directory.

- **Published names** (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``): torchvision's files,
  looked up in torch.hub's cache (``$TORCH_HOME/hub/checkpoints``, default
  ``~/.cache/torch/hub/checkpoints``) under the exact file name torchvision publishes, the
  SHA-256 prefix in that name checked as ``torch.hub`` checks it; downloaded with torch.hub
  when they are not there and a network is. Offline, one line says which URL to fetch and
  where to put it.
- **Local files**: a ``.safetensors`` file, or a PyTorch ``.pth`` / ``.pt`` / ``.bin`` read
  with ``torch.load(weights_only=True)``: tensors only, no pickled code is ever executed. A
  file whose name is one torchvision publishes gets that entry's metadata.
- **Run directories** of ``cnnzoo train`` (``best.safetensors`` and its ``best.json``), and
  cnnzoo ``.safetensors`` checkpoints with their ``.json`` sidecar: the run's weights and its
  preprocessing and class names.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnzoo.pretrained.catalog import (
    PublishedWeights,
    imagenet_classes,
    is_weights_name,
    published_models,
    published_weights,
)
from cnnzoo.utils.text import first_line

__all__ = ["DOWNLOAD_TIMEOUT_SECONDS", "Weights", "hub_checkpoints_dir", "read_weights"]

PYTORCH_SUFFIXES = (".pth", ".pt", ".bin")
DOWNLOAD_TIMEOUT_SECONDS = 30  # per network operation: an offline machine answers at once or never


@dataclass
class Weights:
    """Tensors to load (in the file's own key layout) and what is known of them: the
    preprocessing their model was trained with (``None`` where unknown), the class names of
    their head and where they come from."""

    state_dict: dict[str, torch.Tensor]
    description: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize_size: int | None = None
    crop_size: int | None = None
    interpolation: str = "bilinear"
    class_names: list[str] | None = None
    source: str = ""


def hub_checkpoints_dir() -> Path:
    """torch.hub's cache of weight files (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_weights(spec: str | os.PathLike, model: str) -> Weights:
    """The weights ``spec`` names for registered model ``model`` (see the module docstring).

    Raises ``FileNotFoundError`` for a path that does not exist or published weights that
    are neither cached nor downloadable, and ``ValueError`` for a file that is not a plain
    state dict, a cached file whose hash does not match, or a name ``model`` has no
    published weights under (the message lists those it has).
    """
    path = Path(spec)
    if path.is_dir():
        return _from_run(path)
    if path.is_file():
        return _from_file(path, model)
    text = str(spec)
    if is_weights_name(text):
        return _from_published(_published(model, text))
    raise FileNotFoundError(f"no weights file, run directory or published weights named {text!r} "
                            f"({_published_names(model)})")


# ------------------------------------------------------------------------- published

def _published(model: str, name: str) -> PublishedWeights:
    entries = published_weights(model)
    if name not in entries:
        raise ValueError(f"{model} has no published weights {name!r} ({_published_names(model)})")
    return entries[name]


def _published_names(model: str) -> str:
    names = list(published_weights(model))
    if names:
        return f"torchvision publishes {', '.join(names)} for {model}"
    return f"torchvision publishes no weights for {model}; it does for {', '.join(published_models())}"


def _from_published(entry: PublishedWeights) -> Weights:
    path = hub_checkpoints_dir() / entry.file_name
    if not path.is_file():
        _download(entry, path)
    _check_hash(path, entry)
    return _with_published_meta(_load_pytorch(path), entry, f"torchvision {entry.model} {entry.name}")


def _with_published_meta(state_dict: dict[str, torch.Tensor], entry: PublishedWeights, description: str) -> Weights:
    return Weights(state_dict, description, mean=entry.mean, std=entry.std, resize_size=entry.resize_size,
                   crop_size=entry.crop_size, interpolation=entry.interpolation,
                   class_names=list(imagenet_classes()), source=entry.source)


def _download(entry: PublishedWeights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _network_timeout(DOWNLOAD_TIMEOUT_SECONDS):
            torch.hub.download_url_to_file(entry.url, str(path), hash_prefix=entry.hash_prefix, progress=True)
    except Exception as err:  # no network, a proxy, a partial file: all end the same way for the user
        raise FileNotFoundError(
            f"{entry.model} {entry.name} is not in the torch hub cache and could not be downloaded "
            f"({first_line(err)}): download {entry.url} and put it at {path}"
        ) from None


@contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _check_hash(path: Path, entry: PublishedWeights) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if not actual.startswith(entry.hash_prefix):
        raise ValueError(f"{path} is not the published {entry.model} {entry.name}: its SHA-256 starts "
                         f"{actual[:len(entry.hash_prefix)]}, the name says {entry.hash_prefix} (a damaged or "
                         f"different file); delete it and download {entry.url} again")


# ------------------------------------------------------------------------------ files

def _from_file(path: Path, model: str) -> Weights:
    if path.suffix == ".safetensors":
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            return _from_checkpoint(path, sidecar)
        return Weights(_load_safetensors(path), f"file {path}")
    if path.suffix not in PYTORCH_SUFFIXES:
        raise ValueError(f"cannot read weights from {path}: expected .safetensors, {', '.join(PYTORCH_SUFFIXES)} "
                         "or a run directory")
    state_dict = _load_pytorch(path)
    for entry in published_weights(model).values():
        if entry.file_name == path.name:  # torchvision's own file, copied here by hand
            _check_hash(path, entry)
            return _with_published_meta(state_dict, entry, f"torchvision {model} {entry.name} ({path})")
    return Weights(state_dict, f"file {path}")


def _load_pytorch(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path} is not a plain state dict: torch.load(weights_only=True) refused it "
                         f"({first_line(err)}); cnnzoo never executes pickled code") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"cannot read {path} as PyTorch weights ({first_line(err)}): truncated or not a "
                         "weights file") from None
    return _tensors_of(loaded, path)


def _tensors_of(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``loaded``: itself, or under a ``state_dict`` / ``model`` key (the
    usual training-checkpoint layouts)."""
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise ValueError(f"{path} holds no state dict (a mapping of parameter names to tensors)")
    return dict(loaded)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read {path} as safetensors ({first_line(err)}): truncated or not a "
                         "weights file") from None


# ---------------------------------------------------------------------- cnnzoo runs

def _from_run(folder: Path) -> Weights:
    weights, sidecar = folder / "best.safetensors", folder / "best.json"
    if not weights.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"{folder} is not a cnnzoo run directory (no best.safetensors with best.json)")
    return _from_checkpoint(weights, sidecar, f"run {folder} (best)")


def _from_checkpoint(weights: Path, sidecar: Path, description: str | None = None) -> Weights:
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {sidecar} ({first_line(err)})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{sidecar} is not a cnnzoo checkpoint sidecar")
    resize_size = meta.get("resize_size")
    image_size = meta.get("image_size")
    return Weights(
        _load_safetensors(weights), description or f"checkpoint {weights}",
        mean=_floats(meta.get("mean")), std=_floats(meta.get("std")), resize_size=resize_size,
        crop_size=int(image_size[0]) if resize_size and image_size else None,
        interpolation=meta.get("interpolation", "bilinear"), class_names=meta.get("class_names"),
        source=f"cnnzoo {meta.get('model', 'model')} trained on {meta.get('data', 'its data')}",
    )


def _floats(values: object) -> tuple[float, ...] | None:
    return tuple(float(v) for v in values) if isinstance(values, (list, tuple)) else None

