"""``cnnzoo.analysis.summarize`` on hand-made networks against hand-computed numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo.analysis import count_macs, count_params, summarize
from cnnzoo.analysis import formulas as f
from cnnzoo.analysis.tracer import _meta_batch_norm


def flop_counter_macs(module: nn.Module, input_size, batch_size: int = 1) -> int:
    module = module.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(batch_size, *input_size))
    return counter.get_total_flops() // 2


# --------------------------------------------------------------------------- a small net, every number by hand

def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 3*8*9 + 8 = 224 parameters
        nn.BatchNorm2d(8),  # 16
        nn.ReLU(inplace=True),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),  # 5120 + 10 = 5130
    )


def test_small_net_totals_by_hand():
    s = summarize(small_net(), (3, 16, 16), batch_size=2)
    t = s.total
    assert t.params == t.trainable_params == 224 + 16 + 5130
    assert t.param_bytes == 4 * t.params
    assert t.macs_by_kind == {"conv": 2 * 16 * 16 * 8 * 27, "linear": 2 * 512 * 10, "matmul": 0}
    assert t.macs == 110_592 + 10_240
    assert t.flops == 2 * t.macs
    assert t.ops == {"norm": 2 * 8 * 16 * 16, "activation": 2 * 8 * 16 * 16, "pool": 2 * 8 * 8 * 8 * 4,
                     "elementwise": 0, "resample": 0, "other": 0}
    # new tensors: conv 2x8x16x16, BN 2x8x16x16, pool 2x8x8x8, linear 2x10 (float32); the
    # in-place ReLU and the flattening view create none
    assert t.activation_bytes == 4 * (2 * 8 * 16 * 16 * 2 + 2 * 8 * 8 * 8 + 2 * 10)
    assert t.input_size == (2, 3, 16, 16) and t.input_bytes == 4 * 2 * 3 * 16 * 16
    assert t.output_shape == (2, 10)


def test_small_net_rows_by_hand():
    s = summarize(small_net(), (3, 16, 16), batch_size=2)
    assert [r.name for r in s.rows] == ["0", "1", "2", "3", "4", "5"]
    assert [r.type for r in s.rows] == ["Conv2d", "BatchNorm2d", "ReLU", "AvgPool2d", "Flatten", "Linear"]
    assert [r.kind for r in s.rows] == ["conv", "norm", "activation", "pool", "none", "linear"]
    assert [r.output_shape for r in s.rows] == [(2, 8, 16, 16)] * 3 + [(2, 8, 8, 8), (2, 512), (2, 10)]
    assert [r.params for r in s.rows] == [224, 16, 0, 0, 0, 5130]
    assert [r.act_bytes for r in s.rows] == [16384, 16384, 0, 4096, 0, 80]
    # receptive field: 3, 3, 3, then 2x2 pooling 3 + 1 = 4 (jump 2); flattening merges the
    # image axes, so from there on no spatial path is left: the rows are global and keep the
    # path before it (4, jump 2) instead of growing a window over the whole map
    assert [r.rf for r in s.rows] == [(3, 3)] * 3 + [(4, 4)] * 3
    assert [r.jump for r in s.rows] == [(1, 1)] * 3 + [(2, 2)] * 3
    assert [r.context for r in s.rows] == ["local"] * 4 + ["global"] * 2
    assert s.total.rf == (4, 4) and s.total.context == "global" and s.total.context_from == "4"


def test_batch_and_dtype_scale_the_costs():
    one = summarize(small_net(), (3, 16, 16)).total
    four = summarize(small_net(), (3, 16, 16), batch_size=4).total
    assert four.macs == 4 * one.macs and four.activation_bytes == 4 * one.activation_bytes
    double = summarize(small_net().double(), (3, 16, 16)).total
    assert double.activation_bytes == 2 * one.activation_bytes and double.param_bytes == 2 * one.param_bytes


# --------------------------------------------------------------------------- exact MACs of every conv flavour

@pytest.mark.parametrize("layer, input_size, expected", [
    # grouped, rectangular kernel, stride 2: out (17-3)//2+1 = 8, (19-5)//2+1 = 8
    (nn.Conv2d(8, 12, (3, 5), stride=2, groups=4), (8, 17, 19), 8 * 8 * 12 * (8 // 4) * 3 * 5),
    # depthwise
    (nn.Conv2d(16, 16, 3, padding=1, groups=16), (16, 10, 10), 10 * 10 * 16 * 1 * 9),
    # depthwise with a channel multiplier of 2
    (nn.Conv2d(16, 32, 3, padding=1, groups=16), (16, 10, 10), 10 * 10 * 32 * 1 * 9),
    # dilated, no padding: out 20 - 6 = 14
    (nn.Conv2d(4, 6, 3, dilation=3), (4, 20, 20), 14 * 14 * 6 * 4 * 9),
    # transposed: in_H x in_W x C_in x C_out x k_h x k_w / groups
    (nn.ConvTranspose2d(8, 4, 3, stride=2, groups=2), (8, 5, 5), 5 * 5 * 8 * 4 * 9 // 2),
    (nn.ConvTranspose2d(6, 10, (2, 4), stride=(2, 3), padding=1, output_padding=1, dilation=2), (6, 7, 9), 7 * 9 * 6 * 10 * 8),
    (nn.Conv1d(4, 6, 5, stride=2), (4, 31), 14 * 6 * 4 * 5),
    (nn.Linear(20, 7), (5, 20), 5 * 20 * 7),  # extra leading dimensions
])
def test_exact_macs(layer, input_size, expected):
    assert summarize(layer, input_size).total.macs == expected
    assert flop_counter_macs(layer, input_size) == expected


def test_formulas_match_modules():
    layer = nn.Conv2d(12, 18, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=3)
    out = summarize(layer, (12, 21, 22)).total.output_shape
    assert out[2:] == (f.conv_output_size(21, 3, 2, 1, 1), f.conv_output_size(22, 5, 1, 2, 2))
    assert count_params(layer) == f.conv_params(12, 18, (3, 5), groups=3, bias=True)
    assert count_macs(layer, (12, 21, 22)) == f.conv_macs(12, 18, (3, 5), out[2:], groups=3)
    up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
    out = summarize(up, (6, 9, 9)).total.output_shape
    assert out[2:] == (f.transposed_conv_output_size(9, 3, 2, 1, 1),) * 2 == (18, 18)
    assert count_macs(up, (6, 9, 9)) == f.transposed_conv_macs(6, 4, 3, 9, groups=2)
    with pytest.raises(ValueError, match="groups"):
        f.conv_params(6, 4, 3, groups=4)


def test_matmul_and_attention_are_counted():
    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(8, 24)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            a = torch.bmm(q, k.transpose(1, 2)).softmax(-1)
            return F.scaled_dot_product_attention(q, k, v) + a @ v

    s = summarize(Attention(), (5, 8), batch_size=2)
    assert s.total.macs_by_kind["linear"] == 2 * 5 * 8 * 24
    # bmm 2x5x8 @ 2x8x5, attention (2x5x8 . 8x5 + 2x5x5 . 5x8), a @ v 2x5x5 @ 2x5x8
    assert s.total.macs_by_kind["matmul"] == 2 * 5 * 8 * 5 + (2 * 5 * 5 * 8 + 2 * 5 * 5 * 8) + 2 * 5 * 5 * 8
    assert s.total.macs == flop_counter_macs(Attention(), (5, 8), batch_size=2)


# --------------------------------------------------------------------------- receptive field

def test_receptive_field_known_values():
    def rf(*layers, size=64):
        return summarize(nn.Sequential(*layers), (1, size, size)).total.rf

    conv = lambda d=1, k=3: nn.Conv2d(1, 1, k, padding=d * (k // 2), dilation=d)  # noqa: E731
    assert rf(conv(), conv()) == (5, 5)  # VGG: two 3x3 see what one 5x5 sees
    assert rf(conv(), conv(), conv()) == (7, 7)  # three see 7x7
    assert rf(conv(2)) == (5, 5)  # 3x3 dilated 2
    assert rf(nn.Conv2d(1, 1, 7, stride=2, padding=3), nn.MaxPool2d(3, 2, 1)) == (11, 11)  # ResNet stem
    assert rf(nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.Conv2d(1, 1, (7, 1), padding=(3, 0))) == (7, 7)
    assert rf(nn.Conv2d(1, 1, (3, 1), padding=(1, 0))) == (3, 1)


def test_receptive_field_follows_every_branch():
    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.narrow = nn.Conv2d(1, 1, 1)
            self.wide = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=4, dilation=4))
            self.pooled = nn.MaxPool2d(3, 1, 1)

        def forward(self, x):
            return torch.cat([self.narrow(x), self.wide(x), self.pooled(x)], 1).sum(1, keepdim=True)

    s = summarize(Branches(), (1, 40, 40))
    assert {r.name: r.rf for r in s.rows} == {"narrow": (1, 1), "wide.0": (3, 3), "wide.1": (11, 11), "pooled": (3, 3), "": (11, 11)}
    assert s.total.rf == (11, 11)


def test_transposed_and_upsampling_halve_the_jump():
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 4, stride=4), nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1)), (1, 32, 32))
    assert s.rows[0].rf == (4, 4) and s.rows[0].jump == (4, 4)
    assert s.rows[1].rf == (4 + 1 * 4, 4 + 4) and s.rows[1].jump == (2, 2)  # ceil(3/2) - 1 = 1 more input
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 2, stride=2), nn.Upsample(scale_factor=2, mode="bilinear")), (1, 16, 16))
    assert s.rows[1].jump == (1, 1) and s.rows[1].rf == (4, 4)
    assert s.rows[1].kind == "resample" and s.rows[1].ops == {"resample": 16 * 16 * 4}
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 2, stride=2), nn.Upsample(scale_factor=2)), (1, 16, 16))
    assert s.rows[1].jump == (1, 1) and s.rows[1].rf == (2, 2)


def test_unpooling_keeps_the_field_and_halves_the_jump():
    class PoolUnpool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x):
            y, idx = self.pool(x)
            return self.unpool(y, idx)

    s = summarize(PoolUnpool(), (1, 8, 8))
    assert s.rows[1].rf == (2, 2) and s.rows[1].jump == (1, 1)
    assert s.rows[1].ops == {"resample": 16} and s.rows[1].output_shape == (1, 1, 8, 8)


class GradientNet(nn.Module):
    """Branches of every kind the tracer knows, with positive weights (no cancellation)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.a = nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(2, 2, (3, 1), padding=(2, 0), dilation=2))
        self.b = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(2, 2, (1, 5), padding=(0, 2)))
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        for p in self.parameters():
            nn.init.uniform_(p, 0.1, 1.0)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.a(x), self.b(x)], 1)
        return self.up(y) + x


