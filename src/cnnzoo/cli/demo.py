"""``make demo``: a tour of the zoo, then the main job: train, evaluate, predict, export.

1. The tour: the registered models, a side-by-side cost comparison of the classic
   classifiers and the lecture notes' worked examples, all computed by the library.
2. A U-Net (padded, base width 16, batch norm) trained on the built-in ``shapes`` set for
   about two minutes on a CPU (the number of epochs is chosen from a measured training
   step so that the cosine schedule runs to its end within the budget), evaluated, and
   used to predict a few images and one mosaic large enough for the overlap-tile path.
3. When Fashion-MNIST is on disk: a ResNet-20 trained on a subset in under a minute,
   evaluated, exported to ONNX (checked against onnxruntime) and used to classify a few
   test images.

Everything is done through the ``cnnzoo`` commands (each is printed before it runs) and
written under ``runs/demo/TIMESTAMP/``. ``python -m cnnzoo.cli.demo --seconds 30`` gives
the training a smaller budget; ``--skip-tour`` goes straight to the training.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnzoo
from cnnzoo.analysis import explain
from cnnzoo.cli.main import main as cnnzoo_main
from cnnzoo.data import build_data
from cnnzoo.engine.tiling import WHOLE_IMAGE_MAX_PIXELS
from cnnzoo.utils.atomic import write_atomically

CLASSICS = [
    "alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnext50_32x4d",
    "densenet121", "mobilenet_v1", "squeezenet1_0", "efficientnet_b0",
]
TOPICS = ["convolution-cost", "bottleneck", "depthwise-separable"]

SEGMENTATION_SECONDS = 120.0
CLASSIFICATION_SECONDS = 45.0
UNET_OPTIONS = {"base_width": 16, "padding": True, "batch_norm": True}


def section(title: str) -> None:
    print(f"\n== {title} ==\n", flush=True)


def run(argv: list[str]) -> None:
    """Run one ``cnnzoo`` command; a failure ends the demo with its exit code."""
    code = cnnzoo_main(argv)
    if code:
        sys.exit(code)


def show_and_run(argv: list[str]) -> None:
    print("$ cnnzoo " + shlex.join(argv), flush=True)
    run(argv)


# ----------------------------------------------------------------------------- the tour

def tour() -> None:
    section("The zoo: `cnnzoo list`")
    run(["list"])
    registered = [name for name in CLASSICS if cnnzoo.list_models(name)]
    section("Costs side by side: `cnnzoo compare " + " ".join(registered) + "`")
    run(["compare", *registered])
    for topic in [t for t in TOPICS if t in explain.topics()]:
        section(f"`cnnzoo explain {topic}`")
        run(["explain", topic])


# ------------------------------------------------------------------------------- budgets

def seconds_per_image(model_name: str, model_kwargs: dict, input_size: tuple[int, int, int], num_classes: int,
                      batch_size: int, task: str, steps: int = 2) -> float:
    """Measured seconds of one training step per image (forward, backward, optimizer step)."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(model_name, num_classes=num_classes, in_chans=input_size[0], **model_kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch_size, *input_size)
    shape = (batch_size,) if task == "classification" else (batch_size, *input_size[1:])
    targets = torch.randint(0, num_classes, shape)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # the first step pays for memory allocation
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / (steps * batch_size)


def plan_budget(seconds: float, per_image: float, train_size: int, val_size: int, overhead: float = 2.0,
                min_train_size: int = 32) -> tuple[int, int]:
    """``(epochs, train_size)`` that fit in ``seconds``: a training image costs
    ``per_image``, a validation image about a third of that (forward only), each epoch
    ``overhead`` seconds more (checkpoints, plots). When not even one epoch of
    ``train_size`` images fits, one epoch of fewer images (at least ``min_train_size``)."""
    per_epoch = per_image * (train_size + val_size / 3) + overhead
    epochs = math.floor(seconds / per_epoch)
    if epochs >= 1:
        return epochs, train_size
    fitting = math.floor((seconds - overhead) / per_image - val_size / 3)
    return 1, max(min_train_size, min(train_size, fitting))


# ------------------------------------------------------------------------ segmentation

def segmentation_demo(root: Path, seconds: float = SEGMENTATION_SECONDS, train_size: int = 640,
                      val_size: int = 128, image_size: int = 64, batch_size: int = 8) -> Path:
    """Train a U-Net on ``shapes`` within about ``seconds``, evaluate it, predict a few
    images and a mosaic (tiled); returns the run directory."""
    spec = build_data("shapes", image_size=image_size, train_size=train_size, val_size=val_size)
    per_image = seconds_per_image("unet", UNET_OPTIONS, (spec.in_chans, *spec.image_size), spec.num_classes,
                                  batch_size, "segmentation")
    epochs, train_size = plan_budget(seconds, per_image, train_size, val_size)
    print(f"one training image takes {1000 * per_image:.0f} ms here: {epochs} epoch(s) of {train_size} images "
          f"fit in {seconds:.0f} s", flush=True)
    run_dir = root / "unet-shapes"
    section("Train a U-Net on the built-in shapes")
    show_and_run([
        "train", "unet", "--data", "shapes", "--image-size", str(image_size), "--train-size", str(train_size),
        "--val-size", str(val_size), "--epochs", str(epochs), "--batch-size", str(batch_size),
        "--time-limit", f"{1.25 * seconds:.0f}", "--out", str(run_dir), "--progress", "log", "--lr", "3e-3",
        *[arg for key, value in UNET_OPTIONS.items() for arg in ("-k", f"{key}={value}")],
    ])
    section("Evaluate it on the validation images")
    show_and_run(["evaluate", str(run_dir)])

    section("Predict a few images, and a mosaic large enough to go through tiles")
    # A mosaic of validation images just larger than the whole-image limit goes through tiles.
    mosaic = math.isqrt(WHOLE_IMAGE_MAX_PIXELS) // image_size + 1
    images = write_sample_images(spec.val, root / "shapes-images", count=4, mosaic=mosaic)
    predictions = root / "unet-predictions"
    show_and_run(["predict", str(run_dir), str(images), "--out", str(predictions), "--overlay"])
    print(f"\nrun directory: {run_dir}")
    print(f"  plots:       {run_dir / 'plots'} (curves.png, confusion.png, overlays.png)")
    print(f"  predictions: {predictions} (NAME_mask.png, NAME_overlay.png)")
    return run_dir


