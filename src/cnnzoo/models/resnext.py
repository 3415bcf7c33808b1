"""ResNeXt: ResNet whose bottleneck 3x3 conv is split into ``cardinality`` parallel paths.

Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural
Networks", CVPR 2017. A block aggregates C transformations of the same topology,
``y = x + sum_i T_i(x)``; with T_i = 1x1 (d channels), 3x3, and a shared 1x1 back, the C
paths are exactly one grouped 3x3 conv with C groups of d channels (Fig. 3c), so a ResNeXt
is a ResNet with :class:`~cnnzoo.layers.residual.Bottleneck` ``(cardinality, base_width)``.
"C x d" names the template: 32x4d is 32 paths of 4 channels in the first stage, doubling
with each stage (3x3 width ``floor(planes * d / 64) * C``: 128, 256, 512, 1024).

At (nearly) the complexity of ResNet-50 (4.1 G multiply-adds, 25.5 M parameters),
ResNeXt-50 32x4d lowers top-1 error from 23.9 % to 22.2 % (Table 3): more paths of fewer
channels, the grouped conv costing 1/C of a dense one of the same width.

The ImageNet models share torchvision's layout; ResNeXt-29 is the CIFAR network of
section 5.3 (a 3x3 stem of 64 channels and three stages of three bottlenecks at 64, 128,
256 planes: 9 x 3 + 2 = 29 layers), here with the post-activation blocks of the authors'
released code (its README notes that the paper's CIFAR numbers used pre-activation blocks;
the weights differ only in where the BN layers sit).
"""

from __future__ import annotations

from cnnzoo.layers.residual import Bottleneck, ShortcutType
from cnnzoo.models._register import register_model, torchvision_source
from cnnzoo.models.resnet import IMAGENET_DEPTHS, MIN_INPUT_SIZE, ResNet

__all__ = ["resnext29_8x64d", "resnext50_32x4d", "resnext101_32x8d"]

XIE_2017 = "Xie, Girshick, Dollar, Tu, He, Aggregated Residual Transformations for Deep Neural Networks"

# CIFAR ResNeXt-29 (section 5.3): three bottlenecks per stage, 64 / 128 / 256 planes.
CIFAR_DEPTHS = (3, 3, 3)
CIFAR_WIDTHS = (64, 128, 256)
CIFAR_STEM_WIDTH = 64


@register_model(
    "resnext50_32x4d", family="resnext", paper=XIE_2017, year=2017, min_input_size=MIN_INPUT_SIZE,
    params=25_028_904, macs=4_230_000_000, top1=77.618,
    source=torchvision_source("ResNeXt50_32X4D_Weights.IMAGENET1K_V1"),
)
def resnext50_32x4d(
    num_classes: int = 1000, in_chans: int = 3, zero_init_residual: bool = False, drop_path_rate: float = 0.0
) -> ResNet:
    """ResNeXt-50 (32x4d): ResNet-50's depths, 32 paths of 4 channels (Xie et al. 2017, Table 1)."""
    _, depths = IMAGENET_DEPTHS[50]
    return ResNet(Bottleneck, depths, num_classes, in_chans, cardinality=32, base_width=4,
                  zero_init_residual=zero_init_residual, drop_path_rate=drop_path_rate)


@register_model(
    "resnext101_32x8d", family="resnext", paper=XIE_2017, year=2017, min_input_size=MIN_INPUT_SIZE,
    params=88_791_336, macs=16_414_000_000, top1=79.312,
    source=torchvision_source("ResNeXt101_32X8D_Weights.IMAGENET1K_V1"),
)
def resnext101_32x8d(
    num_classes: int = 1000, in_chans: int = 3, zero_init_residual: bool = False, drop_path_rate: float = 0.0
) -> ResNet:
    """ResNeXt-101 (32x8d): ResNet-101's depths, 32 paths of 8 channels (the C x d template of
    Xie et al. 2017 at twice ResNeXt-101 32x4d's width; the configuration torchvision ships)."""
    _, depths = IMAGENET_DEPTHS[101]
    return ResNet(Bottleneck, depths, num_classes, in_chans, cardinality=32, base_width=8,
                  zero_init_residual=zero_init_residual, drop_path_rate=drop_path_rate)


@register_model(
    "resnext29_8x64d", family="resnext", paper=XIE_2017, year=2017,
    default_input=(3, 32, 32), min_input_size=MIN_INPUT_SIZE, dataset="CIFAR-10",
    params=34_400_000, top1=100 - 3.65,
    source="Xie et al. 2017, Table 7 (CIFAR-10; 34.4M parameters as printed, top-1 = 100 - error)",
)
def resnext29_8x64d(
    num_classes: int = 10, in_chans: int = 3, shortcut_type: ShortcutType = "B", zero_init_residual: bool = False,
    drop_path_rate: float = 0.0,
) -> ResNet:
    """CIFAR ResNeXt-29 (8x64d): 8 paths of 64 channels in the first stage (Xie et al. 2017, sec. 5.3)."""
    return ResNet(
        Bottleneck, CIFAR_DEPTHS, num_classes, in_chans,
        widths=CIFAR_WIDTHS, stem="cifar", stem_width=CIFAR_STEM_WIDTH,
        cardinality=8, base_width=64, shortcut_type=shortcut_type, zero_init_residual=zero_init_residual,
        drop_path_rate=drop_path_rate,
    )
