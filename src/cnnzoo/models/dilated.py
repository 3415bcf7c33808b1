"""Yu and Koltun's dilated front-end ("Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016, section 4): VGG-16 adapted to dense prediction without
upsampling stages.

"We remove the last two pooling and striding layers entirely", and every later
convolution is dilated by 2 for each removed pooling:

=========  ======================  ========  ======
layers     VGG-16                  dilation  stride
=========  ======================  ========  ======
conv1-3    as VGG, pool1-3 kept    1         8
pool4      removed                 -         8
conv5      3x3                     2         8
pool5      removed                 -         8
fc6        7x7 (a convolution)     4         8
fc7        1x1                     1         8
final      1x1 to the classes      1         8
=========  ======================  ========  ======

Dilating instead of pooling keeps what each unit sees: conv5's 3x3 kernels dilated by 2 on
a stride-8 map read the same pixels as on VGG's stride-16 map, so a trained VGG's weights
still fit (:meth:`DilatedFrontEnd.from_classifier`). The receptive field is 380 pixels,
which is why the authors' code pads each image by (380 - 8) / 2 = 186 pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.context import CONTEXT_WIDTHS, ContextModule
from cnnzoo.layers.upsample import bilinear_transposed_conv
from cnnzoo.models._backbone import CONTEXT_SCORE_STD, build_backbone, fc_convolutions
from cnnzoo.models._base import check_choice
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.vgg import VGG
from cnnzoo.utils.sizes import pair

__all__ = ["DilatedFrontEnd", "dilate_after_pools", "dilated_vgg16"]

PAPER = "Yu and Koltun, Multi-Scale Context Aggregation by Dilated Convolutions"

KEPT_POOLS = 3  # pool1-3: the output stride is 2**3 = 8


def dilate_after_pools(features: nn.Sequential, kept: int) -> int:
    """Replace every max-pool after the first ``kept`` by ``nn.Identity`` (the indices stay,
    and with them VGG's parameter names) and dilate each later 3x3 convolution by 2 per
    removed pooling, padded to stay "same". Returns the dilation reached at the end."""
    pools = [index for index, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    dilation = 1
    for index, layer in enumerate(features):
        if index in pools[kept:]:
            features[index] = nn.Identity()
            dilation *= 2
        elif isinstance(layer, nn.Conv2d) and dilation > 1:
            layer.dilation = (dilation, dilation)
            layer.padding = (dilation, dilation)  # "same" for a dilated 3x3
    return dilation


class DilatedFrontEnd(Segmenter):
    """The front-end: VGG-16 with pool4 and pool5 removed and the later layers dilated (see
    the module docstring). Class scores come out at stride 8 (a 1x1 ``final`` conv on
    fc7), optionally pass a :class:`~cnnzoo.layers.context.ContextModule`, and a x8
    transposed convolution initialized to bilinear interpolation brings them to the image.

    cnnzoo keeps VGG's padded ("same") convolutions and pads fc6 by 12, with the image
    zero-padded to a multiple of 8, where the paper removes the intermediate padding and
    reflects the image instead; outputs have the input's size.

    Children: ``features`` (VGG-16's, same names; pool4 and pool5 replaced by
    ``nn.Identity`` so the indices stay), ``fc`` (``fc6`` ... ``drop7``), ``final``,
    ``context`` (or ``None``), ``upscore``.
    """

    stride = 2**KEPT_POOLS

    def __init__(
        self,
        num_classes: int = 21,
        in_chans: int = 3,
        context: bool = False,
        context_variant: str = "basic",
        dropout: float = 0.5,
        classifier: VGG | None = None,
    ) -> None:
        check_choice("context_variant", context_variant, CONTEXT_WIDTHS)
        super().__init__(num_classes, classifier.in_chans if classifier is not None else in_chans)
        vgg = build_backbone("vgg16" if classifier is None else classifier, self.in_chans)
        if not isinstance(vgg, VGG):
            raise ValueError(f"the dilated front-end is built on VGG, got a {type(vgg).__name__}")
        self.min_input_size = 1  # the image is padded to a multiple of 8
        self.features = vgg.features
        dilation = dilate_after_pools(self.features, KEPT_POOLS)
        kernel = pair(vgg.avgpool.output_size)[0]
        self.fc = fc_convolutions(vgg, padding=(kernel - 1) * dilation // 2, dropout=dropout, dilation=dilation)
        self.final = nn.Conv2d(self.fc.fc7.out_channels, num_classes, kernel_size=1)
        # The authors' front-end starts its score layer at N(0, 0.001^2); a zero start
        # would also block every gradient through a context module's ReLUs.
        nn.init.normal_(self.final.weight, 0.0, CONTEXT_SCORE_STD)
        nn.init.zeros_(self.final.bias)
        self.context = ContextModule(num_classes, context_variant) if context else None
        self.upscore = bilinear_transposed_conv(num_classes, self.stride)

    @classmethod
    def from_classifier(cls, classifier: VGG, num_classes: int = 21, context: bool = False,
                        context_variant: str = "basic", dropout: float = 0.5) -> DilatedFrontEnd:
        """The front-end initialized from a (trained) VGG, which is left unchanged."""
        if not isinstance(classifier, VGG):
            raise ValueError(f"the dilated front-end is built on VGG, got a {type(classifier).__name__}")
        return cls(num_classes, classifier.in_chans, context, context_variant, dropout, classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x num_classes x H x W`` logits."""
        self.check_input(x)
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        score = self.final(self.fc(self.features(F.pad(x, (0, pad_w, 0, pad_h)))))
        if self.context is not None:
            score = self.context(score)
        return self.upscore(score)[..., :height, :width]


@register_model(
    "dilated_vgg16", family="fcn", year=2016, task="segmentation", paper=PAPER,
    default_input=(3, 500, 500), min_input_size=1, dataset="PASCAL VOC 2012 (21 classes)",
)
def dilated_vgg16(num_classes: int = 21, in_chans: int = 3, context: bool = False,
                  context_variant: str = "basic", dropout: float = 0.5) -> DilatedFrontEnd:
    """Yu and Koltun's VGG-16 front-end (output stride 8), optionally with their context module."""
    return DilatedFrontEnd(num_classes, in_chans, context, context_variant, dropout)
