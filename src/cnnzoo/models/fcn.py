"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer and Darrell, "Fully Convolutional Networks
for Semantic Segmentation", CVPR 2015; Shelhamer, Long and Darrell, PAMI 2017).

A classifier made fully convolutional (:mod:`cnnzoo.models.convolutionalize`: fc6 a 7x7
convolution, fc7 a 1x1 one, fc8 dropped), a 1x1 "score" convolution giving one map per
class at stride 32, and learned upsampling back to the image:

* FCN-32s: ``score_fr`` (stride 32), upsampled x32 (``upscore``);
* FCN-16s: ``score_fr`` upsampled x2 (``upscore2``), plus ``score_pool4`` (a 1x1 conv on
  pool4, stride 16), upsampled x16;
* FCN-8s: that sum upsampled x2 again (``upscore_pool4``), plus ``score_pool3`` (stride
  8), upsampled x8.

"Combining fine layers and coarse layers lets the model make local predictions that
respect global structure" (section 4.2). Upsampling layers are transposed convolutions
initialized to bilinear interpolation and learned ("we initialize the 2x upsampling to
bilinear interpolation, but allow the parameters to be learned"; the paper keeps the final
one fixed, section 4.3, which ``upscore.weight.requires_grad_(False)`` reproduces). The
score layers start at zero: "we zero-initialize the class scoring layer" (section 4.3), and
"the new parameters acting on pool4 are zero-initialized so that the net starts with
unmodified predictions" (section 4.2).

Alignment: the paper pads conv1_1 by 100 pixels (so that even small images reach fc6's 7x7
kernel) and crops each map to the next with offsets that follow from the layer geometry
(5 and 9 for the skips, 19 / 27 / 31 for the output of FCN-32s / 16s / 8s). cnnzoo's
default, ``align="same"``, keeps VGG's "same" convolutions, pads fc6 by 3 and pads the
image (bottom and right, with zeros) to a multiple of 32: every map then has exactly
``H/s x W/s`` units centred on the same pixels as the upsampled coarser map, nothing needs
cropping but the padding, and no computation is spent on a 100-pixel frame (at 500x500 the
paper's net computes on 698x698 maps). ``align="paper"`` builds the reference nets
(conv1_1 padding 100, pooling rounding up as Caffe's does, valid fc6, the paper's crops).
Both take any input of at least 1x1 pixel and return logits of the input's size.

``backbone``: "vgg16" is the paper's network, with its parameter names (``features.*`` as
``create_model("vgg16")``, so torchvision VGG-16 weights initialize it through
:meth:`FCN.from_classifier`). Any other registered classifier gives "FCN on the classifier's
``forward_features``": the stage maps at strides 8, 16 and 32 (``feature_info``), a 1x1 score
conv on each, the same fusion and upsampling (the lecture notes' FCN reads the backbone's
``x5`` and ``x4`` maps the same way). VGG-family backbones keep fc6 / fc7; others go
straight from their last stage to the scores.

Parameters of FCN-32s / VGG-16 with 21 classes: 14,714,688 (13 convs) + 102,764,544 (fc6) +
16,781,312 (fc7) + 86,037 (score_fr) = 134,346,581 before upsampling - the paper's "134M"
(Table 1) - plus 1,806,336 in the 64x64 upsampling kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.context import CONTEXT_WIDTHS, ContextModule
from cnnzoo.layers.upsample import bilinear_transposed_conv
from cnnzoo.models._backbone import CONTEXT_SCORE_STD, build_backbone, fc_convolutions
from cnnzoo.models._base import Classifier, check_choice
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.convolutionalize import classifier_body
from cnnzoo.models.vgg import VGG
from cnnzoo.utils.meta import meta_copy
from cnnzoo.utils.sizes import pair

__all__ = ["ALIGNS", "FCN", "Grid", "OUTPUT_STRIDES", "crop_at", "fcn8s", "fcn16s", "fcn32s"]

PAPER = "Long, Shelhamer and Darrell, Fully Convolutional Networks for Semantic Segmentation"