def gradient_rf(net: nn.Module, size: int) -> tuple[int, int]:
    """The largest input window any output depends on, from the Jacobian's nonzero pattern."""
    x = torch.rand(1, 1, size, size, dtype=torch.float64) + 0.5
    net = net.double()
    jac = torch.autograd.functional.jacobian(lambda t: net(t).sum(1), x, vectorize=True)
    nonzero = jac.reshape(-1, size, size) != 0
    rows = nonzero.any(2)
    cols = nonzero.any(1)
    index = torch.arange(size)
    extent = lambda m: (torch.where(m, index, -1).amax(1) - torch.where(m, index, size).amin(1) + 1).max().item()  # noqa: E731
    return extent(rows), extent(cols)


def test_receptive_field_agrees_with_gradients():
    torch.manual_seed(0)
    net = GradientNet()
    # stem 3; branch a: stride-2 3x3 5, then 3x1 dilated 2: 13 x 5; branch b: 2x2 pooling 4,
    # then 1x5: 4 x 12; concatenated: 13 x 12; transposed 3x3 / 2 adds one input: 15 x 14
    assert summarize(net, (1, 40, 40)).total.rf == gradient_rf(net, 40) == (15, 14)


def test_jump_agrees_with_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, stride=3))
    for p in net.parameters():
        nn.init.uniform_(p, 0.1, 1.0)
    s = summarize(net, (1, 40, 40))
    assert s.total.jump == (6, 6) and s.total.rf == (3 + 2 * 2,) * 2
    x = torch.rand(1, 1, 40, 40, dtype=torch.float64) + 0.5
    jac = torch.autograd.functional.jacobian(lambda t: net.double()(t), x).reshape(6, 6, 40, 40)
    first = lambda m: int(m.nonzero()[0].item())  # noqa: E731
    assert first(jac[0, 1].any(0)) - first(jac[0, 0].any(0)) == 6
    assert gradient_rf(net, 40) == (7, 7)


