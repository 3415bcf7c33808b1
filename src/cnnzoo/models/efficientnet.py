"""EfficientNet B0..B7: a searched base network scaled up by one compound coefficient.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML
2019. The base network B0 (their Table 1, below) was found by architecture search; the
bigger ones scale its depth, width and input resolution *together* (section 3.3)::

    depth d = alpha ** phi,   width w = beta ** phi,   resolution r = gamma ** phi
    alpha = 1.2, beta = 1.1, gamma = 1.15, chosen (grid search at phi = 1) so that
    alpha * beta**2 * gamma**2 ~= 2   (here 1.92)

A conv's MACs grow with d, w^2 and r^2, so each unit of phi about doubles the cost:
MACs(phi) ~= MACs(B0) * 1.92 ** phi (a little more in practice, because ``ceil`` rounds the
one-layer stages up). Depth d multiplies every stage's number of layers
(``ceil(d * layers)``), width w every channel count (rounded to a multiple of 8, see
:func:`~cnnzoo.layers.mbconv.make_divisible`), resolution r the 224-pixel input.

The rule and the released models
--------------------------------
The paper does not list the phi of B1..B7, and the authors' released models (whose
coefficients torchvision copies, so their checkpoints need them) were hand-rounded to one
decimal. Rounding the rule's coefficients to one decimal too, each variant has a phi (table
``PHI``) and the released model departs from the rule only where ``RELEASED_DEPARTURES`` says:

* B0 (phi = 0), B1 (phi = 0.5): width, depth and resolution are the rule's.
* B2 (phi = 1), B3 (phi = 2): width and depth are the rule's; resolution is rounded up
  (rule 258 -> 260, 296 -> 300).
* B4 (phi = 3.25; every phi in [3.15, 3.37) gives its width 1.4 and depth 1.8): the
  architecture is the rule's; the resolution 380 is that of phi = 3.8 (rule at 3.25: 353).
* B5, B6, B7 (phi = 5, 6, 7, the phi their width and resolution follow): no phi reproduces
  both their width and depth. Their depth is shallower than the rule's (2.2, 2.6, 3.1
  against 2.5, 3.0, 3.6); B7's width 2.0 is the rule's 1.95 rounded up rather than to 1.9.

``scaling="released"`` (the default) applies these departures, so parameter names, shapes
and counts equal torchvision's (B0: 5,288,548) and its checkpoints load; ``scaling="rule"``
builds the rule itself, at the variant's phi or at any ``phi`` you pass.

On small images (Fashion-MNIST's 28x28, CIFAR's 32x32) ``stem_stride=1`` keeps the stem at
full resolution, as ``mobilenet_v1`` does: with the paper's stride-2 stem a 28x28 input is
down to 1x1 at stage 7 of Table 1's 9; with ``stem_stride=1`` the last map is 2x2, and every
map and multiply-add is that of a 56x56 input with the paper's stem.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, ModuleFactory
from cnnzoo.layers.heads import ClassifierHead
from cnnzoo.layers.mbconv import MBConv, make_divisible
from cnnzoo.layers.stochastic_depth import check_drop_rate, linear_drop_rates
from cnnzoo.models._base import Classifier, FeatureInfo, he_normal_init
from cnnzoo.models._register import register_model
from cnnzoo.models.convolutionalize import pooled_linear_convolutions

__all__ = [
    "ALPHA",
    "BASE_RESOLUTION",
    "BETA",
    "B0_STAGES",
    "EfficientNet",
    "GAMMA",
    "PHI",
    "RELEASED_DEPARTURES",
    "Scaling",
    "Stage",
    "compound_scaling",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "scale_stages",
    "variant_scaling",
]


class Stage(NamedTuple):
    """One row of the paper's Table 1: ``layers`` x MBConv``expand_ratio``, k x k."""

    expand_ratio: int
    kernel_size: int
    stride: int
    channels: int
    layers: int


