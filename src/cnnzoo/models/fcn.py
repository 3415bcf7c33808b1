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
(5 and 9 for the skips, 19 / 27 / 31 for the output of FCN-32s / 16s / 8s). With
``align="same"`` cnnzoo keeps VGG's "same" convolutions, pads fc6 by 3 and pads the
image (bottom and right, with zeros) to a multiple of 32: every map then has exactly
``H/s x W/s`` units centred on the same pixels as the upsampled coarser map, nothing needs
cropping but the padding, and no computation is spent on a 100-pixel frame (at 500x500 the
paper's net computes on 698x698 maps). ``align="paper"`` builds the reference nets
(conv1_1 padding 100, pooling rounding up as Caffe's does, valid fc6, the paper's crops).
The default, ``align="auto"``, is "same" wherever the backbone's convolutions are padded and
"paper" for AlexNet, whose unpadded conv1 and pools only the 100-pixel frame and the crops can
align. Both take any input of at least 1x1 pixel and return logits of the input's size.

``backbone``: "vgg16" is the paper's network, with its parameter names (``features.*`` as
``create_model("vgg16")``, so torchvision VGG-16 weights initialize it through
:meth:`FCN.from_classifier`). The other two nets of Table 1 are registered as
``fcn32s_alexnet`` and ``fcn32s_googlenet`` (the paper reports FCN-32s alone for them).
AlexNet (either registered one) is taken as VGG is: its ``features``, fc6 a 6x6 convolution,
fc7 a 1x1 one; with ``align="paper"`` it is the reference FCN-AlexNet (conv1 padded by 100,
a 63x63 final upsampling, output cropped at 18). GoogLeNet and any other registered
classifier give "FCN on the classifier's ``forward_features``": the stage maps at strides 8,
16 and 32 (``feature_info``), a 1x1 score conv on each, the same fusion and upsampling. For
GoogLeNet that is the paper's recipe: "we use only the final loss layer, and improve
performance by discarding the final average pooling layer" (section 4.1): inception5b's 1024
maps feed ``score_fr``. (The lecture notes' own FCN, transposed convolutions with ReLU and
batch norm on ``x5`` + ``x4``, is :mod:`cnnzoo.models.fcn_deconv`.)

Parameters with 21 classes, before the final upsampling (whose kernels the paper fixes, so
Table 1 does not count them):

* FCN-VGG16: 14,714,688 (13 convs) + 102,764,544 (fc6) + 16,781,312 (fc7) + 86,037 (score_fr)
  = 134,346,581, the paper's "134M" (+ 1,806,336 in the 64x64 upsampling kernels);