# --------------------------------------------------------------------------- containers, depth, reports

class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + x)


def residual_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Residual(4), Residual(4), nn.AdaptiveAvgPool2d(1))


def test_container_operations_get_their_own_row():
    s = summarize(residual_net(), (3, 8, 8))
    own = [r for r in s.rows if r.own]
    assert [r.name for r in own] == ["1", "2"]
    # the functional ReLU after conv1, the addition and the final ReLU
    assert own[0].ops == {"activation": 2 * 4 * 8 * 8, "elementwise": 4 * 8 * 8}
    assert own[0].label == "1 (self)"
    assert s.total.ops["elementwise"] == 2 * 4 * 8 * 8


def test_depth_groups_rows_into_blocks():
    s = summarize(residual_net(), (3, 8, 8))
    top = s.grouped(1)
    assert [g.name for g in top] == ["0", "1", "2", "3"]
    assert [g.type for g in top] == ["Conv2d", "Residual", "Residual", "AdaptiveAvgPool2d"]
    assert sum(g.macs for g in top) == s.total.macs
    assert sum(g.params for g in top) == s.total.params
    assert top[1].macs == 2 * 8 * 8 * 4 * 4 * 9
    assert top[1].rf == (7, 7) and top[2].rf == (11, 11)
    assert [g.label for g in s.grouped(0)] == ["<model>"] and s.grouped(0)[0].macs == s.total.macs
    assert len(s.grouped()) == len(s.rows)
    with pytest.raises(ValueError, match="depth"):
        s.grouped(-1)
    # summarize(depth=...) sets the renderings' default
    shallow = summarize(residual_net(), (3, 8, 8), depth=1)
    assert shallow.to_table() == s.to_table(1) and shallow.to_table(None) == s.to_table()
    assert len(shallow.rows) == len(s.rows)
    with pytest.raises(ValueError, match="depth"):
        summarize(residual_net(), (3, 8, 8), depth=-1)


