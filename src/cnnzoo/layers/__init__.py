"""Building blocks shared by the models, one file per family."""

from cnnzoo.layers.conv import (
    ConvNormAct,
    ConvTransposeNormAct,
    DepthwiseSeparableConv,
    FactorizedConv,
    MaxPoolWithIndices,
    MaxUnpool,
    conv_norm_act,
    depthwise_conv,
    dilated_conv,
    grouped_conv,
    pointwise_conv,
    same_padding,
)
from cnnzoo.layers.heads import ClassifierHead, FullyConvHead

__all__ = [
    "ClassifierHead",
    "ConvNormAct",
    "ConvTransposeNormAct",
    "DepthwiseSeparableConv",
    "FactorizedConv",
    "FullyConvHead",
    "MaxPoolWithIndices",
    "MaxUnpool",
    "conv_norm_act",
    "depthwise_conv",
    "dilated_conv",
    "grouped_conv",
    "pointwise_conv",
    "same_padding",
]
