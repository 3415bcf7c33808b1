"""Learned and fixed upsampling for decoders.

Two ways a decoder doubles (or multiplies) its resolution:

- a transposed convolution ("up-convolution", "deconvolution"), learned; FCN initializes it
  to bilinear interpolation ("we initialize the 2x upsampling to bilinear interpolation,
  but allow the parameters to be learned", Long, Shelhamer, Darrell 2015, section 4.2);
- fixed upsampling (nearest neighbour or bilinear) followed by a 2x2 convolution: the
  lecture notes' "upsampling followed by 2x2 convolution", which has no overlapping kernel
  copies and so none of the checkerboard artefacts of a stride-2 transposed conv whose
  kernel size is not a multiple of its stride (Odena, Dumoulin, Olah, "Deconvolution and
  Checkerboard Artifacts", Distill 2016).

And one way a decoder undoes a max-pooling: :class:`UnpoolStage` unpools to a sparse map
(to where the maxima were, or a bed of nails) and fills it in by 3x3 convolutions or
transposed convolutions (SegNet's decoder; seed 001's image generation).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, ConvTransposeNormAct, FixedUnpool, MaxUnpool

__all__ = [
    "UNPOOL_MODES", "UnpoolStage", "UpMode", "UpsampleConv", "bilinear_kernel", "bilinear_transposed_conv",
    "init_bilinear_", "up_block",
]

UpMode = Literal["transposed", "nearest", "bilinear"]
UP_MODES: tuple[str, ...] = ("transposed", "nearest", "bilinear")
UNPOOL_MODES: tuple[str, ...] = ("indices", "fixed")


def bilinear_kernel(kernel_size: int) -> torch.Tensor:
    """The ``k x k`` kernel of bilinear interpolation: ``(1 - |x - c| / f)(1 - |y - c| / f)``
    with ``f = ceil(k / 2)`` and centre ``c = f - 1`` (k even: ``f - 0.5``).

    A transposed conv with this kernel and stride ``f`` interpolates bilinearly: each input
    value is spread over its ``k x k`` neighbourhood with weights that sum to 1 at every
    interior output pixel.
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be at least 1, got {kernel_size}")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    position = torch.arange(kernel_size, dtype=torch.float64)
    profile = 1 - (position - center).abs() / factor
    return torch.outer(profile, profile).float()


def bilinear_transposed_conv(channels: int, factor: int, bias: bool = False) -> nn.ConvTranspose2d:
    """A ``channels -> channels`` transposed conv that upsamples by ``factor``, initialized
    to bilinear interpolation of each channel separately (kernel ``2 * factor``, stride
    ``factor``, padding ``factor // 2``: an ``H x W`` map becomes ``factor*H x factor*W``
    for even factors; FCN crops odd cases itself).

    Every channel pair is a learnable weight (FCN's "deconvolution" layers are full
    ``K x K`` maps between score channels); only the diagonal starts non-zero.
    """
    if factor < 1:
        raise ValueError(f"upsampling factor must be at least 1, got {factor}")
    kernel_size = 2 * factor
    layer = nn.ConvTranspose2d(channels, channels, kernel_size, stride=factor, padding=factor // 2, bias=bias)
    return init_bilinear_(layer)


def init_bilinear_(layer: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """Set a square ``C -> C`` transposed conv to bilinear interpolation of each channel
    (:func:`bilinear_kernel` of its kernel size on the diagonal, zeros elsewhere and in the
    bias), in place; returns it."""
    if layer.in_channels != layer.out_channels or layer.kernel_size[0] != layer.kernel_size[1]:
        raise ValueError("bilinear initialization needs a C -> C transposed conv with a square kernel")
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(layer.kernel_size[0])
        for channel in range(layer.in_channels):
            layer.weight[channel, channel] = kernel
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


class UpsampleConv(nn.Module):
    """Fixed upsampling by ``scale`` (nearest or bilinear), then a 2x2 convolution.

    The 2x2 conv is applied to the upsampled map with one pixel of zero padding on the
    right and bottom, so the output keeps the upsampled size (``scale*H x scale*W``), like
    the 2x2 stride-2 transposed conv it replaces, and halves the channels the same way.
    Children: ``up`` (``nn.Upsample``) and ``conv``.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "nearest", scale: int = 2) -> None:
        super().__init__()
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"upsampling mode must be 'nearest' or 'bilinear', got {mode!r}")
        align = False if mode == "bilinear" else None
        self.up = nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pad (left, right, top, bottom) = (0, 1, 0, 1): a 2x2 "valid" conv would lose a pixel.
        return self.conv(F.pad(self.up(x), (0, 1, 0, 1)))


def up_block(in_channels: int, out_channels: int, mode: str = "transposed") -> nn.Module:
    """A x2 upsampling that also maps ``in_channels`` to ``out_channels``: a 2x2 stride-2
    transposed conv (``mode="transposed"``, U-Net's up-convolution) or ``UpsampleConv``."""
    if mode not in UP_MODES:
        raise ValueError(f"upsampling must be one of {', '.join(UP_MODES)}; got {mode!r}")
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
    return UpsampleConv(in_channels, out_channels, mode=mode)


class UnpoolStage(nn.Module):
    """A 2x2 unpooling, then 3x3 conv-BN-ReLU layers ``widths[0] -> widths[1] -> ...``.

    ``forward(x, indices, size)``: ``indices`` from the encoder's
    :class:`~cnnzoo.layers.conv.MaxPoolWithIndices` (ignored by ``unpool="fixed"``), ``size``
    the map's size before that pooling (so odd sizes come back exactly).

    Args:
        widths: channels in, then after each conv (at least two entries).
        transposed: stride-1 transposed convs instead of convs (same weights and
            multiply-adds, the kernel flipped and its channels swapped; DeconvNet's
            "deconvolution" layers).
        unpool: ``"indices"`` (:class:`~cnnzoo.layers.conv.MaxUnpool`, values back where
            their maxima were) or ``"fixed"`` (:class:`~cnnzoo.layers.conv.FixedUnpool`).
        identity_output: the last layer without norm and activation (an image's pixels).

    Children: ``unpool`` and ``convs`` (a sequence of
    :class:`~cnnzoo.layers.conv.ConvNormAct` or :class:`~cnnzoo.layers.conv.ConvTransposeNormAct`).
    """

    def __init__(
        self, widths: list[int], transposed: bool = False, unpool: str = "indices", identity_output: bool = False
    ) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"an unpooling stage needs its input width and at least one conv's, got {widths}")
        if unpool not in UNPOOL_MODES:
            raise ValueError(f"unpool must be one of {', '.join(UNPOOL_MODES)}; got {unpool!r}")
        self.unpool = MaxUnpool(kernel_size=2, stride=2) if unpool == "indices" else FixedUnpool(2)
        pairs = list(zip(widths, widths[1:]))
        self.convs = nn.Sequential(*(
            self._layer(c_in, c_out, transposed, plain=identity_output and index == len(pairs) - 1)
            for index, (c_in, c_out) in enumerate(pairs)
        ))

    @staticmethod
    def _layer(c_in: int, c_out: int, transposed: bool, plain: bool) -> nn.Module:
        norm, act = (None, None) if plain else (nn.BatchNorm2d, nn.ReLU)
        if transposed:
            return ConvTransposeNormAct(c_in, c_out, 3, stride=1, padding=1, norm_layer=norm, act_layer=act)
        return ConvNormAct(c_in, c_out, 3, norm_layer=norm, act_layer=act)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        return self.convs(self.unpool(x, indices, output_size=size))