def test_reports():
    s = summarize(residual_net(), (3, 8, 8))
    table = s.to_table()
    assert "1 (self)" in table and "Receptive field" in table and f"{s.total.params:,}" in table
    assert len(s.to_table(1).splitlines()) < len(table.splitlines())
    data = json.loads(s.to_json())
    assert data["total"]["params"] == s.total.params and data["total"]["macs"] == s.total.macs
    assert data["total"]["flops"] == 2 * s.total.macs and len(data["rows"]) == len(s.rows)
    rows = list(csv.DictReader(io.StringIO(s.to_csv())))
    assert len(rows) == len(s.rows) and sum(int(r["macs"]) for r in rows) == s.total.macs
    markdown = s.to_markdown(depth=1)
    assert "| Layer | Type |" in markdown and markdown.count("\n| ") == 1 + 4 + 1  # header, 4 blocks, total
    assert str(s) == table
    assert [r["name"] for r in csv.DictReader(io.StringIO(s.to_csv(depth=1)))] == ["0", "1", "2", "3"]
    assert [r["type"] for r in json.loads(s.to_json(depth=1))["rows"]] == ["Conv2d", "Residual", "Residual", "AdaptiveAvgPool2d"]


def test_plot_writes_a_png_atomically(tmp_path):
    s = summarize(residual_net(), (3, 8, 8))
    path = s.plot(tmp_path / "plots" / "cost.png", title="two residual blocks")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["cost.png"]  # no temporary file left


# --------------------------------------------------------------------------- the model is left alone

