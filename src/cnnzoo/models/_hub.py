"""Model folders for the Hugging Face Hub: ``save_pretrained`` and ``from_pretrained``,
through huggingface_hub's ``ModelHubMixin``.

A folder (on disk, or a Hub repository) holds:

- ``model.safetensors``: the state dict (no pickle);
- ``config.json``: ``architecture`` (the registered name), ``options`` (what
  ``cnnzoo.create_model`` was given, :class:`~cnnzoo.models._register.BuildConfig`), for a
  classifier its ``head`` as it is now (``num_classes``, ``global_pool``: the head may have
  been reset since), and the weights' ``pretrained_cfg`` (preprocessing, class names) when
  they have one;
- ``README.md``: the model card huggingface_hub writes.

Loading builds the registered model with the options, resets the head to the saved one, and
loads the weights, which must then fit exactly. The module is imported on first use
(:func:`cnnzoo.models._base._hub`): huggingface_hub costs the command line 0.2 s to import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from cnnzoo.models._register import find_model
from cnnzoo.utils.atomic import write_atomically
from cnnzoo.utils.jsonsafe import json_safe
from cnnzoo.utils.text import first_few

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "HubFolder", "folder_config", "from_pretrained", "save_pretrained"]

CONFIG_NAME = constants.CONFIG_NAME  # "config.json"
WEIGHTS_NAME = "model.safetensors"

MODEL_CARD = """
---
{{ card_data }}
---

A cnnzoo model: `{{ architecture }}` ({{ paper }}).

```python
import cnnzoo
model = cnnzoo.from_pretrained("THIS_REPOSITORY_OR_FOLDER")
```
"""


def folder_config(model: nn.Module) -> dict[str, Any]:
    """What ``config.json`` holds for ``model``; ``ValueError`` for a model that did not come
    from ``cnnzoo.create_model`` or whose options are not JSON values."""
    build = getattr(model, "build_config", None)
    if build is None:
        raise ValueError(
            f"cannot save this {type(model).__name__}: its folder records the registered name and options "
            "it was built with, and only cnnzoo.create_model(name, ...) knows them"
        )
    for option, value in build.options.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"cannot save option {option}={value!r} of {build.name}: config.json holds JSON values only") from None
    config: dict[str, Any] = {"architecture": build.name, "options": build.options}
    if hasattr(model, "reset_classifier"):  # a classifier: its head may have been reset since it was built
        config["head"] = {"num_classes": model.num_classes, "global_pool": model.global_pool_type}
    if getattr(model, "pretrained_cfg", None) is not None:
        config["pretrained_cfg"] = json_safe(model.pretrained_cfg)
    return config


def build_from_config(config: dict[str, Any], overrides: dict[str, Any], source: str) -> nn.Module:
    """The model ``config`` describes, with ``overrides`` of its options, not yet loaded."""
    name, options = config.get("architecture"), config.get("options", {})
    if not isinstance(name, str) or not isinstance(options, dict):
        raise ValueError(f"{source}: {CONFIG_NAME} is not a cnnzoo model's (no architecture and options)")
    model = find_model(name).build(**{**options, **overrides})
    head = config.get("head")
    if head is not None:
        lacking = [key for key in ("num_classes", "global_pool") if not isinstance(head, dict) or key not in head]
        if lacking:
            raise ValueError(f"{source}: the head in {CONFIG_NAME} lacks {', '.join(lacking)}")
    if head and head["num_classes"] != model.num_classes:
        model.reset_classifier(head["num_classes"])
    if head and head["global_pool"] not in (None, model.global_pool_type):
        model.set_global_pool(head["global_pool"])
    if config.get("pretrained_cfg") is not None:
        model.pretrained_cfg = config["pretrained_cfg"]
    return model


def load_weights(model: nn.Module, path: str, source: str) -> None:
    """Load the safetensors file ``path`` into ``model``; every tensor must fit."""
    tensors, own = load_file(path), model.state_dict()
    misfits = [key for key, value in own.items() if key not in tensors or tensors[key].shape != value.shape]
    misfits += [key for key in tensors if key not in own]
    if misfits:
        build = model.build_config
        raise ValueError(f"the weights of {source} do not fit {build.name} with {build.options}: {first_few(misfits)}")
    model.load_state_dict(tensors)


class HubFolder(ModelHubMixin, library_name="cnnzoo", tags=["cnnzoo"], model_card_template=MODEL_CARD):
    """A cnnzoo model as huggingface_hub's ``ModelHubMixin`` sees it: ``save_pretrained``
    writes its folder, ``from_pretrained`` reads one back (``.model``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.config = folder_config(model)  # checked before save_pretrained touches the folder

    def _save_pretrained(self, save_directory: Path) -> None:
        tensors = {key: value.detach().to("cpu").clone().contiguous() for key, value in self.model.state_dict().items()}
        payload = safetensors_bytes(tensors, metadata={"format": "pt"})
        write_atomically(save_directory / WEIGHTS_NAME, lambda stream: stream.write(payload))
        text = json.dumps(self.config, indent=2, sort_keys=True, allow_nan=False) + "\n"
        write_atomically(save_directory / CONFIG_NAME, lambda stream: stream.write(text.encode()))

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        info = find_model(self.config["architecture"]).info
        return super().generate_model_card(*args, architecture=info.name, paper=f"{info.paper}, {info.year}", **kwargs)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> HubFolder:
        if config is None:  # ModelHubMixin found no config.json
            raise FileNotFoundError(f"{model_id} has no {CONFIG_NAME}: it is not a folder written by save_pretrained")
        model = build_from_config(config, overrides, model_id)
        if os.path.isdir(model_id):
            path = os.path.join(model_id, WEIGHTS_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{model_id} has no {WEIGHTS_NAME}")
        else:
            path = hf_hub_download(
                model_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir, force_download=force_download,
                local_files_only=local_files_only, token=token,
            )
        load_weights(model, path, model_id)
        return cls(model)


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, **hub_options: Any) -> str | None:
    """Write ``model``'s folder (see the module docstring); ``hub_options`` go to
    ``ModelHubMixin.save_pretrained`` (``push_to_hub=True, repo_id=...`` also uploads it)."""
    return HubFolder(model).save_pretrained(save_directory, **hub_options)


def from_pretrained(path_or_repo_id: str | os.PathLike, **options: Any) -> nn.Module:
    """The model of a folder written by :func:`save_pretrained`: a local folder, or a Hub
    repository id (downloaded into huggingface_hub's cache). ``options`` override saved build
    options; a source that cannot be read ends in one line (``FileNotFoundError``)."""
    source = str(path_or_repo_id)
    try:
        return HubFolder.from_pretrained(source, **options).model
    except HFValidationError:
        raise FileNotFoundError(f"no such folder: {source} (nor is it a Hub repository id, 'namespace/name')") from None
    except LocalEntryNotFoundError:
        hub = "is offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "cannot be reached"
        raise FileNotFoundError(
            f"cannot load {source!r}: it is not a local folder, and the Hugging Face Hub {hub} with no copy in the cache"
        ) from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"{source} on the Hugging Face Hub has no {WEIGHTS_NAME}") from None