OUTPUT_STRIDES = (32, 16, 8)  # FCN-32s, FCN-16s, FCN-8s
COARSEST = 32  # stride of the score map the decoder starts from
SKIPS = {16: "pool4", 8: "pool3"}  # the skip layers of FCN-16s and FCN-8s, by stride
ALIGNS = ("same", "paper")
Align = Literal["same", "paper"]
PAPER_PADDING = 100  # conv1_1's padding in the reference nets


@dataclass(frozen=True)
class Grid:
    """Where the units of a map sit on the input: unit ``y`` is centred on input pixel
    ``start + jump * y`` (the coordinate maps of Caffe's ``crop``, written for one axis)."""

    jump: float = 1.0
    start: float = 0.0

    def conv(self, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Grid:
        """After a convolution or pooling: output ``y`` reads inputs ``s y - p ... s y - p + k_eff - 1``."""
        span = (kernel - 1) * dilation
        return Grid(self.jump * stride, self.start + (span / 2 - padding) * self.jump)

    def transposed(self, kernel: int, stride: int, padding: int) -> Grid:
        """After a transposed convolution: input ``i`` is spread around output ``s i + (k - 1) / 2 - p``."""
        return Grid(self.jump / stride, self.start + (padding - (kernel - 1) / 2) * self.jump / stride)

    def offset_of(self, reference: Grid) -> int:
        """The index in this map of the unit centred where ``reference``'s unit 0 is: the
        crop offset that aligns this map to ``reference``."""
        offset = (reference.start - self.start) / self.jump
        if self.jump != reference.jump or offset < 0 or offset != int(offset):
            raise ValueError(f"a map on {self} cannot be cropped to one on {reference}")
        return int(offset)


def crop_at(x: torch.Tensor, offset: int, height: int, width: int, what: str) -> torch.Tensor:
    """``x[..., offset : offset + height, offset : offset + width]``, or a ``ValueError``
    naming ``what`` when ``x`` is too small to give it."""
    if x.shape[-2] < offset + height or x.shape[-1] < offset + width:
        raise ValueError(
            f"FCN: the {what} map is {x.shape[-2]}x{x.shape[-1]}, too small for a {height}x{width} "
            f"crop at offset {offset}"
        )
    return x[..., offset : offset + height, offset : offset + width]


class FCN(Segmenter):
    """FCN-32s / 16s / 8s on a classifier (the paper's VGG-16 by default).

    Children, for a VGG backbone: ``features`` (VGG's, same names), ``fc`` (``fc6`` 7x7 conv,
    ``relu6``, ``drop6``, ``fc7`` 1x1 conv, ``relu7``, ``drop7``); for any other: ``backbone``
    (the classifier without its head). Then ``score_fr``, ``score_pool4`` and ``upscore2``
    (16s, 8s), ``score_pool3`` and ``upscore_pool4`` (8s), ``context`` (optional) and
    ``upscore``, the final upsampling.

    Args:
        num_classes: K, one score map per class (21 for PASCAL VOC: 20 classes and background).
        in_chans: image channels (ignored when ``backbone`` is a module: its own count).
        output_stride: 32, 16 or 8 (FCN-32s, 16s, 8s): the stride of the finest score map.
        backbone: a registered classifier name (built afresh), or a classifier (copied, its
            weights kept; see :meth:`from_classifier`). It needs stages at strides 8, 16, 32
            (those the variant reads) whose maps are ``H/s x W/s`` for ``H, W`` multiples of 32.
        context: a :class:`~cnnzoo.layers.context.ContextModule` (K channels) on the finest
            score map before the final upsampling, as Yu and Koltun put theirs after a
            stride-8 front-end (see also :class:`~cnnzoo.models.dilated.DilatedFrontEnd`).
        align: "same" (default) or "paper" (VGG only): see the module docstring.
        dropout: after fc6 and fc7 (0.5 in the paper).
        context_variant: "basic" or "large" (Table 1 of Yu and Koltun).
    """

    def __init__(
        self,
        num_classes: int = 21,
        in_chans: int = 3,
        output_stride: int = 8,
        backbone: str | Classifier = "vgg16",
        context: bool = False,
        align: Align = "same",
        dropout: float = 0.5,
        context_variant: str = "basic",
    ) -> None:
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES} (FCN-32s, 16s, 8s), got {output_stride!r}")
        check_choice("align", align, ALIGNS)
        check_choice("context_variant", context_variant, CONTEXT_WIDTHS)
        super().__init__(num_classes, backbone.in_chans if isinstance(backbone, Classifier) else in_chans)
        classifier = build_backbone(backbone, self.in_chans)
        self.output_stride = output_stride
        self.align = align
        self.min_input_size = 1  # "same" pads to a multiple of 32; "paper" pads conv1_1 by 100
        strides = [s for s in OUTPUT_STRIDES if s >= output_stride]
        if isinstance(classifier, VGG):
            channels, grids = self._take_vgg(classifier, strides, align, dropout)
        else:
            if align == "paper":
                raise ValueError(f"align='paper' is the reference VGG-16 net; {type(classifier).__name__} takes align='same'")
            channels, grids = self._take_backbone(classifier, strides)
        self._build_decoder(num_classes, channels, grids, strides, context, context_variant)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_classifier(
        cls,
        classifier: Classifier,
        num_classes: int = 21,
        output_stride: int = 8,
        context: bool = False,
        align: Align = "same",
        dropout: float = 0.5,
        context_variant: str = "basic",
    ) -> FCN:
        """An FCN initialized from a (trained) classifier, which is left unchanged: its
        feature layers are copied (and its ``in_chans`` kept); for VGG, fc6 / fc7 become
        the 7x7 / 1x1 convolutions and fc8 is discarded ("we decapitate each net by
        discarding the final classifier layer", section 4.1). For torchvision VGG-16 weights::

            vgg = cnnzoo.create_model("vgg16")
            cnnzoo.load_torchvision_state_dict(vgg, torch.load("vgg16.pth", weights_only=True))
            fcn = FCN.from_classifier(vgg, num_classes=21, output_stride=8)
        """
        if not isinstance(classifier, Classifier):
            raise ValueError(f"FCN.from_classifier needs a cnnzoo classifier, got a {type(classifier).__name__}")
        return cls(num_classes, classifier.in_chans, output_stride, classifier, context, align, dropout, context_variant)

    def _take_vgg(self, vgg: VGG, strides: list[int], align: str, dropout: float) -> tuple[dict[int, int], dict[int, Grid]]:
        """Take VGG's features (renaming nothing) and turn fc6 / fc7 into convolutions."""
        self.features = vgg.features
        self.backbone = None
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        if align == "paper":
            first = next(layer for layer in self.features if isinstance(layer, nn.Conv2d))
            first.padding = (PAPER_PADDING, PAPER_PADDING)
            for index in pools:
                self.features[index].ceil_mode = True  # Caffe's pooling rounds up
        stages = {info.stride: (index, info.channels) for info, index in zip(vgg.feature_info, pools)}
        self._taps = {s: stages[s][0] for s in strides}
        channels = {s: stages[s][1] for s in strides}

        kernel = pair(vgg.avgpool.output_size)[0]
        self.fc = fc_convolutions(vgg, padding=kernel // 2 if align == "same" else 0, dropout=dropout)
        channels[COARSEST] = self.fc.fc7.out_channels

        # Where each map's units sit, layer by layer (pooling rounding up moves no unit).
        grids, grid = {}, Grid()
        for index, layer in enumerate(self.features):
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                grid = grid.conv(*(pair(getattr(layer, name))[0] for name in ("kernel_size", "stride", "padding", "dilation")))
            if index in self._taps.values():
                grids[int(grid.jump)] = grid
        grids[COARSEST] = grids[COARSEST].conv(kernel, padding=self.fc.fc6.padding[0])
        return channels, grids

    def _take_backbone(self, classifier: Classifier, strides: list[int]) -> tuple[dict[int, int], dict[int, Grid]]:
        """Take any classifier's body; check that it has the stages the variant reads and
        that they are aligned as FCN's decoder assumes."""
        info = {stage.stride: (index, stage.channels) for index, stage in enumerate(classifier.feature_info)}
        missing = sorted(s for s in strides if s not in info)
        if missing:
            raise ValueError(
                f"FCN needs backbone stages at strides {', '.join(map(str, sorted(strides)))}; "
                f"{type(classifier).__name__} has stages at strides {', '.join(map(str, sorted(info)))} "
                f"(none at {', '.join(map(str, missing))})"
            )
        self.features = None
        self.fc = None
        self.backbone = classifier_body(classifier, copy_modules=False)
        self._taps = {s: info[s][0] for s in strides}
        self._check_alignment(strides)
        # Assumed, as for VGG: unit y of the stride-s map centred on pixels s*y ... s*y + s - 1.
        # (Strided 3x3 convs, as in ResNet, centre it on pixel s*y: a shift of less than one
        # cell of the finer map, which the learned upsampling absorbs.)
        grids = {s: Grid(s, (s - 1) / 2) for s in strides}
        return {s: info[s][1] for s in strides}, grids

    def _check_alignment(self, strides: list[int]) -> None:
        twin = meta_copy(self.backbone).eval()
        first = max(COARSEST, -(-self.backbone.min_input_size // COARSEST) * COARSEST)
        for size in (first, first + COARSEST):
            with torch.no_grad():
                maps = twin.forward_features(torch.zeros(1, self.in_chans, size, size, device="meta"))
            for stride in strides:
                got = tuple(maps[self._taps[stride]].shape[-2:])
                if got != (size // stride, size // stride):
                    raise ValueError(
                        f"FCN needs a backbone whose stride-{stride} map is exactly {size // stride}x{size // stride} "
                        f"for a {size}x{size} input (padded convolutions); {type(self.backbone).__name__} gives "
                        f"{got[0]}x{got[1]} (unpadded convolutions), which FCN's crops cannot align"
                    )

    def _build_decoder(self, num_classes: int, channels: dict[int, int], grids: dict[int, Grid],
                       strides: list[int], context: bool, context_variant: str) -> None:
        padded = self.align == "same"
        self.score_fr = nn.Conv2d(channels[COARSEST], num_classes, kernel_size=1)
        grid = grids[COARSEST]
        self._offsets: dict[int, int] = {}
        ups = {16: "upscore2", 8: "upscore_pool4"}
        for stride in strides[1:]:
            setattr(self, f"score_{SKIPS[stride]}", nn.Conv2d(channels[stride], num_classes, kernel_size=1))
            up = _upsampling(num_classes, 2, padded)
            setattr(self, ups[stride], up)
            grid = grid.transposed(up.kernel_size[0], up.stride[0], up.padding[0])
            self._offsets[stride] = grids[stride].offset_of(grid)
        self.context = ContextModule(num_classes, context_variant) if context else None
        self.upscore = _upsampling(num_classes, self.output_stride, padded)
        grid = grid.transposed(self.upscore.kernel_size[0], self.upscore.stride[0], self.upscore.padding[0])
        self._offsets[1] = grid.offset_of(Grid())
        self._init_scores(context)

    def _init_scores(self, context: bool) -> None:
        # Zero, as in the paper (sections 4.2, 4.3) and the reference Caffe nets. A context
        # module behind them would then see zeros, where every ReLU's gradient is zero: no
        # signal would ever reach them, so they start small instead (std 1e-3, as Yu and
        # Koltun's front-end initializes its class-score layer).
        for name in ("score_fr", "score_pool4", "score_pool3"):
            layer = getattr(self, name, None)
            if layer is not None:
                if context:
                    nn.init.normal_(layer.weight, 0.0, CONTEXT_SCORE_STD)
                else:
                    nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ forward
    @property
    def crop_offsets(self) -> dict[str, int]:
        """The crop offsets (pixels of the cropped map, per axis): ``score_pool4`` and
        ``score_pool3`` to the upsampled map, ``output`` of the final upsampling to the image.
        All 0 with ``align="same"``; the reference Caffe nets' with ``"paper"``."""
        names = {16: "score_pool4", 8: "score_pool3", 1: "output"}
        return {names[stride]: offset for stride, offset in self._offsets.items()}

    def encode(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The maps the decoder reads, by stride: 32 (fc7 for VGG, the last stage
        otherwise), and 16 and 8 where the variant has those skips. With ``align="same"``
        the image is first zero-padded (bottom, right) to a multiple of 32."""
        if self.align == "same":
            x = self._pad(x)
        if self.backbone is not None:
            stages = self.backbone.forward_features(x)
            return {stride: stages[index] for stride, index in self._taps.items()}
        maps, wanted = {}, {index: stride for stride, index in self._taps.items()}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                maps[wanted[index]] = x
        maps[COARSEST] = self.fc(maps[COARSEST])
        return maps

    def decode(self, maps: dict[int, torch.Tensor], height: int, width: int) -> torch.Tensor:
        """Class scores for an ``height x width`` image from :meth:`encode`'s maps: score,
        upsample, add the next skip's scores (cropped to match), ..., upsample to the image."""
        score = self.score_fr(maps[COARSEST])
        if self.output_stride <= 16:
            score = self.upscore2(score)
            score = score + crop_at(self.score_pool4(maps[16]), self._offsets[16], *score.shape[-2:], "score_pool4")
        if self.output_stride == 8:
            score = self.upscore_pool4(score)
            score = score + crop_at(self.score_pool3(maps[8]), self._offsets[8], *score.shape[-2:], "score_pool3")
        if self.context is not None:
            score = self.context(score)
        return crop_at(self.upscore(score), self._offsets[1], height, width, "upscore")

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad the bottom and right to a multiple of 32 (and at least the backbone's minimum)."""
        height, width = x.shape[-2:]
        least = self.backbone.min_input_size if self.backbone is not None else 1
        target_h, target_w = (math.ceil(max(least, n) / COARSEST) * COARSEST for n in (height, width))
        return F.pad(x, (0, target_w - width, 0, target_h - height))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x num_classes x H x W`` logits for an ``N x in_chans x H x W`` batch."""
        self.check_input(x)
        return self.decode(self.encode(x), *x.shape[-2:])

# ====================================================================== helpers

def _upsampling(channels: int, factor: int, padded: bool) -> nn.ConvTranspose2d:
    """Transposed conv (kernel 2f, stride f) initialized to bilinear interpolation; padded by
    f/2 so that it gives exactly ``f`` times its input ("same"), or unpadded as Caffe's."""
    layer = bilinear_transposed_conv(channels, factor)
    if not padded:
        layer.padding = (0, 0)
    return layer


# ====================================================================== registry

def _info(stride: int) -> dict:
    return dict(
        family="fcn", paper=PAPER, year=2015, task="segmentation",
        default_input=(3, 500, 500),  # PASCAL VOC images are at most 500x500
        min_input_size=1, dataset="PASCAL VOC 2011 (21 classes)",
        source=f"FCN-{stride}s: Long et al. 2015; FCN-VGG16 has 134M parameters before upsampling (Table 1)",
    )


@register_model("fcn32s", **_info(32))
def fcn32s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
           context_variant: str = "basic", align: str = "same", dropout: float = 0.5) -> FCN:
    """FCN-32s: the stride-32 class scores upsampled x32."""
    return FCN(num_classes, in_chans, output_stride=32, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)


@register_model("fcn16s", **_info(16))
def fcn16s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
           context_variant: str = "basic", align: str = "same", dropout: float = 0.5) -> FCN:
    """FCN-16s: FCN-32s's scores x2 plus pool4's, upsampled x16."""
    return FCN(num_classes, in_chans, output_stride=16, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)


@register_model("fcn8s", **_info(8))
def fcn8s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
          context_variant: str = "basic", align: str = "same", dropout: float = 0.5) -> FCN:
    """FCN-8s: FCN-16s's fused scores x2 plus pool3's, upsampled x8."""
    return FCN(num_classes, in_chans, output_stride=8, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)
