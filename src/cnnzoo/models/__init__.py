"""The model zoo: one file per architecture family, each registering its variants.

Every module in this package is imported here, so a new family file registers itself
without being listed anywhere.
"""

import importlib
import pkgutil

from cnnzoo.models._base import Classifier, FeatureInfo
from cnnzoo.models._register import ModelInfo, register_model

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Classifier", "FeatureInfo", "ModelInfo", "register_model"]