* FCN-AlexNet on ``alexnet_original`` (the reference's two-tower CaffeNet layout): 2,334,080
  (5 convs) + 37,752,832 (fc6) + 16,781,312 (fc7) + 86,037 = 56,954,261, the paper's "57M"
  (on torchvision's single tower ``alexnet``: 2,469,696 + ... = 57,089,877);
* FCN-GoogLeNet: 5,599,904 (the 57 convs up to inception5b) + 21,525 (score_fr) = 5,621,429,
  the paper's "6M".
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cnnzoo.layers.context import CONTEXT_WIDTHS, ContextModule
from cnnzoo.layers.upsample import bilinear_transposed_conv, init_bilinear_
from cnnzoo.models._backbone import CONTEXT_SCORE_STD, build_backbone, fc_convolutions
from cnnzoo.models._base import Classifier, check_choice
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.alexnet import AlexNet
from cnnzoo.models.convolutionalize import classifier_body
from cnnzoo.models.fcn_align import COARSEST, Grid, check_stage_sizes, crop_at, pad_to_multiple, stage_taps
from cnnzoo.models.vgg import VGG
from cnnzoo.utils.sizes import pair

__all__ = [
    "ALIGNS", "FCN", "Grid", "OUTPUT_STRIDES", "crop_at", "fcn8s", "fcn16s", "fcn32s", "fcn32s_alexnet",
    "fcn32s_googlenet",
]

PAPER = "Long, Shelhamer and Darrell, Fully Convolutional Networks for Semantic Segmentation"

OUTPUT_STRIDES = (32, 16, 8)  # FCN-32s, FCN-16s, FCN-8s
SKIPS = {16: "pool4", 8: "pool3"}  # the skip layers of FCN-16s and FCN-8s, by stride
ALIGNS = ("auto", "same", "paper")
Align = Literal["auto", "same", "paper"]
FC_NETS = (VGG, AlexNet)  # the classifiers with fc6 / fc7, which the paper convolutionalizes
PAPER_PADDING = 100  # conv1_1's padding in the reference nets


class FCN(Segmenter):
    """FCN-32s / 16s / 8s on a classifier (the paper's VGG-16 by default).

    Children, for a VGG or AlexNet backbone: ``features`` (its own, same names), ``fc``
    (``fc6`` 7x7 / 6x6 conv, ``relu6``, ``drop6``, ``fc7`` 1x1 conv, ``relu7``, ``drop7``);
    for any other: ``backbone``
    (the classifier without its head). Then ``score_fr``, ``score_pool4`` and ``upscore2``
    (16s, 8s), ``score_pool3`` and ``upscore_pool4`` (8s), ``context`` (optional) and
    ``upscore``, the final upsampling.

    Args:
        num_classes: K, one score map per class (21 for PASCAL VOC: 20 classes and background).
        in_chans: image channels (ignored when ``backbone`` is a module: its own count).
        output_stride: 32, 16 or 8 (FCN-32s, 16s, 8s): the stride of the finest score map.
        backbone: a registered classifier name (built afresh), or a classifier (copied, its
            weights kept; see :meth:`from_classifier`). It needs stages at strides 8, 16, 32
            (those the variant reads) whose maps are ``H/s x W/s`` for ``H, W`` multiples of 32
            (AlexNet's are not: it takes the paper's alignment).
        context: a :class:`~cnnzoo.layers.context.ContextModule` (K channels) on the finest
            score map before the final upsampling, as Yu and Koltun put theirs after a
            stride-8 front-end (see also :class:`~cnnzoo.models.dilated.DilatedFrontEnd`).
        align: "auto" (default: "paper" for AlexNet, "same" otherwise), "same" (padded
            backbones) or "paper" (VGG and AlexNet, the reference nets): see the module docstring.
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
        align: Align = "auto",
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
        self.align = _resolve_align(align, classifier)
        self.min_input_size = 1  # "same" pads to a multiple of 32; "paper" pads conv1_1 by 100
        strides = [s for s in OUTPUT_STRIDES if s >= output_stride]
        if isinstance(classifier, FC_NETS):
            channels, grids = self._take_fc_net(classifier, strides, self.align, dropout)
        else:
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
        align: Align = "auto",
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

    def _take_fc_net(self, vgg: VGG | AlexNet, strides: list[int], align: str,
                     dropout: float) -> tuple[dict[int, int], dict[int, Grid]]:
        """Take VGG's or AlexNet's features (renaming nothing) and turn fc6 / fc7 into
        convolutions (both lay their head out alike: ``avgpool``, then ``classifier``)."""
        self.features = vgg.features
        self.backbone = None
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        if align == "paper":
            first = next(layer for layer in self.features if isinstance(layer, nn.Conv2d))
            first.padding = (PAPER_PADDING, PAPER_PADDING)
            for index in pools:
                self.features[index].ceil_mode = True  # Caffe's pooling rounds up (no pool is padded)
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
        self._taps = stage_taps(classifier, strides, "FCN")
        self.features = None
        self.fc = None
        self.backbone = classifier_body(classifier, copy_modules=False)
        check_stage_sizes(self.backbone, self._taps, self.in_chans, "FCN")
        # Assumed, as for VGG: unit y of the stride-s map centred on pixels s*y ... s*y + s - 1.
        # (Strided 3x3 convs, as in ResNet, centre it on pixel s*y: a shift of less than one
        # cell of the finer map, which the learned upsampling absorbs.)
        grids = {s: Grid(s, (s - 1) / 2) for s in strides}
        return {s: self.backbone.feature_info[self._taps[s]].channels for s in strides}, grids

    def _build_decoder(self, num_classes: int, channels: dict[int, int], grids: dict[int, Grid],
                       strides: list[int], context: bool, context_variant: str) -> None:
        padded = self.align == "same"
        self.score_fr = nn.Conv2d(channels[COARSEST], num_classes, kernel_size=1)
        grid = grids[COARSEST]
        self._offsets: dict[int, int] = {}
        ups = {16: "upscore2", 8: "upscore_pool4"}
        for stride in strides[1:]:
            setattr(self, f"score_{SKIPS[stride]}", nn.Conv2d(channels[stride], num_classes, kernel_size=1))
            up = _upsampling(num_classes, 2, None if padded else grid)
            setattr(self, ups[stride], up)
            grid = grid.transposed(up.kernel_size[0], up.stride[0], up.padding[0])
            self._offsets[stride] = grids[stride].offset_of(grid)
        self.context = ContextModule(num_classes, context_variant) if context else None
        self.upscore = _upsampling(num_classes, self.output_stride, None if padded else grid)
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
            least = self.backbone.min_input_size if self.backbone is not None else 1
            x = pad_to_multiple(x, COARSEST, least)
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
        # A copy, not a view: the logits do not keep the larger upsampled map alive.
        return crop_at(self.upscore(score), self._offsets[1], height, width, "upscore").contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x num_classes x H x W`` logits for an ``N x in_chans x H x W`` batch."""
        self.check_input(x)
        return self.decode(self.encode(x), *x.shape[-2:])

# ====================================================================== helpers

def _upsampling(channels: int, factor: int, grid: Grid | None) -> nn.ConvTranspose2d:
    """Transposed conv (stride f) initialized to bilinear interpolation.

    ``grid=None`` ("same"): kernel 2f padded by f/2, exactly ``f`` times its input. Otherwise
    unpadded as Caffe's, reading a map whose units sit on ``grid``: kernel 2f where they sit
    between pixels (VGG's, at half-integers: the reference nets' 64, 32, 16 and 4) and 2f - 1
    where they sit on pixels (AlexNet's: FCN-AlexNet's 63), so the upsampled units land on
    pixel centres again and the crop offset is a whole number.
    """
    if grid is None:
        return bilinear_transposed_conv(channels, factor)
    kernel = 2 * factor if grid.start % 1 else 2 * factor - 1
    return init_bilinear_(nn.ConvTranspose2d(channels, channels, kernel, stride=factor, bias=False))


def _resolve_align(align: str, classifier: Classifier) -> str:
    """``align`` checked against the backbone; "auto" becomes "paper" for AlexNet (unpadded
    conv1 and pools: only the reference's 100-pixel frame and crops align its maps) and
    "same" for the others."""
    check_choice("align", align, ALIGNS)
    name = type(classifier).__name__
    if align == "auto":
        return "paper" if isinstance(classifier, AlexNet) else "same"
    if align == "paper" and not isinstance(classifier, FC_NETS):
        raise ValueError(f"align='paper' builds the reference Caffe nets (VGG-16's and AlexNet's); "
                         f"{name} has none: use align='same'")
    if align == "same" and isinstance(classifier, AlexNet):
        raise ValueError("align='same' needs padded convolutions; AlexNet's conv1 and pooling are unpadded, so its "
                         "maps are not H/s x W/s: use align='paper' (the reference FCN-AlexNet) or 'auto'")
    return align


# ====================================================================== registry

def _info(stride: int, **published) -> dict:
    return dict(
        family="fcn", paper=PAPER, year=2015, task="segmentation",
        default_input=(3, 500, 500),  # PASCAL VOC images are at most 500x500
        min_input_size=1, dataset="PASCAL VOC 2011 (21 classes)",
        source=f"FCN-{stride}s: Long et al. 2015; FCN-VGG16 has 134M parameters before upsampling (Table 1)",
    ) | published


ALEXNETS = ("alexnet_original", "alexnet")  # the reference's two-tower CaffeNet layout; torchvision's


@register_model("fcn32s", **_info(32))
def fcn32s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
           context_variant: str = "basic", align: str = "auto", dropout: float = 0.5) -> FCN:
    """FCN-32s: the stride-32 class scores upsampled x32."""
    return FCN(num_classes, in_chans, output_stride=32, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)


@register_model("fcn16s", **_info(16))
def fcn16s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
           context_variant: str = "basic", align: str = "auto", dropout: float = 0.5) -> FCN:
    """FCN-16s: FCN-32s's scores x2 plus pool4's, upsampled x16."""
    return FCN(num_classes, in_chans, output_stride=16, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)