# Tan & Le 2019, Table 1 (EfficientNet-B0 at 224 x 224). Stem: Conv3x3, stride 2, 32
# channels (224 -> 112). Head: Conv1x1 to 1280 channels, pooling, FC.
#              operator   k  stride  channels  layers      input resolution of the stage
B0_STAGES = (
    Stage(1, 3, 1, 16, 1),    # MBConv1, k3x3   112 x 112
    Stage(6, 3, 2, 24, 2),    # MBConv6, k3x3   112 x 112 -> 56
    Stage(6, 5, 2, 40, 2),    # MBConv6, k5x5    56 x 56  -> 28
    Stage(6, 3, 2, 80, 3),    # MBConv6, k3x3    28 x 28  -> 14
    Stage(6, 5, 1, 112, 3),   # MBConv6, k5x5    14 x 14
    Stage(6, 5, 2, 192, 4),   # MBConv6, k5x5    14 x 14  -> 7
    Stage(6, 3, 1, 320, 1),   # MBConv6, k3x3     7 x 7
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BASE_RESOLUTION = 224

# Compound scaling constants (section 3.3 / 4.2: grid search at phi = 1).
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class Scaling:
    """Width and depth multipliers and the input resolution of one EfficientNet."""

    width: float
    depth: float
    resolution: int


def compound_scaling(
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    decimals: int | None = 1,
) -> Scaling:
    """The compound scaling rule: ``d = alpha^phi``, ``w = beta^phi``, ``r = 224 * gamma^phi``.

    ``decimals`` rounds d and w as the authors' released coefficients are rounded (one
    decimal; ``None`` keeps them exact). The resolution is rounded to whole pixels.
    """
    width, depth = beta ** phi, alpha ** phi
    if decimals is not None:
        width, depth = round(width, decimals), round(depth, decimals)
    return Scaling(width, depth, round(BASE_RESOLUTION * gamma ** phi))


# The compound coefficient of each released variant (see the module docstring for why).
PHI = {"b0": 0.0, "b1": 0.5, "b2": 1.0, "b3": 2.0, "b4": 3.25, "b5": 5.0, "b6": 6.0, "b7": 7.0}

# Where the released models (tensorflow/tpu efficientnet_builder.efficientnet_params, copied
# by torchvision) leave the rule at the phi above; the rule's value in the comment.
RELEASED_DEPARTURES: dict[str, dict[str, float]] = {
    "b2": {"resolution": 260},                              # 258
    "b3": {"resolution": 300},                              # 296
    "b4": {"resolution": 380},                              # 353
    "b5": {"depth": 2.2, "resolution": 456},                # 2.5, 451
    "b6": {"depth": 2.6, "resolution": 528},                # 3.0, 518
    "b7": {"width": 2.0, "depth": 3.1, "resolution": 600},  # 1.9, 3.6, 596
}

# Regularization of the released models: dropout before the classifier rises linearly from
# 0.2 (B0) to 0.5 (B7) (section 5.2); stochastic depth 0.2 for all.
DROPOUT = {"b0": 0.2, "b1": 0.2, "b2": 0.3, "b3": 0.3, "b4": 0.4, "b5": 0.4, "b6": 0.5, "b7": 0.5}
STOCHASTIC_DEPTH = 0.2

# torchvision's B5..B7 weights were converted from the TensorFlow release, whose batch norm
# uses eps 1e-3 and momentum 0.99 (0.01 in PyTorch's convention); its B0..B4 use PyTorch's
# defaults. Matching them per variant makes eval outputs equal given the same weights.
TF_BATCHNORM = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
BATCHNORM = {name: TF_BATCHNORM if name in ("b5", "b6", "b7") else nn.BatchNorm2d for name in PHI}


def variant_scaling(variant: str, scaling: str = "released", phi: float | None = None) -> Scaling:
    """Coefficients of ``variant`` ("b0".."b7"): the rule at its phi (or at ``phi``), and,
    with ``scaling="released"``, the released models' departures from it."""
    if scaling not in ("released", "rule"):
        raise ValueError(f"scaling must be 'released' or 'rule', got {scaling!r}")
    if phi is not None and scaling == "released":
        raise ValueError("phi= chooses a point on the rule; pass scaling='rule' with it")
    coefficients = compound_scaling(PHI[variant] if phi is None else phi)
    if scaling == "released":
        coefficients = replace(coefficients, **RELEASED_DEPARTURES.get(variant, {}))
    return coefficients


def scale_stages(stages: tuple[Stage, ...], width: float, depth: float) -> list[Stage]:
    """Table 1 with every channel count times w (to a multiple of 8) and layers times d (up)."""
    return [
        stage._replace(channels=make_divisible(stage.channels * width), layers=math.ceil(stage.layers * depth))
        for stage in stages
    ]


class EfficientNet(Classifier):
    """EfficientNet: stem conv, seven stages of MBConv blocks (Table 1), 1x1 head conv, pooling,
    dropout and a linear classifier (Tan & Le, 2019).

    MACs: the sum of the MBConv costs (``cnnzoo.layers.mbconv``) plus stem
    ``H/s * W/s * 9 * C_in * C_stem``, head ``H/16s * W/16s * C_last * C_head`` and FC
    ``C_head * num_classes``, for a stem of stride s (Table 1: 2; B0: 0.386 G at 224 x 224); roughly ``1.92**phi`` times B0's,
    somewhat more because ``ceil(d * layers)`` rounds the one-layer stages up.

    ``forward_features`` returns the output of the last stage at each stride (2, 4, 8, 16,
    32; 1, 2, 4, 8, 16 with ``stem_stride=1``): Table 1's stages 2, 3, 4, 6 and 8 (module
    names in ``feature_info``); the head conv belongs to the head (Table 1's stage 9,
    "Conv1x1 & Pooling & FC").

    Module names: ``stem``, ``stages[i][j]`` (:class:`~cnnzoo.layers.mbconv.MBConv`),
    ``head_conv``, ``head`` (``pool``, ``dropout``, ``fc``); ``torchvision_renames`` maps
    torchvision's ``features.*`` / ``classifier.1`` keys onto them.
    """

    head_names = ("head_conv", "head")
    classifier_name, global_pool_name = "head.fc", "head.pool"

    def __init__(
        self,
        scaling: Scaling = Scaling(1.0, 1.0, BASE_RESOLUTION),
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        stochastic_depth: float = STOCHASTIC_DEPTH,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        stages: tuple[Stage, ...] = B0_STAGES,
        stem_stride: int = 2,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        if scaling.width <= 0 or scaling.depth <= 0:
            raise ValueError(
                f"width and depth multipliers must be positive, got width={scaling.width}, "
                f"depth={scaling.depth} (a phi far below 0 rounds them to 0)"
            )
        check_drop_rate("stochastic_depth", stochastic_depth)
        self.min_input_size = 1  # padded convs and global pooling accept any size
        self.scaling = scaling
        self.default_input = (in_chans, scaling.resolution, scaling.resolution)
        self.stage_config = scale_stages(stages, scaling.width, scaling.depth)
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=nn.SiLU)

        stem_channels = make_divisible(STEM_CHANNELS * scaling.width)
        self.stem = conv(in_chans, stem_channels, 3, stride=stem_stride)
        self.stages = nn.Sequential(*self._build_stages(stem_channels, stochastic_depth, norm_layer))
        last_channels = self.stage_config[-1].channels
        head_channels = make_divisible(HEAD_CHANNELS * scaling.width)
        self.head_conv = conv(last_channels, head_channels, 1)
        self.head = ClassifierHead(head_channels, num_classes, dropout)

        self.feature_info, self._feature_stages = self._describe_features(stem_stride)
        self.torchvision_renames = self._torchvision_renames()
        self._init_weights()

    def _build_stages(
        self, in_channels: int, stochastic_depth: float, norm_layer: ModuleFactory
    ) -> list[nn.Sequential]:
        # The drop probability rises linearly with the block's index, from 0 at the first
        # block towards `stochastic_depth` at the last (as in the released models).
        drop_paths = iter(linear_drop_rates(stochastic_depth, sum(stage.layers for stage in self.stage_config)))
        stages = []
        for stage in self.stage_config:
            blocks = []
            for i in range(stage.layers):
                blocks.append(MBConv(
                    in_channels, stage.channels, stage.expand_ratio, stage.kernel_size,
                    stride=stage.stride if i == 0 else 1, se_ratio=0.25,
                    drop_path=next(drop_paths), norm_layer=norm_layer,
                ))
                in_channels = stage.channels
            stages.append(nn.Sequential(*blocks))
        return stages

    def _describe_features(self, stem_stride: int) -> tuple[list[FeatureInfo], list[int]]:
        """One feature map per stride: the last stage before the next downsampling."""
        info, taps, stride = [], [], stem_stride
        for index, stage in enumerate(self.stage_config):
            stride *= stage.stride
            next_downsamples = index + 1 == len(self.stage_config) or self.stage_config[index + 1].stride > 1
            if next_downsamples:
                info.append(FeatureInfo(stage.channels, stride, f"stages.{index}"))
                taps.append(index)
        return info, taps

    def _torchvision_renames(self) -> tuple[tuple[str, str], ...]:
        """torchvision's ``features.{0, 1..7, 8}`` / ``classifier.1`` keys onto ours.

        torchvision numbers the parts of each block (``block.0``, ``block.1``, ...); which
        number is which depends on whether the block has an expansion conv, known per stage.
        """
        renames = [(r"^features\.0\.", "stem."), (rf"^features\.{len(self.stages) + 1}\.", "head_conv.")]
        for index, stage in enumerate(self.stages):
            parts = ["depthwise", "se", "project"]
            if stage[0].expand is not None:
                parts.insert(0, "expand")
            for number, part in enumerate(parts):
                renames.append((rf"^features\.{index + 1}\.(\d+)\.block\.{number}\.", rf"stages.{index}.\1.{part}."))
        # Inside each conv-norm-activation, torchvision's 0 / 1 are our conv / bn.
        renames += [
            (r"^(stem|head_conv|.*\.(?:expand|depthwise|project))\.0\.", r"\1.conv."),
            (r"^(stem|head_conv|.*\.(?:expand|depthwise|project))\.1\.", r"\1.bn."),
            (r"^classifier\.1\.", "head.fc."),
        ]
        return tuple(renames)

    def _init_weights(self) -> None:
        # As the reference implementation: He-normal (fan-out) convs, unit BN, and a uniform
        # classifier in +-1/sqrt(num_classes).
        he_normal_init(self)
        bound = 1.0 / math.sqrt(self.head.fc.out_features)
        nn.init.uniform_(self.head.fc.weight, -bound, bound)
        nn.init.zeros_(self.head.fc.bias)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self._feature_stages:
                features.append(x)
        return features

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_conv(x))

    def head_convolutions(self) -> list[nn.Module]:
        """The 1x1 head conv as it is, then the pooled linear head as a 1x1 convolution."""
        return [copy.deepcopy(self.head_conv), *pooled_linear_convolutions(self.head.dropout, self.head.fc)]


