"""torch.hub entry points: one per registered cnnzoo model.

    import torch
    model = torch.hub.load("/path/to/cnnzoo", "resnet50", source="local", num_classes=10)
    model = torch.hub.load("OWNER/cnnzoo", "resnet50", num_classes=10)    # a GitHub repository
    torch.hub.list("OWNER/cnnzoo")                # every registered name (GitHub only, as torch.hub.help)

Each entry point is ``cnnzoo.create_model(name, **kwargs)``, so every option of the model
(and ``weights=``, ``global_pool=``, ``features_only=``) works, and its help is the
builder's docstring. The entry points are generated from the registry: a new model file
adds its own. A checkout that was never ``pip install``-ed (what torch.hub downloads from
GitHub) imports its own ``src/`` package.
"""

import sys as _sys
from pathlib import Path as _Path

# What torch.hub checks is importable before it runs an entry point (importing cnnzoo needs
# only torch; the rest of its requirements are imported where they are used).
dependencies = ["torch"]

_SOURCE = str(_Path(__file__).resolve().parent / "src")
if _SOURCE not in _sys.path:
    _sys.path.insert(0, _SOURCE)

import cnnzoo as _cnnzoo  # noqa: E402  (after the path above)
from cnnzoo.models._register import find_model as _find_model  # noqa: E402


def _entry_point(name: str):
    """``torch.hub.load(..., name, **kwargs)``: ``cnnzoo.create_model(name, **kwargs)``."""

    def entry_point(**kwargs):
        return _cnnzoo.create_model(name, **kwargs)

    entry_point.__name__ = entry_point.__qualname__ = name
    entry_point.__doc__ = _find_model(name).builder.__doc__
    return entry_point


for _name in _cnnzoo.list_models():
    globals()[_name] = _entry_point(_name)