def test_real_model_is_not_touched():
    model = residual_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize(model, (3, 16, 16))
    assert model.training and all(m.training for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats untouched


def test_meta_model_and_shared_parameters():
    with torch.device("meta"):
        model = residual_net()
    assert summarize(model, (3, 16, 16)).total.macs == summarize(residual_net(), (3, 16, 16)).total.macs
    shared = nn.Conv2d(4, 4, 3, padding=1)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), shared, nn.ReLU(), shared)
    s = summarize(net, (3, 8, 8))
    assert s.total.params == count_params(net) == 16 + 148
    assert [r.name for r in s.rows] == ["0", "1", "2", "1"]  # a shared module is reported under its first name
    assert s.total.macs == 8 * 8 * 4 * 3 + 2 * 8 * 8 * 4 * 4 * 9


def test_count_params_of_trainable_parameters_only():
    model = small_net()  # conv 224, BN 16, linear 5130
    for p in model[0].parameters():
        p.requires_grad_(False)
    assert count_params(model) == 224 + 16 + 5130
    assert count_params(model, trainable_only=True) == 16 + 5130
    assert summarize(model, (3, 16, 16)).total.trainable_params == 16 + 5130


def test_count_macs_is_conv_plus_linear_for_one_image():
    model = small_net()
    assert count_macs(model, (3, 16, 16)) == 16 * 16 * 8 * 27 + 512 * 10 == flop_counter_macs(small_net(), (3, 16, 16))


def test_fast_meta_batch_norm_matches_pytorch():
    for shape, dtype in (((2, 8, 5, 5), torch.float32), ((1, 3, 4), torch.float64), ((2, 4, 3, 3), torch.float16)):
        x = torch.empty(shape, device="meta", dtype=dtype)
        c = shape[1]
        stats = [torch.empty(c, device="meta", dtype=torch.float32 if dtype == torch.float16 else dtype) for _ in range(4)]
        for training in (False, True):
            real = torch.ops.aten.native_batch_norm.default(x, *stats, training, 0.1, 1e-5)
            fast = _meta_batch_norm(x, *stats, training, 0.1, 1e-5)
            for a, b in zip(real, fast):
                assert (a.shape, a.dtype, a.stride()) == (b.shape, b.dtype, b.stride())


def test_other_shapes_of_input():
    s = summarize(nn.Sequential(nn.Linear(10, 5), nn.ReLU()), (10,))
    assert s.total.macs == 50 and s.total.rf is None and s.rows[0].rf is None
    s = summarize(nn.Conv1d(2, 4, 3), (2, 10))
    assert s.total.rf == (3,) and s.total.macs == 8 * 4 * 2 * 3


def test_module_with_tuple_and_dict_outputs():
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            y = self.conv(x)
            return {"out": y, "aux": (y.mean(), y)}

    s = summarize(Heads(), (1, 6, 6))
    assert s.total.output_shape == (1, 2, 4, 4) and s.total.macs == 16 * 2 * 9


# --------------------------------------------------------------------------- errors a user can cause

@pytest.mark.parametrize("bad", [(3, 0, 32), (3, -1, 32), (), "3x224x224", 224, (3.0, 32, 32), (True, 32, 32), None, [3, 32, "32"]])
def test_malformed_input_size(bad):
    with pytest.raises(ValueError, match="input_size"):
        summarize(nn.Conv2d(3, 4, 3), bad)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        summarize(nn.Conv2d(3, 4, 3), (3, 8, 8), batch_size=0)


def test_too_small_input_names_the_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 5)))
    with pytest.raises(ValueError, match=r"Sequential cannot run on an input of size \(1, 3, 5, 5\) \(in layer '1.0'\)"):
        summarize(net, (3, 5, 5))
    with pytest.raises(ValueError, match="cannot run"):
        summarize(net, (2, 32, 32))  # wrong channel count


def test_the_models_own_error_propagates():
    class Picky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if min(x.shape[-2:]) < 32:
                raise ValueError(f"Picky needs an input of at least 32x32 pixels, got {x.shape[-2]}x{x.shape[-1]}")
            return self.conv(x)

    with pytest.raises(ValueError, match=r"^Picky needs an input of at least 32x32 pixels, got 31x40$"):
        summarize(Picky(), (3, 31, 40))
    assert summarize(Picky(), (3, 32, 32)).total.output_shape == (1, 4, 30, 30)