PAPER = "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"

# Published numbers. params, MACs (torchvision's "GFLOPS", which count multiply-adds) and
# top-1: torchvision 0.28 weights metadata (tests/fixtures/torchvision/metadata.json), each
# at the weights' evaluation crop, which is the released resolution except for B2: its
# weights are evaluated at 288 (1.088 G MACs there), so B2's MACs at its released 260 are the
# paper's Table 2 figure, 1.0 B.
TORCHVISION = "torchvision 0.28 EfficientNet_{}_Weights.{} metadata"
PUBLISHED = {
    #      weights          params      MACs            top1
    "b0": ("IMAGENET1K_V1", 5_288_548, 386_000_000, 77.692),
    "b1": ("IMAGENET1K_V1", 7_794_184, 687_000_000, 78.642),
    "b2": ("IMAGENET1K_V1", 9_109_994, 1_000_000_000, 80.608),
    "b3": ("IMAGENET1K_V1", 12_233_232, 1_827_000_000, 82.008),
    "b4": ("IMAGENET1K_V1", 19_341_616, 4_394_000_000, 83.384),
    "b5": ("IMAGENET1K_V1", 30_389_784, 10_266_000_000, 83.444),
    "b6": ("IMAGENET1K_V1", 43_040_704, 19_068_000_000, 84.008),
    "b7": ("IMAGENET1K_V1", 66_347_960, 37_746_000_000, 84.122),
}

