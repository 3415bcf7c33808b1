"""The convolutional auto-encoder of seed 001 ("Image Generation via CNN") and the
reconstruction task: the network's shapes and costs against exact formulas, its unpooling,
the MSE loss and the PSNR / SSIM metrics against independent computations, and a run
trained, evaluated and used for prediction end to end on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnzoo.analysis import count_macs, count_params
from cnnzoo.cli.main import main
from cnnzoo.data import build_data
from cnnzoo.data.augment import build_augment
from cnnzoo.data.reconstruction import as_reconstruction, data_for_task
from cnnzoo.engine.checkpoint import load_trained
from cnnzoo.engine.evaluate import evaluate_checkpoint
from cnnzoo.engine.losses import build_loss, choose_loss
from cnnzoo.engine.metrics import MAIN_METRIC, build_metrics
from cnnzoo.engine.predict import predict
from cnnzoo.engine.trainer import train
from cnnzoo.layers.conv import FixedUnpool
from cnnzoo.registry import create_model, data_options, model_info
from tests.test_engine_train import config_for, make_class_folder, read_csv


def autoencoder_params(in_chans: int, widths: tuple[int, ...], convs: int) -> int:
    """Weights of the auto-encoder counted layer by layer: 3x3 convs without bias, each
    followed by batch norm (2 values per channel), except the last transposed conv, which
    has a bias and no norm (the identity output)."""
    total, channels = 0, in_chans
    for width in widths:  # encoder
        for i in range(convs):
            total += 9 * (channels if i == 0 else width) * width + 2 * width
        channels = width
    outputs = (in_chans, *widths[:-1])
    for stage, (width, out) in enumerate(zip(widths, outputs)):  # decoder
        total += (convs - 1) * (9 * width * width + 2 * width)
        total += 9 * width * out + (out if stage == 0 else 2 * out)
    return total


def autoencoder_macs(in_chans: int, widths: tuple[int, ...], convs: int, side: int) -> int:
    """Multiply-adds of every 3x3 conv at its map's size (the map halves after each stage)."""
    total, channels = 0, in_chans
    outputs = (in_chans, *widths[:-1])
    for width, out in zip(widths, outputs):
        pixels = side * side
        encoder = 9 * channels * width + (convs - 1) * 9 * width * width
        decoder = (convs - 1) * 9 * width * width + 9 * width * out
        total += pixels * (encoder + decoder)
        channels, side = width, side // 2
    return total


def test_default_autoencoder_costs_match_the_layer_formulas():
    model = create_model("conv_autoencoder")
    assert count_params(model) == autoencoder_params(1, (32, 64, 128), 2) == 573_505
    assert count_macs(model, (1, 28, 28)) == autoencoder_macs(1, (32, 64, 128), 2, 28) == 58_254_336


@pytest.mark.parametrize("in_chans, widths, convs", [(3, (16, 32), 1), (1, (8, 16, 32, 64), 3)])
def test_other_shapes_match_the_formulas(in_chans, widths, convs):
    model = create_model("conv_autoencoder", in_chans=in_chans, widths=widths, convs_per_stage=convs)
    assert count_params(model) == autoencoder_params(in_chans, widths, convs)
    assert count_macs(model, (in_chans, 32, 32)) == autoencoder_macs(in_chans, widths, convs, 32)


@pytest.mark.parametrize("unpool", ["indices", "fixed"])
@pytest.mark.parametrize("size", [(28, 28), (27, 33), (8, 8)])
def test_the_output_has_the_input_size_and_channels(unpool, size):
    model = create_model("conv_autoencoder", in_chans=3, unpool=unpool).eval()
    assert model(torch.rand(2, 3, *size)).shape == (2, 3, *size)


def test_too_small_an_input_names_the_minimum():
    with pytest.raises(ValueError, match="8"):
        create_model("conv_autoencoder")(torch.rand(1, 1, 7, 7))


def test_the_output_layer_is_the_identity():
    """Seed 001: "to generate images, use identity function at output": the last layer is
    a transposed conv alone (no norm, no activation), so outputs can be any real number."""
    model = create_model("conv_autoencoder")
    last = model.decoder[-1].convs[-1]
    assert [type(child).__name__ for child in last.children()] == ["ConvTranspose2d"]
    with torch.no_grad():
        last.conv.bias.fill_(-5.0)
    assert model.eval()(torch.rand(1, 1, 28, 28)).max() < 0


