"""SegNet (Badrinarayanan, Kendall, Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017).

Encoder: "topologically identical to the 13 convolutional layers in the VGG16 network"
(five stages of 2, 2, 3, 3, 3 3x3 convs with 64, 128, 256, 512, 512 channels, each conv
followed by batch norm and ReLU), every stage closed by a 2x2 / stride-2 max-pool that
*stores the position of each maximum*. The fully connected layers are dropped, which
leaves the encoder 14,714,688 weights and biases (the paper's "14.7M"; VGG16's 138.4M
less its three fc layers).

Decoder: for each encoder stage, in reverse, "the appropriate decoder ... upsamples its
input feature map(s) using the memorized max-pooling indices from the corresponding
encoder feature map(s). This step produces sparse feature map(s). These feature maps are
then convolved with a trainable decoder filter bank to produce dense feature maps" (section
3), each conv followed by batch norm and ReLU. Upsampling needs no learned weights, and
the indices keep the boundaries the pooling saw. The decoder mirrors the encoder conv for
conv (the reference Caffe model's ``conv5_3_D`` ... ``conv1_2_D``): every stage keeps its
width, except its last conv, which maps to the width of the stage above; the mirror of
``conv1_1`` is the classifier, a 3x3 conv to the classes fed to the soft-max.

==========  =====================  ================  ================================
stage       encoder (3x3 convs)    decoder convs     decoder channels
==========  =====================  ================  ================================
5           512, 512, 512          3                 512 -> 512 -> 512 -> 512
4           512, 512, 512          3                 512 -> 512 -> 512 -> 256
3           256, 256, 256          3                 256 -> 256 -> 256 -> 128
2           128, 128               2                 128 -> 128 -> 64
1           64, 64                 1 + classifier    64 -> 64 -> classes
==========  =====================  ================  ================================

Unpooling is given the size of the map before pooling, so any input size works, odd
ones included (an odd row pooled away comes back as zeros for the convs to fill in), and
the output has the input's size.

``decoder="transposed"`` follows the lecture notes' image generation path instead: the
map is "unpooled to a sparse result that is then filled in via transposed convolution"
(also Noh, Hong, Han's DeconvNet, ICCV 2015): every decoder conv becomes a 3x3 stride-1
transposed conv (same weights count; a stride-1 transposed conv is the convolution with
the kernel flipped and its input and output channels swapped).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, MaxPoolWithIndices
from cnnzoo.layers.unet_blocks import fan_in_normal_init
from cnnzoo.layers.upsample import UnpoolStage
from cnnzoo.models._base import check_choice, check_positive_int
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter

__all__ = ["DECODERS", "SegNet", "VGG16_DEPTHS", "segnet"]

PAPER = "Badrinarayanan, Kendall, Cipolla, SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation"

# VGG16 (configuration D): 3x3 convs per stage, and each stage's width in units of the first.
VGG16_DEPTHS = (2, 2, 3, 3, 3)
WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8)
DECODERS = ("conv", "transposed")


class SegNet(Segmenter):
    """SegNet from VGG16's stage table.

    Layout: ``features`` is laid out exactly as VGG16-BN's (conv, bn, ReLU, ..., pool per
    stage, so ``features.0.weight`` ... ``features.41.running_var`` match ``vgg16_bn``'s and
    torchvision's keys and shapes; :meth:`load_vgg16_bn_encoder` copies them), with
    :class:`~cnnzoo.layers.conv.MaxPoolWithIndices` for the pools; ``decoder`` holds one
    :class:`~cnnzoo.layers.upsample.UnpoolStage` per encoder stage (max-unpooling with the
    encoder's indices, then conv-BN-ReLU layers), deep to shallow, and ``classifier`` the
    final 3x3 conv to the classes.

    Args:
        num_classes, in_chans: output classes (12 for CamVid, the paper's road scenes) and
            input channels.
        base_width: channels of the first stage (64: VGG16); the stages have 1, 2, 4, 8, 8
            times as many.
        depth: number of encoder stages kept (5: all of VGG16's 13 convs); an input needs
            at least ``2**depth`` pixels a side.
        decoder: ``"conv"`` (SegNet) or ``"transposed"`` (unpool, then transposed convs).

    The encoder convs keep their biases (VGG's checkpoints have them); the decoder's, each
    followed by batch norm, have none (a bias before batch norm is cancelled by it).
    Weights: He et al.'s Gaussian, ``std = sqrt(2 / fan_in)`` (the reference Caffe model's
    "msra" filler); the paper also initializes the encoder from VGG16 trained on ImageNet
    (:meth:`load_vgg16_bn_encoder`).
    """

    def __init__(
        self,
        num_classes: int = 12,
        in_chans: int = 3,
        base_width: int = 64,
        depth: int = 5,
        decoder: str = "conv",
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("base_width", base_width)
        check_positive_int("depth", depth)
        if depth > len(VGG16_DEPTHS):
            raise ValueError(f"SegNet's encoder has at most {len(VGG16_DEPTHS)} stages (VGG16's), got depth={depth}")
        check_choice("decoder", decoder, DECODERS)
        self.depth, self.decoder_kind = depth, decoder
        self.min_input_size = 2**depth
        widths = [base_width * multiplier for multiplier in WIDTH_MULTIPLIERS[:depth]]
        convs_per_stage = VGG16_DEPTHS[:depth]

        modules: list[nn.Module] = []
        channels = in_chans
        for convs, width in zip(convs_per_stage, widths):
            for _ in range(convs):
                # Flat conv, bn, ReLU as in vgg16_bn's features.N; the conv keeps its bias as there.
                modules += ConvNormAct(channels, width, 3, padding=1, bias=True)
                channels = width
            modules.append(MaxPoolWithIndices(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)

        stages = []
        for stage in reversed(range(depth)):
            # The stage's convs keep its width; the last maps to the stage above (stage 1's
            # last is the classifier, below).
            out = widths[stage - 1] if stage > 0 else widths[0]
            count = convs_per_stage[stage] if stage > 0 else convs_per_stage[0] - 1
            stage_widths = [widths[stage]] * count + [out]
            stages.append(UnpoolStage(stage_widths, transposed=decoder == "transposed"))
        self.decoder = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(widths[0], num_classes, kernel_size=3, padding=1)
        fan_in_normal_init(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
        """The deepest (pooled) map, and for each pooling its indices and the size it pooled."""
        indices, sizes = [], []
        for layer in self.features:
            if isinstance(layer, MaxPoolWithIndices):
                sizes.append(tuple(x.shape[-2:]))
                x, where = layer(x)
                indices.append(where)
            else:
                x = layer(x)
        return x, indices, sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x, indices, sizes = self.encode(x)
        for stage, where, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            x = stage(x, where, size)
        return self.classifier(x)

    def load_vgg16_bn_encoder(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Initialize the encoder from a VGG16-BN classifier's weights (cnnzoo's ``vgg16_bn``
        or torchvision's: same ``features.N`` keys), e.g. ImageNet-trained ones (the paper
        initializes "from weights trained for classification on large datasets"); the fc
        weights (``classifier.*``) are ignored. The encoder must have VGG16's shapes
        (``base_width=64``; ``in_chans=3`` for RGB weights); a shallower ``depth`` takes the
        first stages. ``ValueError`` names missing or mismatched keys."""
        own = self.features.state_dict()
        missing = [key for key in own if f"features.{key}" not in state_dict]
        if missing:
            raise ValueError(
                f"not a VGG16-BN state dict: {len(missing)} encoder keys are missing, e.g. "
                f"features.{missing[0]} (expected features.0.weight ... features.{next(reversed(own))})"
            )
        wrong = [
            f"features.{key}: {tuple(state_dict[f'features.{key}'].shape)} for {tuple(value.shape)}"
            for key, value in own.items() if tuple(state_dict[f"features.{key}"].shape) != tuple(value.shape)
        ]
        if wrong:
            raise ValueError(
                f"the VGG16-BN weights do not fit this encoder (base_width=64 and in_chans=3 match VGG16): {wrong[0]}"
            )
        self.features.load_state_dict(OrderedDict((key, state_dict[f"features.{key}"]) for key in own))


@register_model(
    "segnet", family="segnet", paper=PAPER, year=2017, task="segmentation", default_input=(3, 360, 480),
    min_input_size=32, dataset="CamVid (11 classes + void)",
)
def segnet(
    num_classes: int = 12,
    in_chans: int = 3,
    base_width: int = 64,
    depth: int = 5,
    decoder: str = "conv",
) -> SegNet:
    """SegNet: VGG16-BN's 13 convs as encoder, a mirrored decoder that unpools with the
    encoder's max-pooling indices (29,446,220 parameters for 12 classes); see :class:`SegNet`."""
    return SegNet(num_classes, in_chans, base_width, depth, decoder)
