"""The receptive field ``summarize`` reports: exact jumps through unpooling and resizing, and
the spatial path kept apart from global context, against values derived by hand."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.analysis import summarize


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):  # summarize runs on meta anyway: no weights are needed
        return cnnzoo.create_model(name)


# --------------------------------------------------------------------------- unpooling

class PoolUnpool(nn.Module):
    """A strided conv, an overlapping max pooling with indices and its unpooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(3, stride=2)

    def forward(self, x):
        y = self.conv(x)
        z, indices = self.pool(y)
        return self.unpool(z, indices, output_size=y.shape[-2:])


def test_unpooling_applies_the_transposed_rule_of_its_pooling():
    s = summarize(PoolUnpool(), (1, 23, 23))
    # conv 3x3 / 2 on 23: 11x11, RF 3, jump 2; pool 3x3 / 2: 5x5, RF 3 + 2 x 2 = 7, jump 4;
    # unpool to 11x11: output position p holds the value of window q when q's argmax is p,
    # and the windows [2q, 2q + 3) that may hold p are ceil(3/2) = 2 neighbours, so
    # RF 7 + (2 - 1) x 4 = 11 and jump 4 / 2 = 2 (in / out sizes would give 4 x 5/11 = 20/11)
    assert [(r.name, r.rf, r.jump) for r in s.rows] == [
        ("conv", (3, 3), (2, 2)), ("pool", (7, 7), (4, 4)), ("unpool", (11, 11), (2, 2))]
    assert all(type(v) is int for r in s.rows for v in r.rf + r.jump)


def test_unpooling_without_its_pooling_uses_the_size_ratio():
    class Unknown(nn.Module):
        def forward(self, x):
            y = F.max_pool2d(x, 3, 2)  # 9 -> 4, RF 3, jump 2
            indices = torch.zeros(y.shape, dtype=torch.long, device=y.device)  # not the pooling's
            return F.max_unpool2d(y, indices, 2, output_size=(9, 9))

    s = summarize(Unknown(), (1, 9, 9))
    # stride round(9 / 4) = 2, window 2: RF 3, jump 2 / 2 = 1 (not 2 x 4/9 = 8/9; the 3x3
    # window of a pooling that made the indices would have added one jump: 5)
    assert s.total.rf == (3, 3) and s.total.jump == (1, 1)


def test_segnet_jumps_are_whole_at_its_default_size():
    size = cnnzoo.model_info("segnet").default_input
    assert size == (3, 360, 480)
    s = summarize(meta_model("segnet"), size)
    # 360 -> 180 -> 90 -> 45 -> 22 -> 11 and back: each 2x2 / 2 unpooling halves the jump
    # exactly, the floored 45 -> 22 included
    assert all(type(v) is int for r in s.rows for v in r.jump)
    # by hand (3x3 convs add 2 jumps, 2x2 poolings one): encoder 5, 6 | 14, 16 | 40, 44 (jump 8) |
    # 92, 100 (jump 16) | 196, 212 (jump 32); decoder at jumps 16, 8, 4, 2, 1 with 3, 3, 3, 2, 1
    # convs: 212 + 96 + 48 + 24 + 8 + 2 = 390, and the 3x3 classifier: 392
    assert s.total.rf == (392, 392) and s.total.jump == (1, 1) and s.total.context == "local"


# --------------------------------------------------------------------------- upsampling and resizing

def test_upsampling_jumps_are_exact_and_a_resize_is_a_fraction():
    def field(resize, size=45):
        s = summarize(nn.Sequential(nn.Conv2d(1, 1, 1), resize), (1, size, size))
        return s, s.total.rf, s.total.jump

    # scale factor 2 on an odd map: jump 1/2, not 45/90 rounded
    assert field(nn.Upsample(scale_factor=2))[2] == (Fraction(1, 2),) * 2
    # aligned corners: 45 -> 89 samples 44 / 88 = 1/2 input pixels apart
    assert field(nn.Upsample(size=89, mode="bilinear", align_corners=True))[1:] == ((2, 2), (Fraction(1, 2),) * 2)
    # a resize to a given size: the pitch in / out = 45/60 = 3/4, shown as a fraction
    s, rf, jump = field(nn.Upsample(size=60, mode="bilinear"))
    assert rf == (2, 2) and jump == (Fraction(3, 4),) * 2
    assert "Receptive field: 2 pixels, jump 3/4" in s.to_table()
    assert json.loads(s.to_json())["total"]["jump"] == [0.75, 0.75]