def test_indices_unpooling_puts_each_maximum_back_in_place():
    """The sparse map of seed 001: the pooled maxima at their own positions, zeros elsewhere."""
    model = create_model("conv_autoencoder")
    x = torch.randn(1, 4, 6, 6)
    pooled, where = model.pools[0](x)
    sparse = model.decoder[-1].unpool(pooled, where, output_size=(6, 6))
    cell_max = F.max_pool2d(x, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
    is_max = x == cell_max
    assert torch.equal(sparse[is_max], x[is_max])
    assert (sparse[~is_max] == 0).all()


def test_fixed_unpooling_is_a_bed_of_nails():
    code = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    sparse = FixedUnpool(2)(code, output_size=(7, 7))
    assert create_model("conv_autoencoder", unpool="fixed").decoder[0].unpool.stride == 2
    expected = torch.zeros(1, 1, 7, 7)
    for i in range(3):
        for j in range(3):
            expected[0, 0, 2 * i, 2 * j] = code[0, 0, i, j]
    assert torch.equal(sparse, expected)


def test_a_fixed_unpooling_decoder_generates_from_a_code_alone():
    model = create_model("conv_autoencoder", unpool="fixed").eval()
    assert model.decode(torch.randn(2, 128, 3, 3)).shape == (2, 1, 24, 24)
    code, _, sizes = model.encode(torch.rand(2, 1, 28, 28))
    assert model.decode(code, sizes=sizes).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="indices"):
        create_model("conv_autoencoder").decode(code)


def test_the_registry_knows_the_task_and_the_options_it_takes():
    assert model_info("conv_autoencoder").task == "reconstruction"
    assert data_options("conv_autoencoder", 10, 1) == {"in_chans": 1}
    assert data_options("resnet20", 10, 1) == {"num_classes": 10, "in_chans": 1}
    with pytest.raises(ValueError, match="unpool"):
        create_model("conv_autoencoder", unpool="nearest")


# -------------------------------------------------------------------- data, loss, metrics

def test_a_data_set_as_a_reconstruction_set(tmp_path):
    spec = build_data(str(make_class_folder(tmp_path / "images")))
    recon = as_reconstruction(spec)
    assert (recon.task, recon.num_classes, recon.class_names) == ("reconstruction", 0, [])
    assert (len(recon.train), len(recon.val), recon.in_chans) == (len(spec.train), len(spec.val), spec.in_chans)
    sample = recon.train[3]
    assert torch.equal(sample["target"], spec.train[3]["image"]) and torch.equal(sample["image"], sample["target"])
    assert data_for_task(spec, "classification") is spec
    assert as_reconstruction(recon) is recon


def test_augmentation_moves_the_target_with_the_image():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16)
    batch = build_augment("reconstruction", (16, 16), "default")({"image": images, "target": images.clone()})
    assert not torch.equal(batch["image"], images)  # cropped and flipped
    assert torch.equal(batch["target"], batch["image"])


