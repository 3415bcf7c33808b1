"""The three CNN systems of Volpi and Tuia, "Dense Semantic Labeling of Subdecimeter Resolution
Images With Convolutional Neural Networks" (IEEE TGRS 55(2), 2017; arXiv 1608.00775).

The paper compares three ways of labelling every pixel of an aerial tile (its abstract):
"standard patch classification, prediction of local label patches by employing only
convolutions and full patch labeling by employing deconvolutions", the last ("CNN-FPL") a
"downsample-then-upsample architecture" that "first learns a rough spatial map of high-level
representations by means of convolutions and then learns to upsample them back to the
original resolution by deconvolutions".

**Where the layer tables come from.** The paper's layer tables could not be read for this
module (only its abstract was found, and the lecture notes, seed 004, give only its title),
so the kernel sizes, widths and depths below are cnnzoo's, chosen small enough to train on a
CPU; they follow the three designs as the abstract states them, and no count here is the
paper's (the registry gives no ``params`` for them). ``width`` scales every channel count.

==========================  ============================================  =====================================
system (registered name)    layers (``width`` = w, K classes)             output
==========================  ============================================  =====================================
patch classification        on a 32 x 32 patch, all valid: conv 5x5 w,    the centre pixel's K scores
(``volpi_tuia_pc``)         pool 2, conv 5x5 2w, pool 2, conv 3x3 2w,
                            fc (3x3x2w) -> 4w, fc -> K
local label patches         conv 5x5 w, pool 2, conv 5x5 2w, pool 2,      an 8 x 8 label patch per 8 x 8 block
(``volpi_tuia_spl``)        conv 3x3 4w, pool 2, conv 3x3 4w, 1x1 conv
                            -> 64K, rearranged to 8 x 8 x K
full patch labeling         4 x (conv 3x3, pool 2): w, 2w, 4w, 4w;        every pixel, by learned upsampling
(``volpi_tuia_fpl``,        4 x (transposed conv 4x4 stride 2): 4w, 2w,
"CNN-FPL")                  w, w; 1x1 conv -> K
==========================  ============================================  =====================================

Every conv is followed by batch norm and ReLU (the two fc layers of the patch classifier by
ReLU only, the last by nothing). All three give ``N x K x H x W`` logits at the input's
resolution, for any size of at least 1 x 1 (the local-label and full-labelling nets pad the
input with zeros, bottom and right, to a multiple of their stride and crop the logits back).

The patch classifier is applied densely as the notes' "convolutionalize" says, but at stride
1: its fully connected layer is an ``s x s`` convolution (as in
:mod:`cnnzoo.models.convolutionalize`), and every 2 x 2 / stride-2 pooling becomes a stride-1
pooling after which the later layers are dilated by 2 more (the "a trous" form of a sliding
window), so the logit at pixel ``(i, j)`` is exactly the classifier on the 32 x 32 patch of the
zero-padded image whose pixel ``(16, 16)`` is ``(i, j)`` (in eval mode; a test checks it).
Training it on whole images is training it on every patch of them at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, ConvTransposeNormAct
from cnnzoo.layers.unet_blocks import fan_in_normal_init
from cnnzoo.models._base import check_positive_int
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter

__all__ = ["PATCH_SIZE", "LABEL_PATCH", "PatchClassifier", "VolpiTuiaFPL", "VolpiTuiaPC", "VolpiTuiaSPL"]

PAPER = ("Volpi, Tuia, Dense Semantic Labeling of Subdecimeter Resolution Images With Convolutional Neural "
         "Networks (IEEE TGRS 2017)")
DATASET = "ISPRS Vaihingen and Potsdam (6 classes)"

# Patch classification: (kernel, width multiplier) of each valid conv; a 2x2 pool after the first two.
PC_CONVS = ((5, 1), (5, 2), (3, 2))
PC_POOLED = (True, True, False)
PC_FC = 4  # width multiplier of the hidden fully connected layer
PATCH_SIZE = 32  # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5 -conv3-> 3 (the fc's window)
PC_FC_WINDOW = 3
# Local label patches: (kernel, width multiplier, pool after) of each "same" conv.
SPL_CONVS = ((5, 1, True), (5, 2, True), (3, 4, True), (3, 4, False))
LABEL_PATCH = 8  # the label patch side = the net's stride (three poolings)
# Full patch labeling: down (3x3 conv + pool) and up (4x4 stride-2 transposed conv) width multipliers.
FPL_DOWN = (1, 2, 4, 4)
FPL_UP = (4, 2, 1, 1)


class PatchClassifier(nn.Module):
    """The patch classifier: a ``PATCH_SIZE x PATCH_SIZE`` patch in, its centre pixel's class
    scores out (``N x K``). Children: ``features`` (:class:`ConvNormAct` and ``nn.MaxPool2d``,
    all unpadded) and ``fc`` (two ``nn.Linear``, ReLU between)."""

    def __init__(self, num_classes: int, in_chans: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for (kernel, multiplier), pooled in zip(PC_CONVS, PC_POOLED):
            layers.append(ConvNormAct(channels, width * multiplier, kernel, padding=0))
            channels = width * multiplier
            if pooled:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(channels * PC_FC_WINDOW**2, width * PC_FC), nn.ReLU(inplace=True),
                                nn.Linear(width * PC_FC, num_classes))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if tuple(patches.shape[-2:]) != (PATCH_SIZE, PATCH_SIZE):
            raise ValueError(f"the patch classifier takes {PATCH_SIZE}x{PATCH_SIZE} patches, got "
                             f"{tuple(patches.shape[-2:])}")
        return self.fc(torch.flatten(self.features(patches), 1))

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier on every ``PATCH_SIZE`` window of ``x`` at stride 1 (no padding):
        ``N x K x (H - 31) x (W - 31)``; each pooling of stride 2 becomes one of stride 1 and
        dilates every later layer by 2 more."""
        dilation = 1
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, 2, stride=1, dilation=dilation)
                dilation *= 2
            else:
                conv = layer.conv
                x = layer.act(layer.bn(F.conv2d(x, conv.weight, conv.bias, dilation=dilation)))
        first, relu, last = self.fc
        window = first.weight.reshape(first.out_features, -1, PC_FC_WINDOW, PC_FC_WINDOW)  # fc as a conv
        x = relu(F.conv2d(x, window, first.bias, dilation=dilation))
        return F.conv2d(x, last.weight[:, :, None, None], last.bias)


