"""The ``cnnzoo explain`` topics where the lecture notes are wrong or contradict themselves:
each quotes the notes exactly (seed file and words), says what is true and why, and shows
the evidence computed by cnnzoo on real ``torch.nn`` modules.

* seed 000: max-pooling "reduces the computational cost by decreasing the number of
  trainable parameters" -- pooling has none; it shrinks the map, hence the later layers' cost;
* seed 001: fully convolutional networks have "No pooling" and, five lines on, "convolution,
  pooling and upsampling" -- FCN keeps the classifier's pooling and drops its dense layers;
* seeds 000 and 003 give U-Net a transposed convolution ("deconvolution"), seed 002 says it
  "Does not use transposed or fractional stride convolutions" and so has "fewer parameters".

Two topics count layers of the zoo's own models (fcn32s, vgg16, unet). This module may not
import the registry (``analysis`` stands beside the models), so the caller hands in the
factory: ``create_model`` (the CLI passes :func:`cnnzoo.registry.create_meta_model`).
Without one those lines say how to get them; every other number is computed regardless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.analysis.counts import count_macs, count_params

__all__ = [
    "CORRECTIONS", "ModelFactory", "Quote", "SEED_FILES", "fcn_pooling", "notes", "pooling_parameters",
    "transposed_as_upsample_conv", "unet_upconv",
]

ModelFactory = Callable[..., nn.Module]  # create_model(name, **options)

# The five lecture notes (the project's shared/seeds/ folder), by their number.
SEED_FILES = {
    "000": "000_7bd0636350c1a03b.txt", "001": "001_ac2cd715f1d10492.txt", "002": "002_34495b45f8afade9.txt",
    "003": "003_9b545c6d3d38b656.txt", "004": "004_039df489315cadb5.txt",
}


class Quote(NamedTuple):
    seed: str  # "000" .. "004", a key of SEED_FILES
    text: str  # the notes' words, exactly as they stand in the file

    def __str__(self) -> str:
        return f'seed {self.seed} ({SEED_FILES[self.seed]}): "{self.text}"'


# topic -> (what the notes say, what is true in one line). The tests check every quote
# against the seed files when they are there.
CORRECTIONS: dict[str, tuple[tuple[Quote, ...], str]] = {
    "pooling-params": (
        (Quote("000", "Next follows a 2x2 max-pooling, where the spatial dimensions (height and width) of the "
                      "feature maps are reduced by half"),
         Quote("000", "This reduces the computational cost by decreasing the number of trainable parameters")),
        "max-pooling has no parameters; it quarters the map, so the LATER layers cost less "
        "(a conv's MACs, a dense layer's MACs and weights)",
    ),
    "fcn-pooling": (
        (Quote("001", "Fully convolutional networks. No pooling and no fully connected layer."),
         Quote("001", "Only locally connected layers: convolution, pooling and upsampling.")),
        "FCN keeps the classifier's pooling layers (its output stride 32 comes from them) and has "
        "no fully connected layers",
    ),
    "unet-upconv": (
        (Quote("000", "The decoder block starts with a 2x2 transpose convolution"),
         Quote("003", "Main additional ingredient in U-Nets is **deconvolution**"),
         Quote("002", "Does not use transposed or fractional stride convolutions"),
         Quote("002", "This results in fewer parameters and avoids artefacts")),
        "the notes contradict each other; U-Net's \"up-conv 2x2\" has the same weights either way, "
        "and at kernel 2, stride 2 no overlap to cause artefacts",
    ),
}


def _quoted(topic: str) -> list[str]:
    quotes, truth = CORRECTIONS[topic]
    return ["The notes say:", *(f"    {q}" for q in quotes), f"What is true: {truth}.", ""]


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def pooling_parameters() -> str:
    """Seed 000: max-pooling does not decrease the number of trainable parameters."""
    c, side, classes = 64, 64, 10  # U-Net's first encoder block: 64 channels, then 2x2 max-pooling
    pool = nn.MaxPool2d(2)
    conv = nn.Conv2d(c, 2 * c, 3, padding=1, bias=False)
    full = (c, side, side)
    # the dense layer reads the flattened map, pooled or not
    dense_full = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, classes))
    dense_pooled = nn.Sequential(pool, nn.Flatten(), nn.Linear(c * (side // 2) ** 2, classes))
    return "\n".join(_quoted("pooling-params") + [
        f"A 2x2 max-pooling takes the largest of four values: count_params(nn.MaxPool2d(2)) = {count_params(pool)},",
        f"count_macs = {count_macs(pool, full)}. What it reduces is the map, {side}x{side} -> {side // 2}x{side // 2},"
        " and so what comes AFTER it:",
        "",
        f"the next 3x3 conv, {c} -> {2 * c} channels (count_params / count_macs):",
        f"    on the {side}x{side} map:          {count_params(conv):>9,} weights, {count_macs(conv, full):>11,} MACs",
        f"    after the pooling ({side // 2}x{side // 2}): {count_params(nn.Sequential(pool, conv)):>9,} weights, "
        f"{count_macs(nn.Sequential(pool, conv), full):>11,} MACs",
        "    (a conv's weights do not depend on the map's size: only its MACs fall, by 4)",
        f"a fully connected layer to {classes} outputs on the flattened map:",
        f"    on the {side}x{side} map:          {count_params(dense_full):>9,} weights, "
        f"{count_macs(dense_full, full):>11,} MACs",
        f"    after the pooling ({side // 2}x{side // 2}): {count_params(dense_pooled):>9,} weights, "
        f"{count_macs(dense_pooled, full):>11,} MACs",
        "    (only a dense layer's weights grow with the map; U-Net has none: \"no fully connected",
        "    neurons are used\", seed 000, so there pooling changes no parameter count at all)",
    ])


def fcn_pooling(create_model: ModelFactory | None = None) -> str:
    """Seed 001: FCN has pooling layers and no fully connected layers (Long et al. 2015)."""
    lines = _quoted("fcn-pooling") + [
        "Long, Shelhamer and Darrell (2015) \"convolutionalize\" a classifier (seed 002): its dense",
        "layers become convolutions, its convolutions and max-poolings stay. The five 2x2 poolings",
        "of VGG16 are why FCN-32s predicts on a grid 2^5 = 32 times coarser than the image and",
        "upsamples by 32 (seed 002: \"This gives a set of rough maps ... due to pooling\").",
        "",
    ]
    if create_model is None:
        return "\n".join(lines + ["`cnnzoo explain fcn-pooling` counts the layers of cnnzoo's fcn32s and vgg16",
                                  "(from Python: explain(\"fcn-pooling\", create_model=cnnzoo.registry.create_meta_model))."])
    lines.append("Counted on cnnzoo's models (isinstance over model.modules()):")
    for name in ("vgg16", "fcn32s"):
        model = create_model(name)
        pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
        stride = 1
        for pool in pools:
            stride *= pool.stride if isinstance(pool.stride, int) else pool.stride[0]
        lines.append(f"    {name:<7} {len(pools)} nn.MaxPool2d (strides multiply to {stride}), "
                     f"{_count(model, nn.Linear)} nn.Linear, {_count(model, nn.Conv2d)} nn.Conv2d")
    return "\n".join(lines)


def transposed_as_upsample_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=2)`` for a 2x2 ``weight`` (``C_in x C_out x 2 x 2``)
    computed as an upsampling followed by a 2x2 convolution: each value is put at the top-left
    of its 2x2 cell, zeros elsewhere (seed 001's sparse unpooled map), one row and column of
    zeros go on the top and left, then a stride-1 conv with the flipped kernel."""
    n, c, h, w = x.shape
    sparse = x.new_zeros(n, c, 2 * h, 2 * w)
    sparse[..., ::2, ::2] = x
    kernel = weight.transpose(0, 1).flip(-1, -2)
    return F.conv2d(F.pad(sparse, (1, 0, 1, 0)), kernel)