def test_the_mse_loss_is_the_mean_squared_difference():
    assert choose_loss(None, "reconstruction", False) == "mse"
    loss = build_loss("mse", task="reconstruction", num_classes=0)
    output, target = torch.randn(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
    expected = np.mean((output.numpy().astype(np.float64) - target.numpy()) ** 2)
    assert float(loss(output, target)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        loss(output, target[:, :1])
    with pytest.raises(ValueError, match="reconstruction takes only 'mse'"):
        build_loss("ce", task="reconstruction", num_classes=0)
    with pytest.raises(ValueError, match="'mse' is for reconstruction"):
        build_loss("mse", task="classification", num_classes=3)


def test_psnr_and_mse_are_computed_on_the_clamped_output_over_all_batches():
    torch.manual_seed(0)
    target = torch.rand(6, 1, 16, 16)
    output = target + 0.2 * torch.randn_like(target)
    metrics = build_metrics("reconstruction", 0)
    metrics.update(output[:4], target[:4])
    metrics.update(output[4:], target[4:])
    scores = metrics.compute()
    mse = np.mean((np.clip(output.numpy(), 0, 1).astype(np.float64) - target.numpy()) ** 2)
    assert scores["mse"] == pytest.approx(mse, rel=1e-5)
    assert scores["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert 0 < scores["ssim"] < 1
    assert MAIN_METRIC["reconstruction"] == "psnr"


def test_ssim_of_an_image_with_itself_is_one_and_small_images_have_none():
    metrics = build_metrics("reconstruction", 0)
    images = torch.rand(2, 3, 16, 16)
    metrics.update(images, images)
    assert metrics.compute()["ssim"] == pytest.approx(1.0, abs=1e-6)
    small = build_metrics("reconstruction", 0)
    small.update(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    assert "ssim" not in small.compute()


# --------------------------------------------------------------------------- end to end

def independent_psnr(run_dir, images: torch.Tensor) -> float:
    """PSNR of the saved best model over ``images``, by a plain loop over the images."""
    trained = load_trained(run_dir)
    mean = torch.tensor(trained.meta.mean).view(-1, 1, 1)
    std = torch.tensor(trained.meta.std).view(-1, 1, 1)
    squared, count = 0.0, 0
    with torch.no_grad():
        for image in images:
            output = trained.model(((image - mean) / std)[None])[0].clamp(0, 1)
            squared += float(((output.double() - image.double()) ** 2).sum())
            count += image.numel()
    return 10 * math.log10(count / squared)


def test_an_autoencoder_trains_evaluates_and_predicts(tmp_path, capsys):
    folder = make_class_folder(tmp_path / "images", per_class=12, size=16)
    config = config_for(tmp_path, "conv_autoencoder", data=str(folder), epochs=3, batch_size=6,
                        lr=3e-3, augment="none")
    result = train(config)
    run = result.run_dir
    rows = read_csv(run / "metrics.csv")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert {"val_loss", "mse", "psnr", "ssim"} <= set(rows[0])
    assert (run / "plots" / "reconstructions.png").is_file() and (run / "plots" / "curves.png").is_file()
    assert not (run / "plots" / "confusion.png").exists()

    spec = build_data(str(folder))
    val_images = torch.stack([spec.val[i]["image"] for i in range(len(spec.val))])
    scores = evaluate_checkpoint(str(run))
    assert scores["psnr"] == pytest.approx(independent_psnr(run, val_images), rel=1e-4)
    assert scores["mse"] == pytest.approx(10 ** (-scores["psnr"] / 10))

    picture = tmp_path / "one.png"
    Image.fromarray((val_images[0, 0].numpy() * 255 + 0.5).astype(np.uint8)).save(picture)
    predicted = predict(str(run), [str(picture)], out=str(tmp_path / "out"))
    written = predicted.predictions[0].reconstruction
    assert predicted.task == "reconstruction" and written.name == "one_reconstruction.png"
    pixels = np.asarray(Image.open(written), dtype=np.float64) / 255
    original = np.asarray(Image.open(picture), dtype=np.float64) / 255
    assert pixels.shape == original.shape == (16, 16)
    quantized_psnr = 10 * math.log10(1 / np.mean((pixels - original) ** 2))
    assert predicted.predictions[0].psnr == pytest.approx(quantized_psnr, abs=0.1)  # the PNG is 8-bit
    with pytest.raises(ValueError, match="auto-encoder writes PNG images"):
        predict(str(run), [str(picture)], out=str(tmp_path / "out2"), format="csv")

    capsys.readouterr()
    assert main(["predict", str(run), str(picture), "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "PSNR (dB)" in printed and "wrote 1 file under" in printed
    assert (tmp_path / "cli" / "one_reconstruction.png").is_file()
    assert main(["predict", str(run), str(picture), "--out", str(tmp_path / "cli2"), "--overlay"]) == 2
    assert "overlays apply only to segmentation models" in capsys.readouterr().err
    assert main(["visualize", str(run), str(picture), "--out", str(tmp_path / "vis")]) == 2
    assert "reconstruction model" in capsys.readouterr().err


def test_legacy_onnx_export_gets_the_clear_unpooling_message():
    # The max-unpooling guard lives in layers.conv.MaxUnpool, so the auto-encoder gets the
    # message SegNet gives (tests/test_segnet.py) instead of a crash inside PyTorch.
    import io
    import warnings

    model = create_model("conv_autoencoder", widths=(4, 8)).eval()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="dynamo exporter"):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 1, 12, 12),), io.BytesIO(), dynamo=False)


@pytest.mark.parametrize("unpool", ["indices", "fixed"])
def test_torchscript_trace_matches_the_model(unpool):
    import warnings

    torch.manual_seed(0)
    model = create_model("conv_autoencoder", widths=(4, 8), unpool=unpool).eval()
    x = torch.rand(1, 1, 13, 11)  # odd sizes: the unpoolings are given the pooled sizes
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)