# The paper's own figures, Table 2 ("#Params", "#FLOPS", which are multiply-adds, and top-1),
# as rounded there. torchvision's B4 and B5 cost 4.6% and 3.7% more multiply-adds than these
# (4.394 G vs 4.2 B, 10.266 G vs 9.9 B); docs/models/efficientnet.md compares them all.
PAPER_TABLE_2_SOURCE = "Tan & Le 2019, Table 2 (#Params, #FLOPS = multiply-adds, top-1)"
PAPER_TABLE_2 = {
    #      params       MACs             top1
    "b0": (5_300_000, 390_000_000, 77.1),
    "b1": (7_800_000, 700_000_000, 79.1),
    "b2": (9_200_000, 1_000_000_000, 80.1),
    "b3": (12_000_000, 1_800_000_000, 81.6),
    "b4": (19_000_000, 4_200_000_000, 82.9),
    "b5": (30_000_000, 9_900_000_000, 83.6),
    "b6": (43_000_000, 19_000_000_000, 84.0),
    "b7": (66_000_000, 37_000_000_000, 84.3),
}


def _source(variant: str) -> str:
    weights = PUBLISHED[variant][0]
    torchvision = TORCHVISION.format(variant.upper(), weights)
    if variant == "b2":
        return f"params, top1: {torchvision} (top1 at a 288 crop); macs: paper Table 2 (1.0B at 260)"
    return f"params, macs (multiply-adds), top1: {torchvision}"