# --------------------------------------------------------------------------- global context

class SqueezeExcitation(nn.Module):
    """A 3x3 conv gated by a squeeze-and-excitation branch (Hu et al. 2018): mean over the
    map, a 1x1 conv, a sigmoid, multiplied back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        return x * self.fc(self.squeeze(x)).sigmoid()


def test_squeeze_excitation_gates_the_spatial_path():
    # each output is the conv's 3x3 window times a gate computed from the whole map: the
    # spatial path stays 3x3, marked gated (counting the gate as "the whole map" made the
    # field 3 + 9 x 11 here, and spread through every later layer of an SE network)
    s = summarize(SqueezeExcitation(), (2, 10, 12))
    assert s.total.rf == (3, 3) and s.total.jump == (1, 1)
    assert s.total.context == "gated" and s.total.context_from == "squeeze"
    assert {r.name: r.context for r in s.rows} == {"conv": "local", "squeeze": "global", "fc": "global", "": "gated"}
    table = s.to_table()
    assert "3+g" in table and "global context from layer squeeze" in table
    # two gated blocks in a row: the spatial path grows by the second conv only, 3 + 2 = 5
    s = summarize(nn.Sequential(SqueezeExcitation(), SqueezeExcitation()), (2, 10, 12))
    assert s.total.rf == (5, 5) and s.total.context == "gated" and s.total.context_from == "0.squeeze"


def test_global_pooling_and_reductions_are_global():
    # conv (3) then global average pooling: no spatial path left; the path before it was 3
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)), (1, 10, 10))
    assert s.total.rf == (3, 3) and s.total.context == "global" and s.total.context_from == "1"
    assert "Receptive field: global" in s.to_table() and "spatial path before it: 3 pixels" in s.to_table()
    # adaptive pooling to more than one position is local: the conv's 8x8 map -> 4x4, each
    # region 2 inputs wide: 3 + (2 - 1) x 1 = 4, jump 8 / 4 = 2
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(4)), (1, 10, 10))
    assert s.total.context == "local" and s.total.rf == (4, 4) and s.total.jump == (2, 2)
    # a later conv on the pooled vector widens nothing: there is no spatial path to widen
    s = summarize(nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Conv2d(1, 1, 3, padding=1)), (1, 10, 10))
    assert s.total.rf == (1, 1) and s.total.context == "global"


def test_efficientnet_b0_spatial_path_by_hand():
    s = summarize(meta_model("efficientnet_b0"), (3, 224, 224))
    # spatial path, RF += (k - 1) x jump, jump x= stride: stem 3x3 / 2: 3 (jump 2); then one
    # depthwise conv per block (EfficientNet Table 1): k3: 7 | k3 / 2, k3: 11 (4), 19 |
    # k5 / 2, k5: 35 (8), 67 | k3 / 2, 2 x k3: 83 (16), 115, 147 | 3 x k5: 211, 275, 339 |
    # k5 / 2, 3 x k5: 403 (32), 531, 659, 787 | k3: 851
    blocks = [r for r in s.grouped(2) if r.name.startswith("stages.")]
    assert [r.rf[0] for r in blocks] == [7, 11, 19, 35, 67, 83, 115, 147, 211, 275, 339, 403, 531, 659, 787, 851]
    assert [r.jump[0] for r in blocks] == [2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32]
    # the first SE gate's global mean joins in block 0 and every later block is gated; the
    # classifier after global pooling has no spatial path left
    assert [r.context for r in blocks] == ["gated"] * 16
    assert s.total.rf == (851, 851) and s.total.context == "global"
    assert s.total.context_from == "stages.0.0.se.avgpool"


def test_reports_carry_the_context():
    s = summarize(nn.Sequential(SqueezeExcitation(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), (2, 10, 12))
    data = json.loads(s.to_json(depth=1))
    assert [(r["name"], r["rf"], r["context"]) for r in data["rows"]] == [
        ("0", [3, 3], "gated"), ("1", [3, 3], "global"), ("2", [3, 3], "global")]
    assert data["total"]["context"] == "global" and data["total"]["context_from"] == "0.squeeze"
    rows = list(csv.DictReader(io.StringIO(s.to_csv(depth=1))))
    assert [(r["rf"], r["jump"], r["context"]) for r in rows] == [("3", "1", "gated"), ("3", "1", "global")] + [
        ("3", "1", "global")]
    table = s.to_table(depth=1)
    assert "3+g" in table and "global (each output reads the whole input; spatial path before it: 3 pixels" in table
