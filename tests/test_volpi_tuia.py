"""Volpi and Tuia's three systems (cnnzoo.models.volpi_tuia): output at the input's resolution,
parameter counts by an independent per-layer formula, the dense patch classifier equal to the
patch classifier on each patch, and a few training steps lowering the loss.

The paper's layer tables were not available (see the module docstring), so there is no
published parameter count to compare with; the formulas below are the layer tables of the
module docstring, counted by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.registry import create_model

NAMES = ("volpi_tuia_pc", "volpi_tuia_spl", "volpi_tuia_fpl")


def conv(k: int, c_in: int, c_out: int, bias: bool = False) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def expected_params(name: str, w: int, k: int = 6, c: int = 3) -> int:
    if name == "volpi_tuia_pc":  # conv5 w, conv5 2w, conv3 2w (BN each), fc 3x3x2w -> 4w, fc 4w -> K
        return (conv(5, c, w) + bn(w) + conv(5, w, 2 * w) + bn(2 * w) + conv(3, 2 * w, 2 * w) + bn(2 * w)
                + 9 * 2 * w * 4 * w + 4 * w + 4 * w * k + k)
    if name == "volpi_tuia_spl":  # conv5 w, conv5 2w, conv3 4w, conv3 4w (BN each), 1x1 -> 64K
        return (conv(5, c, w) + bn(w) + conv(5, w, 2 * w) + bn(2 * w) + conv(3, 2 * w, 4 * w) + bn(4 * w)
                + conv(3, 4 * w, 4 * w) + bn(4 * w) + conv(1, 4 * w, 64 * k, bias=True))
    down = [c, w, 2 * w, 4 * w, 4 * w]  # 3x3 convs with BN
    up = [4 * w, 4 * w, 2 * w, w, w]  # 4x4 transposed convs with BN
    return (sum(conv(3, a, b) + bn(b) for a, b in zip(down, down[1:]))
            + sum(conv(4, a, b) + bn(b) for a, b in zip(up, up[1:])) + conv(1, w, k, bias=True))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(37, 45), (64, 64)])
def test_logits_have_the_input_resolution(name, size):
    model = create_model(name, width=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 6, *size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("width", [4, 16])
def test_parameter_count_matches_the_layer_table(name, width):
    model = create_model(name, width=width)
    assert sum(p.numel() for p in model.parameters()) == expected_params(name, width)


def test_dense_patch_classification_is_the_classifier_on_every_patch():
    torch.manual_seed(0)
    model = create_model("volpi_tuia_pc", width=4).eval()
    for bn_layer in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial statistics
        bn_layer.running_mean.uniform_(-0.5, 0.5)
        bn_layer.running_var.uniform_(0.5, 2.0)
    image = torch.randn(1, 3, 20, 23)
    padded = F.pad(image, (15, 16, 15, 16))  # pixel (i, j) is pixel (16, 16) of the patch at (i, j)
    with torch.no_grad():
        dense = model(image)
        for i, j in [(0, 0), (5, 17), (19, 22), (10, 3)]:
            patch = padded[:, :, i:i + 32, j:j + 32]
            torch.testing.assert_close(dense[0, :, i, j], model.patch_net(patch)[0], atol=1e-5, rtol=1e-5)


def test_label_patches_tile_the_image():
    # Each 8x8 block's scores come from one output position: changing the classifier's bias of
    # one (class, position-in-patch) channel moves exactly that pixel of every block.
    model = create_model("volpi_tuia_spl", width=4).eval()
    image = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        before = model(image)
        model.classifier.bias[2 * 64 + 3 * 8 + 5] += 1.0  # class 2, row 3, column 5 of each patch
        moved = (model(image) - before).abs() > 1e-6
    expected = torch.zeros_like(moved)
    expected[0, 2, 3::8, 5::8] = True
    assert torch.equal(moved, expected)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_the_loss(name):
    torch.manual_seed(0)
    model = create_model(name, width=4)
    images = torch.rand(2, 3, 16, 16)
    target = (images[:, 0] > 0.5).long() * 4  # a pixel-wise rule the nets can pick up at once
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_patch_classifier_refuses_other_sizes():
    model = create_model("volpi_tuia_pc", width=4)
    with pytest.raises(ValueError, match="32x32"):
        model.patch_net(torch.randn(1, 3, 30, 30))