def _make_builder(variant: str):
    def build(
        num_classes: int = 1000,
        in_chans: int = 3,
        scaling: str = "released",
        phi: float | None = None,
        dropout: float | None = None,
        stochastic_depth: float = STOCHASTIC_DEPTH,
        drop_path_rate: float | None = None,
        stem_stride: int = 2,
    ) -> EfficientNet:
        if drop_path_rate is not None:
            check_drop_rate("drop_path_rate", drop_path_rate)
            if stochastic_depth not in (STOCHASTIC_DEPTH, drop_path_rate):
                raise ValueError("drop_path_rate is timm's name for stochastic_depth: give one of them, not both")
        return EfficientNet(
            variant_scaling(variant, scaling, phi),
            num_classes=num_classes,
            in_chans=in_chans,
            dropout=DROPOUT[variant] if dropout is None else dropout,
            stochastic_depth=stochastic_depth if drop_path_rate is None else drop_path_rate,
            norm_layer=BATCHNORM[variant],
            stem_stride=stem_stride,
        )

    build.__name__ = build.__qualname__ = f"efficientnet_{variant}"
    build.__doc__ = (
        f"EfficientNet-{variant.upper()} (Tan & Le, 2019), compound coefficient phi = {PHI[variant]}.\n\n"
        "``scaling='released'`` (default): the authors' released model, torchvision-compatible. "
        "``scaling='rule'``: the compound scaling rule at this phi, or at ``phi`` when given. "
        "``dropout`` defaults to the released rate; ``stochastic_depth`` (or timm's name for it, "
        "``drop_path_rate``) is the drop probability the last block approaches. ``stem_stride=1`` "
        "keeps small inputs (28x28, 32x32) at full resolution through the stem."
    )
    resolution = variant_scaling(variant).resolution
    _, params, macs, top1 = PUBLISHED[variant]
    paper_params, paper_macs, paper_top1 = PAPER_TABLE_2[variant]
    return register_model(
        f"efficientnet_{variant}",
        family="efficientnet",
        paper=PAPER,
        year=2019,
        default_input=(3, resolution, resolution),
        min_input_size=1,
        params=params,
        macs=macs,
        top1=top1,
        source=_source(variant),
        paper_params=paper_params,
        paper_macs=paper_macs,
        paper_top1=paper_top1,
        paper_source=PAPER_TABLE_2_SOURCE,
    )(build)


efficientnet_b0 = _make_builder("b0")
efficientnet_b1 = _make_builder("b1")
efficientnet_b2 = _make_builder("b2")
efficientnet_b3 = _make_builder("b3")
efficientnet_b4 = _make_builder("b4")
efficientnet_b5 = _make_builder("b5")
efficientnet_b6 = _make_builder("b6")
efficientnet_b7 = _make_builder("b7")