def write_sample_images(dataset, folder: Path, count: int, mosaic: int = 0) -> Path:
    """Save ``count`` images of ``dataset`` as PNG files (and a ``mosaic x mosaic`` grid of
    them as ``mosaic.png``) in ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    pictures = [_to_uint8(dataset[i]["image"]) for i in range(min(len(dataset), max(count, mosaic * mosaic)))]

    def save(path: Path, pixels: np.ndarray) -> None:
        picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
        write_atomically(path, lambda stream: picture.save(stream, format="PNG"))

    for index, pixels in enumerate(pictures[:count]):
        save(folder / f"sample{index}.png", pixels)
    if mosaic:
        rows = [np.concatenate([pictures[(r * mosaic + c) % len(pictures)] for c in range(mosaic)], axis=1)
                for r in range(mosaic)]
        save(folder / "mosaic.png", np.concatenate(rows, axis=0))
    return folder


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------- classification

def fashion_mnist_missing() -> str | None:
    """Why Fashion-MNIST cannot be loaded (its own message), or None when it can."""
    try:
        build_data("fashion-mnist", train_size=1, val_size=1)
    except FileNotFoundError as err:
        return str(err)
    return None


def classification_demo(root: Path, seconds: float = CLASSIFICATION_SECONDS, train_size: int = 4000,
                        val_size: int = 1000, batch_size: int = 128) -> Path:
    """Train ResNet-20 on a Fashion-MNIST subset within about ``seconds``, evaluate it,
    export it to ONNX and classify a few test images; returns the run directory."""
    spec = build_data("fashion-mnist", train_size=train_size, val_size=val_size)
    per_image = seconds_per_image("resnet20", {}, (spec.in_chans, *spec.image_size), spec.num_classes,
                                  batch_size, "classification")
    epochs, train_size = plan_budget(seconds, per_image, train_size, val_size)
    print(f"one training image takes {1000 * per_image:.1f} ms here: {epochs} epoch(s) of {train_size} images "
          f"fit in {seconds:.0f} s", flush=True)
    run_dir = root / "resnet20-fashion-mnist"
    section("Train a ResNet-20 on a Fashion-MNIST subset")
    show_and_run([
        "train", "resnet20", "--data", "fashion-mnist", "--train-size", str(train_size), "--val-size",
        str(val_size), "--epochs", str(epochs), "--batch-size", str(batch_size), "--time-limit",
        f"{1.25 * seconds:.0f}", "--out", str(run_dir), "--progress", "log",
    ])
    section("Evaluate, export to ONNX, classify a few test images")
    show_and_run(["evaluate", str(run_dir)])
    show_and_run(["export", str(run_dir), "--out", str(root / "resnet20-fashion-mnist.onnx"), "--dynamic-batch"])
    images = write_sample_images(spec.val, root / "fashion-images", count=4)
    show_and_run(["predict", str(run_dir), str(images), "--top-k", "3", "--out", str(root / "resnet20-predictions")])
    print(f"\nrun directory: {run_dir} (plots: {run_dir / 'plots'})")
    return run_dir


# ------------------------------------------------------------------------------- the demo

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cnnzoo.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SEGMENTATION_SECONDS,
                        help=f"U-Net training budget (default {SEGMENTATION_SECONDS:.0f}; the classifier gets "
                             f"{CLASSIFICATION_SECONDS / SEGMENTATION_SECONDS:.0%} of it)")
    parser.add_argument("--skip-tour", action="store_true", help="go straight to the training")
    parser.add_argument("--out", default="runs/demo", help="where the runs go (default runs/demo)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    # On a small, shared CPU PyTorch's intra-op threads wait on each other: a U-Net step on
    # 64x64 images measured 10-50x slower with two threads than with one while another job
    # ran (docs/experiments.md). One thread keeps the demo's two-minute budget meaningful.
    if (os.cpu_count() or 1) <= 2:
        torch.set_num_threads(1)
    if not args.skip_tour:
        tour()
    root = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    segmentation_demo(root, seconds=args.seconds)
    missing = fashion_mnist_missing()
    if missing:
        section("Fashion-MNIST: skipped")
        print(missing)
    else:
        classification_demo(root, seconds=args.seconds * CLASSIFICATION_SECONDS / SEGMENTATION_SECONDS)
    section("Next")
    print(f"everything above is under {root}")
    print("cnnzoo summary resnet50 --depth 2     per-layer costs and receptive fields")
    print("cnnzoo explain                        every lecture topic, computed")
    print("cnnzoo experiment degradation         the ResNet paper's plain-vs-residual comparison")
    print("cnnzoo experiment multipliers         MobileNet's width multipliers: accuracy vs multiply-adds")


if __name__ == "__main__":
    main()
