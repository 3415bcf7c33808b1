"""The contract every semantic segmenter in the zoo keeps.

A segmenter takes ``num_classes`` and ``in_chans`` and maps an ``N x in_chans x H x W``
batch to ``N x num_classes x H' x W'`` logits (one score per class and pixel). Most
segmenters give ``H' x W' = H x W``; the paper's U-Net uses unpadded ("valid")
convolutions, so its output is the centre of its input (572 -> 388): ``output_size`` says
which, and training code crops the target to it with
:func:`cnnzoo.layers.spatial.center_crop`.

A size the network cannot take raises a ``ValueError`` that names the nearest sizes that
work, before any layer fails with a shape error of its own.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.models._base import PretrainedMixin, check_image_batch, check_positive_int

__all__ = ["Segmenter"]


class Segmenter(PretrainedMixin, nn.Module):
    """Base class of the zoo's segmenters.

    ``__init__(num_classes, in_chans)`` checks and stores both. Subclasses set
    ``self.min_input_size`` and implement ``forward``; those that cannot take every size
    override ``check_size`` (raise ``ValueError`` naming the nearest sizes that work), and
    those whose output is smaller than their input override ``output_size``.
    ``save_pretrained`` / ``from_pretrained``: :class:`~cnnzoo.models._base.PretrainedMixin`.
    """

    in_chans: int
    num_classes: int
    min_input_size: int

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_chans", in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the logits for an ``height x width`` input (the input's own size
        unless the network crops)."""
        return height, width

    def check_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` for a size the network cannot take (every size, here)."""

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, self.min_input_size, type(self).__name__)
        self.check_size(*x.shape[-2:])