class VolpiTuiaPC(Segmenter):
    """Patch classification applied densely: :class:`PatchClassifier` (child ``patch_net``)
    run at every pixel of the zero-padded image (15 rows and columns before, 16 after), so
    pixel ``(i, j)`` is classified from the patch whose pixel ``(16, 16)`` it is."""

    def __init__(self, num_classes: int = 6, in_chans: int = 3, width: int = 16) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("width", width)
        self.min_input_size = 1
        self.patch_net = PatchClassifier(num_classes, in_chans, width)
        fan_in_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        before = PATCH_SIZE // 2 - 1
        return self.patch_net.dense(F.pad(x, (before, PATCH_SIZE - 1 - before) * 2))


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded with zeros (bottom and right) to a multiple of ``multiple`` a side."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, -width % multiple, 0, -height % multiple))


class VolpiTuiaSPL(Segmenter):
    """Local label patches by convolutions only: a stride-8 fully convolutional net whose last
    1x1 conv gives, at each position, the ``8 x 8 x K`` scores of the 8 x 8 block under it,
    rearranged in place (``F.pixel_shuffle``: no learned upsampling). Children: ``features``,
    ``classifier``."""

    def __init__(self, num_classes: int = 6, in_chans: int = 3, width: int = 16) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("width", width)
        self.min_input_size = 1
        layers: list[nn.Module] = []
        channels = in_chans
        for kernel, multiplier, pooled in SPL_CONVS:
            layers.append(ConvNormAct(channels, width * multiplier, kernel))
            channels = width * multiplier
            if pooled:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(channels, num_classes * LABEL_PATCH**2, 1)
        fan_in_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        scores = F.pixel_shuffle(self.classifier(self.features(_pad_to_multiple(x, LABEL_PATCH))), LABEL_PATCH)
        return scores[..., :height, :width]


class VolpiTuiaFPL(Segmenter):
    """Full patch labeling ("CNN-FPL"): four conv-pool stages down to stride 16, four 4x4
    stride-2 transposed convs (each with batch norm and ReLU) back to the input's resolution,
    a 1x1 conv to the classes. Children: ``down``, ``up``, ``classifier``."""

    def __init__(self, num_classes: int = 6, in_chans: int = 3, width: int = 16) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("width", width)
        self.min_input_size = 1
        self.stride = 2 ** len(FPL_DOWN)
        down: list[nn.Module] = []
        channels = in_chans
        for multiplier in FPL_DOWN:
            down += [ConvNormAct(channels, width * multiplier, 3), nn.MaxPool2d(2, 2)]
            channels = width * multiplier
        self.down = nn.Sequential(*down)
        up = []
        for multiplier in FPL_UP:
            up.append(ConvTransposeNormAct(channels, width * multiplier, 4, stride=2, padding=1,
                                           norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU))
            channels = width * multiplier
        self.up = nn.Sequential(*up)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        fan_in_normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        height, width = x.shape[-2:]
        return self.classifier(self.up(self.down(_pad_to_multiple(x, self.stride))))[..., :height, :width]


_INFO = {"family": "volpi_tuia", "paper": PAPER, "year": 2017, "task": "segmentation",
         "default_input": (3, 128, 128), "min_input_size": 1, "dataset": DATASET}


@register_model("volpi_tuia_pc", **_INFO)
def volpi_tuia_pc(num_classes: int = 6, in_chans: int = 3, width: int = 16) -> VolpiTuiaPC:
    """Volpi and Tuia's patch classification: a 32x32-patch classifier run at every pixel."""
    return VolpiTuiaPC(num_classes, in_chans, width)


@register_model("volpi_tuia_spl", **_INFO)
def volpi_tuia_spl(num_classes: int = 6, in_chans: int = 3, width: int = 16) -> VolpiTuiaSPL:
    """Volpi and Tuia's local label patches: 8x8 label patches predicted by convolutions only."""
    return VolpiTuiaSPL(num_classes, in_chans, width)


@register_model("volpi_tuia_fpl", **_INFO)
def volpi_tuia_fpl(num_classes: int = 6, in_chans: int = 3, width: int = 16) -> VolpiTuiaFPL:
    """Volpi and Tuia's full patch labeling (CNN-FPL): convolutions down, deconvolutions up."""
    return VolpiTuiaFPL(num_classes, in_chans, width)
