"""Pictures that teach (cnnzoo.visualize, ``cnnzoo visualize``): the numbers behind each picture.

Each expectation is an independent fact: the window a convolution reaches (k x k for one
k x k convolution, 2k - 1 for two), the gradient of a linear model (its weights), Grad-CAM's
formula written out with autograd (Selvaraju et al. 2017, Eq. 1-2), the maps a classifier's
``forward_features`` gives. The pictures themselves are only checked to be written.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.engine.checkpoint import save_checkpoint
from cnnzoo.visualize import (
    PICTURES,
    effective_receptive_field,
    filter_tiles,
    first_conv,
    grad_cam,
    receptive_fields,
    saliency,
    stage_maps,
    theoretical_receptive_field,
)

torch.set_num_threads(1)


def window(size: int, centre: int, half: int) -> torch.Tensor:
    """A ``size x size`` mask, true on the square of side ``2 half + 1`` around ``(centre, centre)``."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[centre - half: centre + half + 1, centre - half: centre + half + 1] = True
    return mask


# ------------------------------------------------------------------ effective receptive field

def test_the_erf_of_one_3x3_conv_is_exactly_its_3x3_window():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    erf = effective_receptive_field(conv, torch.rand(1, 3, 11, 11))
    assert torch.equal(erf != 0, window(11, 5, 1))
    assert theoretical_receptive_field(conv, torch.rand(1, 3, 11, 11))[1] == (3.0, 3.0)


def test_the_erf_of_two_stacked_3x3_convs_is_exactly_5x5():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1))
    fields = receptive_fields(model, torch.rand(1, 3, 11, 11))  # the deepest stage: the second conv
    assert fields.stage == "1"
    assert torch.equal(fields.erf != 0, window(11, 5, 2))
    assert fields.size == (5.0, 5.0) and fields.support() == (5, 5)
    first = effective_receptive_field(model, torch.rand(1, 3, 11, 11), stage=0)
    assert torch.equal(first != 0, window(11, 5, 1))


def test_the_erf_of_a_resnet20_stage_lies_inside_its_theoretical_field():
    # Luo et al. 2016: the effective field is a part of the theoretical one. resnet20's first
    # stage: a 3x3 stem and three blocks of two 3x3 convolutions, 1 + 7 x 2 = 15 pixels.
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20").eval()
    fields = receptive_fields(model, torch.rand(1, 3, 32, 32), stage=0)
    assert fields.stage == "layer1" and fields.size == (15.0, 15.0)
    assert fields.erf.sum() > 0 and not (fields.erf[~window(32, 16, 7)] != 0).any()


# ------------------------------------------------------------------------ Grad-CAM and saliency

