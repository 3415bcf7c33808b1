"""U-Net (Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015).

A contracting path of four levels (two unpadded 3x3 convs + ReLU, then a 2x2 max-pool that
halves the size; the channels double from 64 at each level), a bridge (two 3x3 convs, 1024
channels), an expansive path of four steps (a 2x2 up-convolution that doubles the size and
halves the channels, concatenation with the centre-cropped map of the same level, two 3x3
convs) and a 1x1 conv to the classes: 23 convolutional layers, 31,030,658 parameters for one
input channel and two classes.

Unpadded convolutions each lose a one-pixel border, so the output is the centre of the
input (the paper's Fig. 1, one side length):

=========  =================================  ==========  =========================
level      contracting path                   channels    expansive path
=========  =================================  ==========  =========================
1          572 -> 570 -> 568, pool -> 284     64          392 -> 390 -> 388, 1x1 conv
2          284 -> 282 -> 280, pool -> 140     128         200 -> 198 -> 196, up -> 392
3          140 -> 138 -> 136, pool -> 68      256         104 -> 102 -> 100, up -> 200
4          68 -> 66 -> 64, pool -> 32         512         56 -> 54 -> 52, up -> 104
bridge     32 -> 30 -> 28, up -> 56           1024
=========  =================================  ==========  =========================

so 572 -> 388: a border of 92 pixels on each side. Every pooling needs an even side ("it is
important to select the input tile size such that all 2x2 max-pooling operations are
applied to a layer with an even x- and y-size", section 2), which leaves the valid sides
``188 + 16k`` (depth 4); :func:`unet_output_side` walks the table for any side and depth.
The paper segments a large image with overlapping tiles, extrapolating the missing context
at the border by mirroring (Fig. 2): ``auto_pad=True`` does exactly that for one image.

Options beyond the paper: padded ("same") convolutions (output = input size), batch norm
after every conv, fixed upsampling then a 2x2 conv in place of the transposed conv (the
lecture notes' artefact-free variant), any depth and width, and any registered classifier
as the contracting path (:class:`~cnnzoo.models.encoder_unet.EncoderUNet`).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from cnnzoo.layers.spatial import mirror_pad
from cnnzoo.layers.unet_blocks import DoubleConv, UNetUpBlock, fan_in_normal_init
from cnnzoo.layers.upsample import UP_MODES
from cnnzoo.models._base import check_choice, check_flag, check_positive_int
from cnnzoo.models._register import register_model
from cnnzoo.models._segmenter import Segmenter
from cnnzoo.models.encoder_unet import EncoderUNet

__all__ = [
    "EncoderUNet",  # defined in encoder_unet.py; the "unet" builder makes one for an encoder
    "UNet",
    "auto_pad_plan",
    "is_valid_side",
    "level_loss",
    "min_valid_side",
    "nearest_valid_sides",
    "unet",
    "unet_border",
    "unet_output_side",
]

PAPER = "Ronneberger, Fischer, Brox, U-Net: Convolutional Networks for Biomedical Image Segmentation"

# Pixels one level's two unpadded 3x3 convs take off a side length (2 each); 0 when padded.
UNPADDED_LEVEL_LOSS = 4


# ============================================================================ size arithmetic
# One side length at a time: height and width go through the network independently.

def level_loss(padding: bool) -> int:
    """Pixels a level (two 3x3 convs) takes off a side: 4 unpadded, 0 padded."""
    return 0 if padding else UNPADDED_LEVEL_LOSS


def unet_output_side(side: int, depth: int = 4, padding: bool = False) -> int | None:
    """The side length of U-Net's logits for an input side ``side``, or ``None`` where the
    network cannot take it (a pooling would meet an odd side, or a map would vanish).

    Walks the layer table: each of the ``depth`` levels loses :func:`level_loss` pixels and
    then needs an even side to halve; the bridge loses them once more; each of the ``depth``
    expansive steps doubles the side and loses them again. 572 -> 388 for the paper's net.
    """
    loss = level_loss(padding)
    for _ in range(depth):  # contracting path
        side -= loss
        if side < 2 or side % 2:
            return None
        side //= 2
    side -= loss  # bridge
    if side < 1:
        return None
    for _ in range(depth):  # expansive path
        side = 2 * side - loss
        if side < 1:
            return None
    return side


def is_valid_side(side: int, depth: int = 4, padding: bool = False) -> bool:
    """Whether U-Net of this depth takes an input side ``side`` as it is."""
    return unet_output_side(side, depth, padding) is not None


@lru_cache(maxsize=None)
def min_valid_side(depth: int = 4, padding: bool = False) -> int:
    """The smallest valid input side: 188 for the paper's net (logits 4 pixels wide), 16 for
    depth 4 with padded convs.

    Running the contracting path backwards from a bridge input of ``b`` pixels, every valid
    side is ``2**depth * b + loss * (2**depth - 1)``; the smallest ``b`` whose expansive path
    keeps at least one pixel gives the minimum, and every ``2**depth`` pixels more is valid.
    """
    step, offset = 2**depth, level_loss(padding) * (2**depth - 1)
    bridge = 1
    while unet_output_side(step * bridge + offset, depth, padding) is None:
        bridge += 1
    return step * bridge + offset


def nearest_valid_sides(side: int, depth: int = 4, padding: bool = False) -> tuple[int | None, int]:
    """The largest valid side ``<= side`` (``None`` below the minimum) and the smallest valid
    side ``>= side``: ``(556, 572)`` for 570 in the paper's net, ``(572, 572)`` for 572."""
    smallest, step = min_valid_side(depth, padding), 2**depth
    if side < smallest:
        return None, smallest
    below = smallest + (side - smallest) // step * step
    return below, below if below == side else below + step