@register_model("fcn8s", **_info(8))
def fcn8s(num_classes: int = 21, in_chans: int = 3, backbone: str = "vgg16", context: bool = False,
          context_variant: str = "basic", align: str = "auto", dropout: float = 0.5) -> FCN:
    """FCN-8s: FCN-16s's fused scores x2 plus pool3's, upsampled x8."""
    return FCN(num_classes, in_chans, output_stride=8, backbone=backbone, context=context,
               context_variant=context_variant, align=align, dropout=dropout)


# Table 1 of Long et al. (CVPR 2015): FCN-AlexNet 39.8 mean IU, 50 ms, 8 conv layers, 57M
# parameters, rf size 355, max stride 32; FCN-GoogLeNet 42.5, 59 ms, 22 layers, 6M, rf 907, 32.
@register_model("fcn32s_alexnet", **_info(32, params=57_000_000, source=(
    "Long et al. 2015, Table 1: FCN-AlexNet, 57M parameters (before the fixed upsampling; "
    "56,954,261 exactly on alexnet_original), 39.8 mean IU on PASCAL VOC 2011 val")))
def fcn32s_alexnet(num_classes: int = 21, in_chans: int = 3, backbone: str = "alexnet_original",
                   align: str = "auto", dropout: float = 0.5) -> FCN:
    """FCN-AlexNet (FCN-32s on AlexNet); "auto" alignment is the reference net's (conv1 padded
    by 100, 63x63 upsampling, crop 18). ``backbone="alexnet"`` takes torchvision's weights."""
    check_choice("backbone", backbone, ALEXNETS)
    return FCN(num_classes, in_chans, output_stride=32, backbone=backbone, align=align, dropout=dropout)


@register_model("fcn32s_googlenet", **_info(32, params=6_000_000, source=(
    "Long et al. 2015, Table 1: FCN-GoogLeNet, 6M parameters (before the fixed upsampling; "
    "5,621,429 exactly), 42.5 mean IU on PASCAL VOC 2011 val")))
def fcn32s_googlenet(num_classes: int = 21, in_chans: int = 3) -> FCN:
    """FCN-GoogLeNet: inception5b's maps (the average pooling and the auxiliary heads
    discarded, section 4.1) scored and upsampled x32."""
    return FCN(num_classes, in_chans, output_stride=32, backbone="googlenet")
