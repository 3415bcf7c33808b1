"""A convolutional auto-encoder: image generation via a CNN, as the CS-568 notes draw it.

Seed 001, "Image Generation via CNN": the "subsampled 2x2 result [is] unpooled to a sparse
4x4 result that is then filled in via transposed convolution"; "repeatedly upsample to
obtain output of the same size as input"; "to generate images, use identity function at
output". This is the decoder of Noh, Hong and Han's DeconvNet (ICCV 2015: unpooling, then
"deconvolution" layers that densify the sparse map), put behind a VGG-like encoder and
trained to give its input back, as in Masci et al.'s convolutional auto-encoders
(ICANN 2011, max-pooled encoder):

=======  =====================================  ==========================================
stage    encoder                                decoder (deep to shallow)
=======  =====================================  ==========================================
1        2 x (3x3 conv-BN-ReLU, 32), max-pool    unpool, 3x3 transposed conv-BN-ReLU 32,
                                                 3x3 transposed conv to the image's channels
2        2 x (3x3 conv-BN-ReLU, 64), max-pool    unpool, 2 x 3x3 transposed conv-BN-ReLU
                                                 (64, then 32)
3        2 x (3x3 conv-BN-ReLU, 128), max-pool   unpool, 2 x 3x3 transposed conv-BN-ReLU
                                                 (128, then 64)
=======  =====================================  ==========================================

The last layer has no norm and no activation: the identity output, so the network gives
pixel values (the [0, 1] image, not the normalized input it was fed). A 28 x 28
Fashion-MNIST image is pooled to 14, 7 and 3 pixels a side; unpooling is given the size
before each pooling, so odd sizes come back exactly.

Unpooling (``unpool``):

- ``"indices"``: each value goes back to where its maximum was (the encoder's "switches",
  SegNet and DeconvNet);
- ``"fixed"``: each value goes to the top-left corner of its 2 x 2 cell, the rest zeros (a
  "bed of nails"). The decoder then needs nothing from the encoder but the code, so
  :meth:`ConvAutoencoder.decode` generates an image from any code map.

Each stride-1 transposed conv is the convolution with the kernel flipped and its input and
output channels swapped (same weights, same multiply-adds); what makes the map dense is
that every sparse value is spread over a 3 x 3 neighbourhood.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct, MaxPoolWithIndices
from cnnzoo.layers.unet_blocks import fan_in_normal_init
from cnnzoo.layers.upsample import UNPOOL_MODES, UnpoolStage
from cnnzoo.models._base import PretrainedMixin, check_choice, check_image_batch, check_positive_int
from cnnzoo.models._register import register_model

__all__ = ["UNPOOL_MODES", "ConvAutoencoder", "conv_autoencoder"]

PAPER = (
    "Noh, Hong, Han, Learning Deconvolution Network for Semantic Segmentation (unpooling + transposed "
    "convolution), as the auto-encoder of Masci et al., Stacked Convolutional Auto-Encoders"
)
WIDTHS = (32, 64, 128)


class ConvAutoencoder(PretrainedMixin, nn.Module):
    """Encoder of conv-BN-ReLU stages closed by 2 x 2 max-pools; decoder of unpooling and
    3 x 3 transposed convs back to the input's size and channels (see the module docstring).

    Args:
        in_chans: channels of the images (and of the output).
        widths: channels of each encoder stage; its length is the number of poolings (an
            input needs at least ``2**len(widths)`` pixels a side).
        convs_per_stage: 3x3 convs in each encoder stage (the decoder mirrors them).
        unpool: ``"indices"`` or ``"fixed"`` (:data:`UNPOOL_MODES`).

    Children: ``encoder`` (one ``nn.Sequential`` of convs per stage), ``pools``,
    ``decoder`` (one :class:`~cnnzoo.layers.upsample.UnpoolStage` of transposed convs per
    stage, deep to shallow, SegNet's transposed decoder stage; the shallowest ends in the
    identity-output layer).
    """

    def __init__(
        self, in_chans: int = 1, widths: tuple[int, ...] = WIDTHS, convs_per_stage: int = 2, unpool: str = "indices"
    ) -> None:
        super().__init__()
        check_positive_int("in_chans", in_chans)
        check_positive_int("convs_per_stage", convs_per_stage)
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage")
        for width in widths:
            check_positive_int("widths", width)
        check_choice("unpool", unpool, UNPOOL_MODES)
        self.in_chans, self.widths, self.unpool_mode = in_chans, widths, unpool
        self.min_input_size = 2 ** len(widths)
        stages, channels = [], in_chans
        for width in widths:
            stages.append(nn.Sequential(*(ConvNormAct(channels if i == 0 else width, width, 3)
                                          for i in range(convs_per_stage))))
            channels = width
        self.encoder = nn.ModuleList(stages)
        self.pools = nn.ModuleList(MaxPoolWithIndices(2, 2) for _ in widths)
        outputs = (in_chans, *widths[:-1])  # each decoder stage ends at the width above it
        # identity_output: the shallowest stage's last layer gives pixel values (no norm, no activation)
        self.decoder = nn.ModuleList(
            UnpoolStage([width] * convs_per_stage + [out], transposed=True, unpool=unpool, identity_output=stage == 0)
            for stage, (width, out) in reversed(list(enumerate(zip(widths, outputs))))
        )
        fan_in_normal_init(self)

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, self.min_input_size, type(self).__name__)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
        """The code (the deepest pooled map), and per pooling its indices and the size it pooled."""
        self.check_input(x)
        indices, sizes = [], []
        for stage, pool in zip(self.encoder, self.pools):
            x = stage(x)
            sizes.append((int(x.shape[-2]), int(x.shape[-1])))
            x, where = pool(x)
            indices.append(where)
        return x, indices, sizes

    def decode(
        self, code: torch.Tensor, indices: list[torch.Tensor] | None = None, sizes: list[tuple[int, int]] | None = None
    ) -> torch.Tensor:
        """The image a code generates: unpool, fill in by transposed convs, to the input size.

        ``indices`` (shallow to deep, as :meth:`encode` gives them) are needed with
        ``unpool="indices"``; with ``"fixed"`` they are not used. ``sizes`` are the sizes
        before each pooling (shallow to deep); by default each unpooling doubles the map.
        """
        if self.unpool_mode == "indices" and indices is None:
            raise ValueError('unpool="indices" decodes with the encoder\'s pooling indices; pass indices, '
                             'or build the model with unpool="fixed" to decode a code alone')
        if sizes is None:
            height, width = code.shape[-2:]
            sizes = [(int(height) * 2**k, int(width) * 2**k) for k in range(len(self.widths), 0, -1)]
        x = code
        for depth, stage in zip(reversed(range(len(self.widths))), self.decoder):
            x = stage(x, indices[depth] if indices is not None else None, sizes[depth])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code, indices, sizes = self.encode(x)
        return self.decode(code, indices, sizes)


@register_model(
    "conv_autoencoder", family="autoencoder", paper=PAPER, year=2015, task="reconstruction",
    default_input=(1, 28, 28), min_input_size=8, dataset="Fashion-MNIST (reconstruction)",
)
def conv_autoencoder(
    in_chans: int = 1, widths: tuple[int, ...] = WIDTHS, convs_per_stage: int = 2, unpool: str = "indices"
) -> ConvAutoencoder:
    """A convolutional auto-encoder: max-pooled conv stages, then unpooling and transposed
    convs back to the input, with an identity output (seed 001); see :class:`ConvAutoencoder`."""
    return ConvAutoencoder(in_chans, widths, convs_per_stage, unpool)
