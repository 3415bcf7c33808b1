"""The FCN of the lecture notes (seed 004, "FCN"): a backbone's ``x5`` and ``x4`` maps fused,
then five transposed convolutions, each followed by ReLU and batch normalization, then a 1x1
classifier, at the input's resolution.

The notes' listing (the ``forward`` of pochih/FCN-pytorch's ``FCN16s``, on VGG-16)::

    x5 = output['x5']  # size=(N, 512, x.H/32, x.W/32)
    x4 = output['x4']  # size=(N, 512, x.H/16, x.W/16)
    score = self.relu(self.deconv1(x5))
    score = self.bn1(score + x4)
    score = self.bn2(self.relu(self.deconv2(score)))
    ...
    score = self.bn5(self.relu(self.deconv5(score)))
    score = self.classifier(score)  # size=(N, n_class, x.H/1, x.W/1)

Each ``deconvN`` is a 3x3 transposed convolution with stride 2, padding 1 and output padding
1 (so ``H -> 2H`` exactly: ``(H - 1) * 2 - 2 + 3 + 1``), of widths 512, 256, 128, 64, 32
(the listing's source); ``classifier`` is a 1x1 convolution from 32 channels to the classes.
Unlike Long et al.'s FCN-16s, which adds *class scores* (``score_pool4``) to upsampled scores
and upsamples bilinearly, this decoder adds *features* and learns every upsampling.

On any registered classifier with ``feature_info``: ``x5`` is its (last) stride-32 stage and
``x4`` its stride-16 stage. The listing matches channels by giving ``deconv1`` as many outputs
as ``x4`` has channels (512 on VGG); cnnzoo does the same, so on VGG the widths are exactly
the listing's and on another backbone only ``deconv1`` differs (256 for ResNet-18, 1024 for
ResNet-50). The image is zero-padded (bottom, right) to a multiple of 32, so that every stage
is whole, and the logits are cropped back to it.

Costs: a transposed conv does ``C_in * C_out * k * k`` multiply-adds per *input* pixel (each
input value scatters one kernel copy), so ``deconvN`` costs ``C_in C_out 9 H_in W_in`` MACs:
on VGG-16 at 224x224, 512*512*9*7*7 = 115,605,504 for ``deconv1``, 231,211,008 for each of
the others (each halves the channels and quadruples the pixels), 1,040,449,536 for the five.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.models._backbone import build_backbone
from cnnzoo.models._base import Classifier
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.convolutionalize import classifier_body
from cnnzoo.models.fcn_align import COARSEST, check_stage_sizes, pad_to_multiple, stage_taps

__all__ = ["DECONV", "DeconvFCN", "WIDTHS", "fcn_deconv"]

WIDTHS = (512, 256, 128, 64, 32)  # deconv1 ... deconv5 (deconv1's becomes x4's channel count)
DECONV = dict(kernel_size=3, stride=2, padding=1, dilation=1, output_padding=1)  # each doubles H and W
X5, X4 = 32, 16  # the strides of the two maps the decoder reads


class DeconvFCN(Segmenter):
    """The lecture notes' FCN on a classifier: ``bn1(relu1(deconv1(x5)) + x4)``, then
    ``bnN(reluN(deconvN(.)))`` for N = 2 ... 5, then ``classifier``.

    Children: ``backbone`` (the classifier without its head), ``deconv1``, ``relu1``,
    ``bn1``, ..., ``deconv5``, ``relu5``, ``bn5``, ``classifier``.

    Args:
        num_classes: one score map per class.
        in_chans: image channels (ignored when ``backbone`` is a module: its own count).
        backbone: a registered classifier name (built afresh) or a cnnzoo classifier (copied,
            its weights kept). It needs stages at strides 16 and 32 that are exactly
            ``H/16`` and ``H/32`` for inputs that are multiples of 32 (padded convolutions).
    """

    def __init__(self, num_classes: int = 21, in_chans: int = 3, backbone: str | Classifier = "vgg16") -> None:
        super().__init__(num_classes, backbone.in_chans if isinstance(backbone, Classifier) else in_chans)
        classifier = build_backbone(backbone, self.in_chans)
        self._taps = stage_taps(classifier, [X5, X4], "the deconvolution FCN")
        self.backbone = classifier_body(classifier, copy_modules=False)
        check_stage_sizes(self.backbone, self._taps, self.in_chans, "the deconvolution FCN")
        self.min_input_size = 1  # the image is padded to a multiple of 32
        channels = [self.backbone.feature_info[self._taps[X5]].channels]
        widths = (self.backbone.feature_info[self._taps[X4]].channels, *WIDTHS[1:])
        for index, width in enumerate(widths, start=1):
            self.add_module(f"deconv{index}", nn.ConvTranspose2d(channels[-1], width, **DECONV))
            self.add_module(f"relu{index}", nn.ReLU(inplace=True))
            self.add_module(f"bn{index}", nn.BatchNorm2d(width))
            channels.append(width)
        self.classifier = nn.Conv2d(channels[-1], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x num_classes x H x W`` logits for an ``N x in_chans x H x W`` batch."""
        self.check_input(x)
        height, width = x.shape[-2:]
        stages = self.backbone.forward_features(pad_to_multiple(x, COARSEST, self.backbone.min_input_size))
        x5, x4 = stages[self._taps[X5]], stages[self._taps[X4]]
        score = self.bn1(self.relu1(self.deconv1(x5)) + x4)  # the fusion: features, not scores
        score = self.bn2(self.relu2(self.deconv2(score)))
        score = self.bn3(self.relu3(self.deconv3(score)))
        score = self.bn4(self.relu4(self.deconv4(score)))
        score = self.bn5(self.relu5(self.deconv5(score)))
        return self.classifier(score)[..., :height, :width]


@register_model(
    "fcn_deconv", family="fcn", year=2015, task="segmentation",
    paper="Long, Shelhamer and Darrell, Fully Convolutional Networks for Semantic Segmentation "
          "(decoder: the lecture notes' listing, after pochih/FCN-pytorch's FCN16s)",
    default_input=(3, 224, 224), min_input_size=1,
)
def fcn_deconv(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16") -> DeconvFCN:
    """x5 + x4 of any registered classifier, five 3x3 stride-2 transposed convs with ReLU and
    batch norm, a 1x1 classifier (the lecture notes' FCN)."""
    return DeconvFCN(num_classes, in_chans, backbone)