def _taps(kernel_size: int) -> list[int]:
    """How many kernel taps reach each pixel of a middle output row of a stride-2 transposed
    conv that doubles an 8x8 map (a kernel of ones on an input of ones)."""
    padding, extra = (kernel_size - 1) // 2, kernel_size % 2  # output 16x16 for k = 2, 3, 4
    layer = nn.ConvTranspose2d(1, 1, kernel_size, stride=2, padding=padding, output_padding=extra, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        return [int(v) for v in layer(torch.ones(1, 1, 8, 8))[0, 0, 7, 4:12].tolist()]


def unet_upconv(create_model: ModelFactory | None = None) -> str:
    """Seeds 000, 002, 003 disagree on U-Net's upsampling; what each reading costs."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, 5, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 3, 2, 2, generator=gen, dtype=torch.float64)
    difference = (transposed_as_upsample_conv(x, weight) - F.conv_transpose2d(x, weight, stride=2)).abs().max().item()
    c, side = 128, 52  # U-Net's last up-step: 128 -> 64 channels, 52x52 -> 104x104 (Ronneberger et al., Fig. 1)
    transposed = nn.ConvTranspose2d(c, c // 2, 2, stride=2)
    resize_conv = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(c, c // 2, 2))
    larger = nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1)
    size = (c, side, side)
    lines = _quoted("unet-upconv") + [
        "Ronneberger et al. (2015) write \"an upsampling of the feature map followed by a 2x2",
        "convolution (\"up-convolution\")\" and draw \"up-conv 2x2\": both readings fit those words, since",
        "a 2x2 stride-2 transposed conv IS an upsampling (to seed 001's sparse map) then a 2x2 conv:",
        f"    largest |conv_transpose2d - (zeros-upsampling, 2x2 conv)| = {difference:.1e}  (random float64)",
        "",
        f"One up-step, {c} -> {c // 2} channels, {side}x{side} -> {2 * side}x{2 * side} (count_params / count_macs):",
        f"    2x2 stride-2 transposed conv:  {count_params(transposed):>7,} weights, {count_macs(transposed, size):>11,} MACs",
        f"    nearest upsampling, 2x2 conv:  {count_params(resize_conv):>7,} weights, {count_macs(resize_conv, size):>11,} MACs",
        f"    4x4 stride-2 transposed conv:  {count_params(larger):>7,} weights, {count_macs(larger, size):>11,} MACs",
        "The same weights at the same kernel size (the fixed upsampling costs 4 times the MACs):",
        "\"fewer parameters\" holds only against a larger transposed kernel, such as FCN's.",
        "Kernel taps reaching each output pixel (a middle row) of stride-2 transposed convs:",
        *(f"    {k}x{k}: {_taps(k)}" for k in (2, 3, 4)),
        "Uneven overlap (3x3: a checkerboard) is what makes artefacts; with kernel = stride nothing",
        "overlaps, so U-Net's 2x2 up-conv has no overlap artefacts in either reading.",
    ]
    if create_model is None:
        return "\n".join(lines + ["`cnnzoo explain unet-upconv` also counts cnnzoo's unet built both ways."])
    counts = {mode: count_params(create_model("unet", upsampling=mode)) for mode in ("transposed", "nearest", "bilinear")}
    return "\n".join(lines + ["cnnzoo's unet (1 channel in, 2 classes), count_params:",
                              *(f"    upsampling=\"{mode}\": {n:,}" for mode, n in counts.items())])


def notes() -> str:
    """Every place the notes are wrong or contradict themselves, with the topic that shows it."""
    lines = ["Where the lecture notes are wrong or contradict themselves (each topic quotes them and",
             "computes the evidence):", ""]
    for topic, (quotes, truth) in CORRECTIONS.items():
        lines += [f"cnnzoo explain {topic}", *(f"    {q}" for q in quotes), f"    -> {truth}.", ""]
    return "\n".join(lines).rstrip("\n")
