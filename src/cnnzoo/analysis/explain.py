"""The lecture notes' cost questions, answered with computed numbers (``cnnzoo explain``):
the registry of topics, in lecture order, with their aliases, and :func:`explain`.

The topics' texts live in :mod:`~cnnzoo.analysis.explain_layers` (single layers),
:mod:`~cnnzoo.analysis.explain_networks` (stacks and whole networks) and
:mod:`~cnnzoo.analysis.explain_corrections` (where the notes are wrong or contradict
themselves, quoted from the seed files). Every number printed
is computed when the text is built: by the pure functions of
:mod:`cnnzoo.analysis.formulas`, by :func:`cnnzoo.analysis.summarize` on real
``torch.nn`` modules, or by running those modules (the transposed-convolution and
unpooling examples). Nothing is typed in, so the text cannot drift from the library.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import cnnzoo.analysis.explain_corrections as corrections
import cnnzoo.analysis.explain_layers as layers
import cnnzoo.analysis.explain_networks as networks
from cnnzoo.analysis.explain_corrections import ModelFactory

__all__ = ["explain", "topics"]

# name -> (title, the function building the text), in the order of the lectures
_TOPICS: dict[str, tuple[str, Callable[[], str]]] = {
    "convolution-cost": ("Cost of a convolution layer (seed 001)", layers.convolution_cost),
    "bottleneck": ("1x1 convolution as a bottleneck (seed 001)", layers.bottleneck),
    "convolution-as-sums": ("A convolution is depthwise convolutions summed by 1x1 ones (seed 001)",
                            layers.convolution_as_sums),
    "depthwise-separable": ("Depthwise separable convolution (seeds 000, 001, 004)", layers.depthwise_separable),
    "grouped": ("Grouped convolution (seeds 000, 002, 003)", layers.grouped),
    "depthwise": ("Depthwise convolution (seed 000)", layers.depthwise),
    "dilated": ("Dilated (atrous) convolution (seed 000)", layers.dilated),
    "transposed": ("Transposed convolution (seeds 000, 001, 004)", layers.transposed),
    "unpooling": ("Max unpooling (seed 001)", layers.unpooling),
    "stacked-3x3": ("Stacked 3x3 convolutions, VGG (seed 002)", networks.stacked_3x3),
    "factorized": ("Factorized N x N into 1 x N + N x 1, Inception v2/v3 (seed 002)", layers.factorized),
    "receptive-field": ("Receptive field, through every branch", networks.receptive_field),
    "mobilenet": ("MobileNet: depthwise separable layers and the width multiplier (seed 000)", networks.mobilenet),
    "fcn-head": ("Fully convolutional networks: dense layers as convolutions (seeds 001, 002, 004)", networks.fcn_head),
    "dense-growth": ("DenseNet's growth rate (seeds 003, 004)", networks.dense_growth),
    "residual": ("Residual block: what the skip connection costs (seed 004)", networks.residual),
    "notes": ("Where the notes are wrong or contradict themselves (seeds 000-003)", corrections.notes),
    "pooling-params": ("Correction: max-pooling has no parameters (seed 000)", corrections.pooling_parameters),
    "fcn-pooling": ("Correction: FCN pools and has no dense layers (seed 001)", corrections.fcn_pooling),
    "unet-upconv": ("Contradiction: U-Net's up-convolution (seeds 000, 002, 003)", corrections.unet_upconv),
}
# the topics that count layers of the zoo's models: they take the caller's create_model
_USES_MODELS = {"fcn-pooling", "unet-upconv"}

# other names people look for, including the notes' and the papers' own words
_ALIASES = {
    "cost": "convolution-cost", "conv": "convolution-cost", "convolution": "convolution-cost",
    "1x1": "bottleneck", "1x1-conv": "bottleneck", "pointwise": "bottleneck",
    "separable": "depthwise-separable", "depthwise-separable-conv": "depthwise-separable",
    "group": "grouped", "grouped-conv": "grouped", "group-conv": "grouped",
    "dilation": "dilated", "atrous": "dilated",
    "transpose": "transposed", "deconvolution": "transposed", "transposed-conv": "transposed",
    "unpool": "unpooling", "vgg": "stacked-3x3", "stacked": "stacked-3x3",
    "inception": "factorized", "factorized-conv": "factorized",
    "rf": "receptive-field", "depth-multiplier": "mobilenet", "width-multiplier": "mobilenet",
    "fcn": "fcn-head", "fully-convolutional": "fcn-head", "densenet": "dense-growth",
    "growth-rate": "dense-growth", "resnet": "residual",
    "depthwise-sum": "convolution-as-sums", "sum-of-depthwise": "convolution-as-sums", "ones": "convolution-as-sums",
    "corrections": "notes", "errata": "notes", "pooling": "pooling-params", "max-pooling": "pooling-params",
    "unet": "unet-upconv", "up-convolution": "unet-upconv",
}


def topics() -> list[str]:
    """The topic names :func:`explain` knows, in lecture order."""
    return list(_TOPICS)


def _resolve(topic: str) -> str:
    key = topic.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    if key not in _TOPICS:
        raise ValueError(f"unknown topic {topic!r}; topics: {', '.join(_TOPICS)}")
    return key


def explain(topic: str | None = None, create_model: ModelFactory | None = None) -> str:
    """The formulas and worked examples of ``topic``, every number computed now.

    ``None`` lists the topics; ``"all"`` gives every topic. An unknown topic raises
    ``ValueError`` listing the known ones. ``create_model(name, **options)`` (for example
    :func:`cnnzoo.registry.create_meta_model`, which the CLI passes) lets the topics that
    count the zoo's own models (fcn-pooling, unet-upconv) do so; without it they say how.
    """
    if topic is None:
        width = max(map(len, _TOPICS))
        return "\n".join(["Topics (cnnzoo explain TOPIC):"] + [f"  {name:<{width}}  {title}" for name, (title, _) in _TOPICS.items()])
    if topic.strip().lower() == "all":
        return "\n\n".join(explain(name, create_model) for name in _TOPICS)
    key = _resolve(topic)
    title, build = _TOPICS[key]
    text = build(create_model) if key in _USES_MODELS else build()
    return f"{title}\n{'=' * len(title)}\n{text}"


class _CallableModule(types.ModuleType):
    """``from cnnzoo.analysis import explain`` gives this module; calling it is
    :func:`explain`, so ``explain("grouped")``, ``explain.explain("grouped")`` and
    ``explain.topics()`` all work."""

    def __call__(self, topic: str | None = None, create_model: ModelFactory | None = None) -> str:
        return explain(topic, create_model)


sys.modules[__name__].__class__ = _CallableModule
