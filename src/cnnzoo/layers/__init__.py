"""Building blocks shared by the models, one file per family.

=======================  ==================================================================
file                     blocks
=======================  ==================================================================
``conv.py``              conv-norm-activation and its variants: grouped, depthwise,
                         depthwise-separable, 1x1, factorized 1xN + Nx1, dilated,
                         transposed; max-pooling with indices, max-unpooling and
                         fixed ("bed of nails") unpooling
``heads.py``             global-pool + linear head, fully convolutional head, fc6/fc7 head
``inception.py``         Inception v1 module and aux head, Inception v3 modules A-E and aux
``residual.py``          basic and bottleneck residual blocks (and their plain twins),
                         option-A/B/C shortcuts, the ResNeXt grouped bottleneck
``dense.py``             dense layer, dense block (growth rate k), transition
``fire.py``              SqueezeNet's Fire module
``mbconv.py``            MBConv with squeeze-and-excitation
``stochastic_depth.py``  residual branches dropped per sample, the linear schedule
``upsample.py``          bilinear-initialized transposed conv, upsampling + 2x2 conv,
                         the unpool-then-convolve decoder stage (SegNet, auto-encoder)
``unet_blocks.py``       U-Net's double conv, up block (crop + concat), the paper's fan-in
                         initialization
``spatial.py``           centre crop, mirror padding of any amount, size matching
``context.py``           Yu & Koltun's dilated context module (dilations 1,1,2,4,8,16,1)
=======================  ==================================================================
"""

from cnnzoo.layers.conv import (
    ConvNormAct,
    ConvTransposeNormAct,
    DepthwiseSeparableConv,
    FactorizedConv,
    FixedUnpool,
    MaxPoolWithIndices,
    MaxUnpool,
    conv_norm_act,
    depthwise_conv,
    dilated_conv,
    grouped_conv,
    pointwise_conv,
    same_padding,
)
from cnnzoo.layers.dense import DenseBlock, DenseLayer, Transition
from cnnzoo.layers.fire import Fire
from cnnzoo.layers.heads import ClassifierHead, FullyConvHead, fc_classifier
from cnnzoo.layers.inception import (
    InceptionA,
    InceptionAuxV1,
    InceptionAuxV3,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionV1,
)
from cnnzoo.layers.mbconv import MBConv, SqueezeExcitation, make_divisible
from cnnzoo.layers.residual import BasicBlock, Bottleneck, ZeroPadShortcut, bottleneck_width
from cnnzoo.layers.stochastic_depth import StochasticDepth, linear_drop_rates
from cnnzoo.layers.upsample import UnpoolStage

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ClassifierHead",
    "ConvNormAct",
    "ConvTransposeNormAct",
    "DenseBlock",
    "DenseLayer",
    "DepthwiseSeparableConv",
    "FactorizedConv",
    "Fire",
    "FixedUnpool",
    "FullyConvHead",
    "InceptionA",
    "InceptionAuxV1",
    "InceptionAuxV3",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionV1",
    "MBConv",
    "MaxPoolWithIndices",
    "MaxUnpool",
    "SqueezeExcitation",
    "StochasticDepth",
    "Transition",
    "UnpoolStage",
    "ZeroPadShortcut",
    "bottleneck_width",
    "conv_norm_act",
    "depthwise_conv",
    "dilated_conv",
    "fc_classifier",
    "grouped_conv",
    "linear_drop_rates",
    "make_divisible",
    "pointwise_conv",
    "same_padding",
]
