"""cnnzoo: the classic convolutional architectures, their building blocks and their costs."""

from cnnzoo.registry import UnknownModelError, create_model, from_pretrained, list_models, model_info
from cnnzoo.models.convolutionalize import convolutionalize
from cnnzoo.torchvision_compat import load_torchvision_state_dict
from cnnzoo.utils.version import __version__

__all__ = [
    "UnknownModelError",
    "__version__",
    "convolutionalize",
    "create_model",
    "from_pretrained",
    "list_models",
    "load_torchvision_state_dict",
    "model_info",
]
