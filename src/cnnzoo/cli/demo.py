"""``make demo``: a tour of the zoo, then the main job: train, evaluate, predict, export.

1. The tour: the registered models, a side-by-side cost comparison of the classic
   classifiers and the lecture notes' worked examples, all computed by the library.
2. A U-Net (padded, base width 8, batch norm) trained on the built-in ``shapes`` set for
   about two minutes on a CPU (the number of epochs is chosen from a measured training
   step so that the cosine schedule runs to its end within the budget; bf16 where the CPU
   has bf16 instructions, with the thread count that measured faster), evaluated, and used
   to predict a few images and one large scene that goes through the overlap-tile path;
   the scene's prediction is scored against its drawn truth and shown beside it.
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
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnzoo
from cnnzoo.analysis import explain
from cnnzoo.classical.metrics import score_segmentation
from cnnzoo.cli.main import main as cnnzoo_main
from cnnzoo.data import build_data
from cnnzoo.data.synthetic import SHAPE_CLASSES, make_shapes_scene
from cnnzoo.engine.speed import default_amp, fastest_thread_count, training_step_timer
from cnnzoo.images.write import class_palette, write_png

CLASSICS = [
    "alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnext50_32x4d",
    "densenet121", "mobilenet_v1", "squeezenet1_0", "efficientnet_b0",
]
TOPICS = ["convolution-cost", "bottleneck", "depthwise-separable"]

SEGMENTATION_SECONDS = 120.0
CLASSIFICATION_SECONDS = 45.0
# The U-Net recipe (measured on this project's 2-core CPUs, docs/training.md): base width 8
# trains 2-3x more images per second than 16 and reaches a higher mean IoU in two minutes;
# 3,000 drawn images (more data is free) and the Dice term, which pulls on the small
# classes' overlap that mean IoU scores.
UNET_OPTIONS = {"depth": 4, "base_width": 8, "padding": True, "batch_norm": True}
UNET_IMAGE_SIZE = 64
UNET_BATCH_SIZE = 16
UNET_RECIPE = ["--loss", "ce+dice", "--optimizer", "adamw", "--lr", "3e-3", "--weight-decay", "1e-4",
               "--augment", "light"]
SCENE_SIZE = (512, 768)  # larger than the whole-image limit: predicted tile by tile


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

def measure_training(model_name: str, model_kwargs: dict, input_size: tuple[int, int, int], num_classes: int,
                     batch_size: int, task: str, **recipe) -> tuple[float, int, str]:
    """``(seconds per training image, threads, amp)`` of this recipe here: bf16 where the CPU
    has bf16 instructions (:func:`cnnzoo.engine.speed.default_amp`), and whichever of one
    thread or all measured faster (left set for the run)."""
    amp = default_amp(torch.device("cpu"))
    timer = training_step_timer(model_name, num_classes, input_size, batch_size, task, model_kwargs=model_kwargs,
                                amp=amp, steps=2, **recipe)  # contiguous; the run may measure channels-last faster
    threads, timings = fastest_thread_count(timer)
    return timings[threads] / batch_size, threads, amp


def describe_speed(per_image: float, threads: int, amp: str, epochs: int, train_size: int, seconds: float) -> str:
    precision = "bf16" if amp == "bf16" else "float32"
    return (f"{1 / per_image:.0f} training images/s here ({precision}, {threads} thread(s)): "
            f"{epochs} epoch(s) of {train_size} images fit in {seconds:.0f} s")


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

def segmentation_demo(root: Path, seconds: float = SEGMENTATION_SECONDS, train_size: int = 3000,
                      val_size: int = 200, image_size: int = UNET_IMAGE_SIZE, batch_size: int = UNET_BATCH_SIZE,
                      scene_size: tuple[int, int] = SCENE_SIZE) -> Path:
    """Train a U-Net on ``shapes`` within about ``seconds``, evaluate it, predict a few
    images and a large scene (tiled), score the scene; returns the run directory."""
    spec = build_data("shapes", image_size=image_size, train_size=train_size, val_size=val_size)
    per_image, threads, amp = measure_training("unet", UNET_OPTIONS, (spec.in_chans, *spec.image_size),
                                               spec.num_classes, batch_size, "segmentation", optimizer="adamw",
                                               loss="ce+dice", augment="light")
    epochs, train_size = plan_budget(seconds, per_image, train_size, val_size)
    print(describe_speed(per_image, threads, amp, epochs, train_size, seconds), flush=True)
    run_dir = root / "unet-shapes"
    section("Train a U-Net on the built-in shapes")
    show_and_run([
        "train", "unet", "--data", "shapes", "--image-size", str(image_size), "--train-size", str(train_size),
        "--val-size", str(val_size), "--epochs", str(epochs), "--batch-size", str(batch_size), *UNET_RECIPE,
        "--amp", amp, "--threads", str(threads), "--time-limit", f"{1.25 * seconds:.0f}", "--out", str(run_dir),
        "--progress", "log", *[arg for key, value in UNET_OPTIONS.items() for arg in ("-k", f"{key}={value}")],
    ])
    section("Evaluate it on the validation images")
    show_and_run(["evaluate", str(run_dir)])

    section("Predict a few images, and a large scene that goes through tiles")
    images = write_sample_images(spec.val, root / "shapes-images", count=4)
    scene, truth = make_shapes_scene(scene_size, scale=image_size)
    write_png(images / "scene.png", scene.transpose(1, 2, 0))
    predictions = root / "unet-predictions"
    show_and_run(["predict", str(run_dir), str(images), "--out", str(predictions), "--overlay"])
    with Image.open(predictions / "scene_mask.png") as mask:
        predicted = np.array(mask)
    print("\nthe scene against its drawn truth: " + ", ".join(
        f"{name} IoU {iou:.2f}" for name, iou in zip(SHAPE_CLASSES, score_segmentation(truth, predicted,
                                                                                     len(SHAPE_CLASSES)).iou)))
    comparison = root / "scene-truth-vs-prediction.png"
    write_png(comparison, side_by_side(scene.transpose(1, 2, 0), truth, predicted, len(SHAPE_CLASSES)))
    print(f"\nrun directory: {run_dir}")
    print(f"  plots:       {run_dir / 'plots'} (curves.png, confusion.png, overlays.png)")
    print(f"  predictions: {predictions} (NAME_mask.png, NAME_overlay.png)")
    print(f"  the scene:   {comparison} (image | truth | prediction)")
    return run_dir


def side_by_side(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, num_classes: int,
                 gap: int = 8) -> np.ndarray:
    """``image | truth | prediction`` as one H x (3W + 2 gap) x 3 uint8 picture, the masks in
    the class colours of the run's plots."""
    palette = class_palette(num_classes)
    white = np.full((image.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([image, white, palette[truth], white, palette[predicted]], axis=1)


def write_sample_images(dataset, folder: Path, count: int) -> Path:
    """Save the first ``count`` images of ``dataset`` as PNG files in ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(min(len(dataset), count)):
        write_png(folder / f"sample{index}.png", _to_uint8(dataset[index]["image"]))
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
    per_image, threads, amp = measure_training("resnet20", {}, (spec.in_chans, *spec.image_size), spec.num_classes,
                                               batch_size, "classification", augment="default")
    epochs, train_size = plan_budget(seconds, per_image, train_size, val_size)
    print(describe_speed(per_image, threads, amp, epochs, train_size, seconds), flush=True)
    run_dir = root / "resnet20-fashion-mnist"
    section("Train a ResNet-20 on a Fashion-MNIST subset")
    show_and_run([
        "train", "resnet20", "--data", "fashion-mnist", "--train-size", str(train_size), "--val-size",
        str(val_size), "--epochs", str(epochs), "--batch-size", str(batch_size), "--amp", amp, "--threads",
        str(threads), "--time-limit", f"{1.25 * seconds:.0f}", "--out", str(run_dir), "--progress", "log",
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
