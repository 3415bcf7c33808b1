"""U-Net over a classifier: any registered classifier as the contracting path.

Not Ronneberger et al.'s network (:mod:`cnnzoo.models.unet` is), but the design notes'
promise that any classifier can be a segmentation encoder: the classifier's
``forward_features`` maps play U-Net's levels, its deepest map the bridge, and U-Net's
expansive path (upsample, concatenate the skip map, two 3x3 convs) climbs back up them with
padded convolutions, since the classifier pads its own. Built by
``create_model("unet", encoder="resnet18")``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.spatial import mirror_pad
from cnnzoo.layers.unet_blocks import UNetUpBlock, fan_in_normal_init
from cnnzoo.layers.upsample import UP_MODES
from cnnzoo.models._backbone import build_backbone
from cnnzoo.models._base import FeatureInfo, check_choice, check_flag, check_positive_int
from cnnzoo.models._segmenter import Segmenter

__all__ = ["EncoderUNet", "decoder_strides"]


def decoder_strides(encoder: str, stages: list[FeatureInfo], depth: int) -> list[int]:
    """The strides of the ``depth + 1`` deepest stages a decoder of ``depth`` steps reads,
    or a ``ValueError`` when the classifier has too few stages or they are not powers of
    two apart (each step upsamples by one power of two)."""
    if depth > len(stages) - 1:
        raise ValueError(
            f"{encoder} has {len(stages)} stages, so a U-Net over it has depth at most {len(stages) - 1}, got {depth}"
        )
    strides = [info.stride for info in stages[-(depth + 1):]]
    for shallow, deep in zip(strides, strides[1:]):
        factor = deep // shallow
        if deep % shallow or factor & (factor - 1):
            raise ValueError(
                f"{encoder}'s stages are at strides {strides}; the decoder upsamples by powers of two between them"
            )
    return strides


class EncoderUNet(Segmenter):
    """A U-Net whose contracting path is a registered classifier.

    The decoder reads the classifier's ``forward_features`` maps (channels and strides from
    its ``feature_info``): the deepest of the last ``depth + 1`` maps plays the bridge, and
    each of the ``depth`` steps upsamples by the stride ratio to the next shallower map
    (``base_width * 2**level`` channels), concatenates it and applies two padded 3x3 convs.
    A 1x1 conv gives the class scores at the shallowest map's stride, upsampled bilinearly
    to the input size: the output always has the input's size.

    The classifier keeps its own initialization and parameter names (``encoder.layer1...``,
    so its ImageNet weights load with ``model.encoder.load_state_dict(sd, strict=False)``);
    its head (``Classifier.head_children``: the children ``forward_features`` never runs)
    is replaced by ``nn.Identity``. Children: ``encoder``, ``decoder`` (deep to shallow)
    and ``head``.

    ``auto_pad`` mirrors the input (after its last row and column) to a multiple of the
    deepest stride, so that every map is exactly half the next, and crops the logits back.
    """

    def __init__(
        self,
        encoder: str,
        num_classes: int = 2,
        in_chans: int = 3,
        base_width: int = 64,
        depth: int = 4,
        batch_norm: bool = False,
        upsampling: str = "transposed",
        auto_pad: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("base_width", base_width)
        check_positive_int("depth", depth)
        check_flag("batch_norm", batch_norm)
        check_flag("auto_pad", auto_pad)
        check_choice("upsampling", upsampling, UP_MODES)  # before the classifier is built
        backbone = build_backbone(encoder, in_chans, what="encoder")
        stages = backbone.feature_info
        self.strides = decoder_strides(encoder, stages, depth)
        for name in backbone.head_children():
            setattr(backbone, name, nn.Identity())
        self.encoder = backbone
        self.encoder_name, self.depth, self.auto_pad = encoder, depth, auto_pad
        channels = [info.channels for info in stages[-(depth + 1):]]
        widths = [base_width * 2**level for level in range(depth)]
        factors = [deep // shallow for shallow, deep in zip(self.strides, self.strides[1:])]
        self.decoder = nn.ModuleList(
            UNetUpBlock(
                channels[-1] if level == depth - 1 else widths[level + 1], channels[level], widths[level],
                padding=True, batch_norm=batch_norm, upsampling=upsampling, factor=factors[level],
            )
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(base_width, num_classes, kernel_size=1)
        self.min_input_size = self.encoder.min_input_size
        fan_in_normal_init(self.decoder)
        fan_in_normal_init(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        # Python ints: an exporter that traces sizes as tensors would otherwise record this
        # arithmetic in the graph (as in UNet.forward).
        height, width = int(x.shape[-2]), int(x.shape[-1])
        if self.auto_pad:  # mirrored after the input: the stride grid starts at its first pixel
            multiple = self.strides[-1]
            padded_h = (height + multiple - 1) // multiple * multiple
            padded_w = (width + multiple - 1) // multiple * multiple
            x = mirror_pad(x, 0, padded_h - height, 0, padded_w - width)
        maps = self.encoder.forward_features(x)[-(self.depth + 1):]
        y = maps[-1]
        for step, skip in zip(self.decoder, reversed(maps[:-1])):
            y = step(y, skip)
        logits = self.head(y)
        if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
            logits = F.interpolate(logits, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return logits[..., :height, :width]