def unet_border(depth: int = 4, padding: bool = False) -> int:
    """Input side minus output side, the same for every valid side: 184 for the paper's net
    (92 pixels of context on each side of the output), 0 with padded convs."""
    smallest = min_valid_side(depth, padding)
    return smallest - unet_output_side(smallest, depth, padding)


def auto_pad_plan(side: int, depth: int = 4, padding: bool = False) -> tuple[int, int]:
    """How ``auto_pad`` handles an input side: ``(padded side, pixels mirrored before it)``.

    The padded side is the smallest valid one whose output still covers the whole input
    (``>= side + border``). Half the border (the context the network eats on the leading
    side: 92 pixels at depth 4, 0 with padded convs) is mirrored before the input and the
    rest after it, so the first ``side`` pixels of the logits are the input's, each aligned
    with its pixel, and the pooling grid always starts half a border before the input,
    whatever its size (as in overlap-tile prediction, :mod:`cnnzoo.engine.tiling`).
    """
    border = unet_border(depth, padding)
    padded = nearest_valid_sides(side + border, depth, padding)[1]
    return padded, border // 2


def _size_rule(depth: int, padding: bool) -> str:
    step = 2**depth
    if padding:
        return f"multiples of {step}"
    return f"{min_valid_side(depth, padding)} + {step}k"


def _nearest_text(side: int, depth: int, padding: bool) -> str:
    below, above = nearest_valid_sides(side, depth, padding)
    if below is None:
        return f"nearest valid size {above}"
    return f"nearest valid sizes {below} and {above}"


# ============================================================================ the paper's U-Net