class QuadrantPool(nn.Module):
    """The mean of one quadrant of the map (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""

    def __init__(self, quadrant: int) -> None:
        super().__init__()
        self.quadrant = quadrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        row, column = divmod(self.quadrant, 2)
        return x[..., row * h:(row + 1) * h, column * w:(column + 1) * w].mean(dim=(2, 3))


def quadrant_means(values: torch.Tensor) -> list[float]:
    h, w = values.shape[0] // 2, values.shape[1] // 2
    return [float(values[r * h:(r + 1) * h, c * w:(c + 1) * w].mean()) for r in (0, 1) for c in (0, 1)]


@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_grad_cam_lights_the_one_quadrant_the_answer_depends_on(quadrant):
    # Grad-CAM weighs whole maps by their mean gradient, so the maps must tell the quadrants
    # apart: channel q of the input (and of the identity convolution's output) is lit in
    # quadrant q. The head reads the pooled features of one quadrant only.
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    head = nn.Linear(4, 2)
    with torch.no_grad():
        head.weight.abs_()  # every channel raises both classes: what Grad-CAM finds is where, not which
    model = nn.Sequential(conv, nn.ReLU(), QuadrantPool(quadrant), head).eval()
    x = torch.zeros(1, 4, 16, 16)
    for q in range(4):
        row, column = divmod(q, 2)
        x[0, q, row * 8:(row + 1) * 8, column * 8:(column + 1) * 8] = 1 + torch.rand(8, 8)
    cam = grad_cam(model, x, target=1)
    assert cam.layer == "0" and cam.values.shape == (16, 16)
    means = quadrant_means(cam.values)
    assert all(means[quadrant] > means[q] for q in range(4) if q != quadrant), means


def test_grad_cam_of_a_classifier_is_selvarajus_formula_at_its_last_stage():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=5).eval()
    x = torch.rand(1, 3, 32, 32)
    cam = grad_cam(model, x, target=3)
    # Eq. 1-2 by hand: alpha_k = mean of d y^c / d A^k over the map; ReLU(sum_k alpha_k A^k)
    maps = model.forward_features(x)[-1].detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.forward_head(maps)[0, 3], maps)
    by_hand = F.relu((gradient.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True))
    by_hand = F.interpolate(by_hand, size=(32, 32), mode="bilinear")[0, 0]
    assert cam.layer == "layer3" and cam.target == 3
    torch.testing.assert_close(cam.values, by_hand.detach())


def test_grad_cam_needs_a_convolution_and_a_real_layer_name():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional layer"):
        grad_cam(linear, torch.rand(1, 3, 2, 2))
    with pytest.raises(ValueError, match="no layer named 'head'"):
        grad_cam(linear, torch.rand(1, 3, 2, 2), layer="head")
    with pytest.raises(ValueError, match="class index must be from 0 to 1"):
        saliency(linear, torch.rand(1, 3, 2, 2), target=2)


def test_saliency_of_a_linear_model_is_its_weights_in_absolute_value():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 6, 4))
    result = saliency(model, torch.rand(1, 3, 5, 6), target=2)
    assert torch.equal(result.values, model[1].weight[2].detach().abs().view(3, 5, 6).amax(dim=0))


def test_saliency_of_a_segmenter_sums_its_class_over_the_pixels():
    # a 1x1 convolution as a segmenter: d(sum of class k's logits)/dx = its weights W[k, c] at every pixel
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1)
    result = saliency(model, torch.rand(1, 3, 4, 5), target=1)
    assert torch.allclose(result.values, model.weight[1, :, 0, 0].detach().abs().max().expand(4, 5))


# ------------------------------------------------------------------------- filters and stages

class RunsBeforeItIsRegistered(nn.Module):
    """``late`` is registered second and runs first: the first layer is the one that runs first."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.early = nn.Conv2d(5, 2, 3)
        self.late = nn.Conv2d(in_chans, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.early(self.late(x))


@pytest.mark.parametrize("in_chans", [3, 1, 2])
def test_the_filters_grid_holds_the_first_convs_weights_each_normalized(in_chans):
    torch.manual_seed(0)
    model = RunsBeforeItIsRegistered(in_chans)
    name, layer = first_conv(model, torch.rand(1, in_chans, 6, 6))
    assert name == "late" and layer is model.late
    tiles = filter_tiles(layer.weight)
    assert tiles.shape == (5, 3, 3, 3)
    for tile, weight in zip(tiles, layer.weight.detach().numpy()):
        shown = weight if in_chans == 3 else np.repeat(weight.mean(axis=0, keepdims=True), 3, axis=0)
        expected = (shown - shown.min()) / (shown.max() - shown.min())
        np.testing.assert_allclose(tile, expected.transpose(1, 2, 0), rtol=1e-6, atol=1e-6)


def test_stage_maps_are_forward_features_or_the_childrens_outputs():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20").eval()
    x = torch.rand(1, 3, 32, 32)
    stages = stage_maps(model, x)
    assert [s.name for s in stages] == ["layer1", "layer2", "layer3"]
    for stage, expected in zip(stages, model.forward_features(x)):
        assert torch.equal(stage.map, expected)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    (only,) = stage_maps(plain, x)  # the flattened output is no image map
    assert only.name == "0" and torch.equal(only.map, plain[0](x))


# -------------------------------------------------------------------------------------- command

def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def picture(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def opened_pngs(folder) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    for name in names:
        with Image.open(folder / name) as png:
            png.verify()
            assert png.format == "PNG"
    return names


def test_visualize_writes_one_png_per_picture(capsys, tmp_path, picture):
    code, out, err = run_cli(capsys, "visualize", "resnet20", picture, "--out", tmp_path / "pictures",
                             "-k", "num_classes=3", "--channels", "2", "--threads", "1")
    assert code == 0, err
    assert opened_pngs(tmp_path / "pictures") == sorted(f"{name}.png" for name in PICTURES)
    assert out.count("wrote ") == 5 and "at 32x32" in out


def test_visualize_a_trained_run_and_refuse_a_full_folder(capsys, tmp_path, picture):
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=2, in_chans=1).eval()
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run" / "best", model, {
        "model": "resnet20", "model_kwargs": {}, "task": "classification", "num_classes": 2, "in_chans": 1,
        "class_names": ["cat", "dog"], "mean": [0.5], "std": [0.25], "image_size": [16, 16],
        "ignore_index": None, "data": "test", "epoch": 0, "metrics": {},
    })
    out = tmp_path / "pictures"
    argv = ["visualize", tmp_path / "run", picture, "--out", out, "--what", "gradcam,erf", "--class-index", "1"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert opened_pngs(out) == ["erf.png", "gradcam.png"] and "at 16x16" in stdout
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "is not empty; give --overwrite" in err
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize("argv, message", [
    (["resnet20", "{tmp}/missing.png"], "missing.png"),
    (["no_such_net", "{image}"], "no_such_net"),
    (["resnet20", "{image}", "--what", "gradcam,colours"], "unknown picture colours"),
    (["resnet20", "{image}", "--class-index", "10"], "class index must be from 0 to 9"),
    (["resnet20", "{image}", "--what", "erf", "--stage", "3"], "stage must be an index from 0 to 2"),
])
def test_visualize_user_errors_are_one_line_and_exit_code_2(capsys, tmp_path, picture, argv, message):
    argv = [a.format(tmp=tmp_path, image=picture) for a in argv]
    code, _, err = run_cli(capsys, "visualize", *argv, "--out", tmp_path / "out")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # nothing left behind
