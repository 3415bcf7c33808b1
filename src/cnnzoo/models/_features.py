"""A classifier's stage maps as a module of their own: timm's ``features_only``.

``cnnzoo.create_model(name, features_only=True, out_indices=(1, 2, 3))`` returns a
:class:`FeatureExtractor`: the classifier without its head, whose ``forward`` gives the
chosen maps of ``forward_features`` (shallow to deep, as the classifier's ``feature_info``
describes them), for a detector's or a segmenter's encoder. Its ``feature_info`` answers
timm's two questions, ``channels()`` and ``reduction()`` (the input-to-map stride).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from cnnzoo.models._base import Classifier, FeatureInfo
from cnnzoo.models.convolutionalize import classifier_body

__all__ = ["FeatureExtractor", "FeatureInfoList", "check_out_indices"]


class FeatureInfoList(list[FeatureInfo]):
    """The :class:`FeatureInfo` of each returned map, with timm's ``feature_info`` methods."""

    def __init__(self, infos: Iterable[FeatureInfo] = ()) -> None:
        super().__init__(infos)

    def channels(self) -> list[int]:
        """Channels of each map."""
        return [info.channels for info in self]

    def reduction(self) -> list[int]:
        """Stride of each map: how many input pixels one map pixel steps over."""
        return [info.stride for info in self]

    def names(self) -> list[str]:
        """The stage each map ends (``layer1``, ``denseblock2``, ...)."""
        return [info.name for info in self]


def check_out_indices(out_indices: Sequence[int] | None, stages: Sequence[FeatureInfo], model: str) -> tuple[int, ...]:
    """``out_indices`` as positions in ``stages`` (every stage for ``None``; a negative index
    counts from the deepest, as in Python), or a ``ValueError`` naming the valid range."""
    count = len(stages)
    if out_indices is None:
        return tuple(range(count))
    indices = tuple(out_indices) if isinstance(out_indices, Sequence) and not isinstance(out_indices, str) else ()
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count for i in indices):
        names = ", ".join(f"{index} {info.name}" for index, info in enumerate(stages))
        raise ValueError(
            f"out_indices must be stage indices from 0 to {count - 1} (or -{count} to -1 from the deepest) "
            f"of {model}'s {count} stages ({names}); got {out_indices!r}"
        )
    return tuple(index % count for index in indices)


class FeatureExtractor(nn.Module):
    """The maps ``out_indices`` of a classifier's ``forward_features`` (timm's ``features_only``).

    Takes ``classifier`` over: its head (``head_children()``) is removed, so the extractor
    holds no parameter its forward does not use (DDP's rule, and less memory). ``body`` is
    the headless classifier; parameter names are its own with a ``body.`` prefix.
    ``feature_info`` describes the returned maps (:class:`FeatureInfoList`), ``out_indices``
    which stages they are.
    """

    def __init__(self, classifier: Classifier, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(classifier, Classifier):
            raise ValueError(f"features_only needs a classifier (forward_features, feature_info); got a {type(classifier).__name__}")
        build = getattr(classifier, "build_config", None)  # the registered name, when it has one
        name = build.name if build is not None else type(classifier).__name__
        self.out_indices = check_out_indices(out_indices, classifier.feature_info, name)
        self.feature_info = FeatureInfoList(classifier.feature_info[index] for index in self.out_indices)
        self.body = classifier_body(classifier, copy_modules=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self.body.forward_features(x)
        return [maps[index] for index in self.out_indices]