class UNet(Segmenter):
    """U-Net from its level widths ``base_width * 2**level``.

    Children: ``encoder`` (``depth`` :class:`~cnnzoo.layers.unet_blocks.DoubleConv`, shallow
    to deep), ``pool`` (2x2 max-pool), ``bridge``, ``decoder`` (``depth``
    :class:`~cnnzoo.layers.unet_blocks.UNetUpBlock`, in the order they run: deep to
    shallow) and ``head`` (the 1x1 conv).

    Args:
        num_classes, in_chans: output classes and input channels (2 and 1 in the paper).
        base_width: channels of the first level (64).
        depth: number of poolings (4).
        padding: padded ("same") 3x3 convs: the output has the input's size, and a side
            must be a multiple of ``2**depth``. ``False`` (the paper): unpadded convs, the
            output is the centre of the input (572 -> 388) and a side must be
            ``min_valid_side + k * 2**depth`` (188 + 16k).
        batch_norm: batch norm between every 3x3 conv and its ReLU (the conv then has no bias).
        upsampling: ``"transposed"`` (the paper's 2x2 up-convolution), ``"nearest"`` or
            ``"bilinear"`` (fixed upsampling then a 2x2 conv).
        auto_pad: take any input of at least 1x1: mirror its borders to the next size the
            network takes and crop the logits back, so that **the output always has the
            input's size**, pixel for pixel aligned with it (:func:`auto_pad_plan`). With
            unpadded convs this is the paper's overlap-tile strategy for a single tile
            (Fig. 2): the input is mirrored by the 92-pixel border (depth 4) before it and at
            least that after it, so the whole image is segmented, its edges from mirrored
            context, and the result equals overlap-tile prediction
            (:func:`cnnzoo.engine.tiling.predict_tiled`) of the same image.

    A side the network cannot take raises ``ValueError`` naming the nearest sizes that work.
    Weights: the paper's Gaussian with std ``sqrt(2 / N)`` (N inputs per unit).
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_chans: int = 1,
        base_width: int = 64,
        depth: int = 4,
        padding: bool = False,
        batch_norm: bool = False,
        upsampling: str = "transposed",
        auto_pad: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_positive_int("base_width", base_width)
        check_positive_int("depth", depth)
        for name, flag in (("padding", padding), ("batch_norm", batch_norm), ("auto_pad", auto_pad)):
            check_flag(name, flag)
        check_choice("upsampling", upsampling, UP_MODES)
        self.depth, self.padding, self.auto_pad = depth, padding, auto_pad
        widths = [base_width * 2**level for level in range(depth + 1)]
        inputs = [in_chans, *widths[:-2]]
        self.encoder = nn.ModuleList(
            DoubleConv(c_in, width, padding, batch_norm) for c_in, width in zip(inputs, widths[:-1])
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bridge = DoubleConv(widths[-2], widths[-1], padding, batch_norm)
        self.decoder = nn.ModuleList(
            UNetUpBlock(widths[level + 1], widths[level], widths[level], padding, batch_norm, upsampling)
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(base_width, num_classes, kernel_size=1)
        self.min_input_size = 1 if auto_pad else min_valid_side(depth, padding)
        fan_in_normal_init(self)

    # -- sizes --------------------------------------------------------------------------
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The logits' size: the input's with ``auto_pad``, else the centre left by the
        unpadded convs (572 -> 388), or the input's with padded convs."""
        if self.auto_pad:
            return height, width
        self.check_size(height, width)
        return (unet_output_side(height, self.depth, self.padding), unet_output_side(width, self.depth, self.padding))

    def check_size(self, height: int, width: int) -> None:
        """``ValueError`` for a side the network cannot take, naming the nearest that work."""
        if self.auto_pad:
            return
        for axis, side in (("height", height), ("width", width)):
            if not is_valid_side(side, self.depth, self.padding):
                kind = "padded" if self.padding else "unpadded (valid)"
                raise ValueError(
                    f"UNet (depth {self.depth}, {kind} convolutions) cannot take a {height}x{width} input: "
                    f"{axis} {side} is not a size it takes ({_size_rule(self.depth, self.padding)}); "
                    f"{_nearest_text(side, self.depth, self.padding)}; or create it with auto_pad=True"
                )

    # -- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if not self.auto_pad:
            return self._forward_unchecked(x)
        # Python ints: an exporter that traces sizes as tensors would otherwise record this
        # arithmetic in the graph (the spatial size of an exported graph is fixed anyway).
        height, width = int(x.shape[-2]), int(x.shape[-1])
        padded_h, top = auto_pad_plan(height, self.depth, self.padding)
        padded_w, left = auto_pad_plan(width, self.depth, self.padding)
        x = mirror_pad(x, top, padded_h - height - top, left, padded_w - width - left)
        return self._forward_unchecked(x)[..., :height, :width]

    def _forward_unchecked(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for step, skip in zip(self.decoder, reversed(skips)):
            x = step(x, skip)
        return self.head(x)


# ============================================================================ registration

@register_model(
    "unet", family="unet", paper=PAPER, year=2015, task="segmentation", default_input=(1, 572, 572),
    min_input_size=188, dataset="ISBI 2012 EM segmentation",
)
def unet(
    num_classes: int = 2,
    in_chans: int = 1,
    base_width: int = 64,
    depth: int = 4,
    padding: bool | None = None,
    batch_norm: bool = False,
    upsampling: str = "transposed",
    encoder: str | None = None,
    auto_pad: bool = False,
) -> Segmenter:
    """U-Net: the paper's network by default (572 -> 388, 31,030,658 parameters); see
    :class:`UNet` for the options. ``encoder`` (a registered classifier name) builds an
    :class:`EncoderUNet` instead, which needs padded convolutions (the classifier pads its
    own, so the decoder must too). ``padding=None`` means the paper's unpadded convolutions
    without an encoder and padded ones with an encoder."""
    if padding is None:
        padding = encoder is not None
    if encoder is None:
        return UNet(num_classes, in_chans, base_width, depth, padding, batch_norm, upsampling, auto_pad)
    check_flag("padding", padding)
    if not padding:
        raise ValueError(
            f"a U-Net over the classifier {encoder!r} needs padding=True: the classifier pads its "
            "convolutions, so the decoder's must be padded too for the maps to line up"
        )
    return EncoderUNet(encoder, num_classes, in_chans, base_width, depth, batch_norm, upsampling, auto_pad)
