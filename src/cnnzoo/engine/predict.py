"""Prediction with a trained model: class probabilities for classifiers, masks for
segmenters, images for auto-encoders.

Images are prepared exactly as in training (:mod:`cnnzoo.images.read`): decoded to
``C x H x W`` in [0, 1] with the model's channels (gray repeated to RGB, colour to its
luma), classification inputs brought to the run's ``image_size`` as its preprocessing says
(:func:`cnnzoo.data.in_memory.fit_image`: resized, or with the run's ``resize_size`` the
shorter side resized and the centre cropped, with its ``interpolation``; ``keep_aspect``
crops the centre of runs without one too), then normalized with the run's ``mean`` and ``std``.

* Classifiers give the ``top_k`` classes and their softmax probabilities per image,
  written as JSON or CSV (:func:`write_class_predictions`).
* Segmenters give a class per pixel at the image's own size, written as a palette PNG
  (the pixel values are the class indices; any viewer shows them in colour) and, on
  request, an overlay (the image tinted with the class colours, region outlines in white):
  :func:`cnnzoo.images.write.write_label_map` and :func:`~cnnzoo.images.write.write_overlay`,
  the same files ``cnnzoo segment-classic`` writes. Whether an image is predicted whole or
  tile by tile is :func:`cnnzoo.engine.tiling.segment_image`'s decision.
* Auto-encoders (reconstruction) give each image back at its own size, written as
  ``NAME_reconstruction.png`` (grey or RGB, the output clamped to [0, 1]), with the PSNR of
  the reconstruction against the image (:func:`reconstruct_images`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.data.in_memory import fit_image
from cnnzoo.data.spec import DENSE_TASKS
from cnnzoo.deploy.runners import Runner
from cnnzoo.engine.checkpoint import Trained, load_trained
from cnnzoo.engine.compile import DEFAULT_MAX_DROP, compile_model
from cnnzoo.engine.distributed import resolve_device
from cnnzoo.engine.metrics import psnr_from_mse
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.engine.sources import load_model_source
from cnnzoo.engine.tiling import WHOLE_IMAGE_MAX_PIXELS, model_device, segment_image
from cnnzoo.images.read import IMAGE_SUFFIXES, check_image_file, read_image
from cnnzoo.images.write import class_palette, write_label_map, write_overlay, write_png
from cnnzoo.utils.atomic import StagedFolder, refuse_to_replace, write_atomically

__all__ = [
    "PREDICTION_FORMATS", "ClassPrediction", "ImageReconstruction", "MaskPrediction", "PredictResult",
    "classify_images", "find_images", "predict", "prepare_image", "reconstruct_images", "segment_images",
    "write_class_predictions",
]

PREDICTION_FORMATS = ("json", "csv")


@dataclass
class ClassPrediction:
    """The ``top_k`` classes of one image, most probable first."""

    image: Path
    indices: list[int]
    classes: list[str]
    probabilities: list[float]


@dataclass
class MaskPrediction:
    """One segmented image: where its mask (and overlay) went and how much of each class it holds."""

    image: Path
    size: tuple[int, int]
    tiled: bool
    mask: Path
    overlay: Path | None
    class_fractions: dict[str, float]


@dataclass
class ImageReconstruction:
    """One image given back by an auto-encoder: where it went and how close it came."""

    image: Path
    size: tuple[int, int]
    reconstruction: Path
    psnr: float  # dB, 10 log10(1 / MSE) against the image (values in [0, 1])


@dataclass
class PredictResult:
    """What :func:`predict` did: the task, one prediction per image and the files written."""

    task: str
    predictions: list[ClassPrediction] | list[MaskPrediction] | list[ImageReconstruction]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how a compiled runner was chosen and checked


# ------------------------------------------------------------------------------- inputs

def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders searched recursively for
    :data:`~cnnzoo.images.read.IMAGE_SUFFIXES` (any case; hidden files skipped), sorted per
    folder, each file once.

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a
    folder without images or no inputs at all.
    """
    if not inputs:
        raise ValueError("no input images given")
    found: dict[Path, None] = {}
    for entry in map(Path, inputs):
        if entry.is_dir():
            images = sorted(
                path for path in entry.rglob("*")
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                and not any(part.startswith(".") for part in path.relative_to(entry).parts)
            )
            if not images:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {entry}")
            found.update(dict.fromkeys(images))
        elif entry.is_file():
            found[entry] = None
        else:
            raise FileNotFoundError(f"no such image file or folder: {entry}")
    return list(found)


def prepare_image(image: torch.Tensor, meta: RunMeta, resize: bool, keep_aspect: bool = False) -> torch.Tensor:
    """``1 x C x H x W`` model input from a ``C x H x W`` image in [0, 1] (already in the
    model's channels): when ``resize``, brought to the run's ``image_size`` as its
    preprocessing says (with ``resize_size``: shorter side to it, centre crop; otherwise
    resized, or with ``keep_aspect`` resized to cover it and centre cropped), then
    normalized with its ``mean`` and ``std``."""
    if resize:
        image = fit_image(image, meta.image_size, meta.resize_size, meta.interpolation, keep_aspect)
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(-1, 1, 1)
    if len(mean) != image.shape[0]:
        raise ValueError(f"the run's mean has {len(mean)} channels, the image {image.shape[0]}")
    return ((image - mean) / std)[None]


# ------------------------------------------------------------------------ classification

@torch.no_grad()
def classify_images(
    model: nn.Module, meta: RunMeta, paths: Sequence[Path], top_k: int = 5, batch_size: int = 32,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None, keep_aspect: bool = False,
) -> list[ClassPrediction]:
    """The ``top_k`` classes (at most all of them) and softmax probabilities of each image
    (prepared by :func:`prepare_image`, ``keep_aspect`` included); ``forward`` runs the
    batches instead of the model (a compiled runner of :mod:`cnnzoo.deploy`)."""
    _check_positive("top_k", top_k)
    _check_positive("batch_size", batch_size)
    names = meta.class_names
    k = min(top_k, meta.num_classes)
    device = model_device(model) if forward is None else torch.device("cpu")
    run = forward if forward is not None else model
    predictions = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = torch.cat([prepare_image(read_image(p, channels=meta.in_chans), meta, resize=True,
                                         keep_aspect=keep_aspect) for p in chunk])
        probabilities = run(batch.to(device)).float().softmax(dim=1).cpu()
        values, indices = probabilities.topk(k, dim=1)
        for path, top_values, top_indices in zip(chunk, values.tolist(), indices.tolist()):
            predictions.append(ClassPrediction(path, top_indices, [names[i] for i in top_indices], top_values))
    return predictions


def write_class_predictions(
    predictions: Sequence[ClassPrediction], path: str | os.PathLike, format: str = "json"
) -> Path:
    """Write the predictions atomically: JSON (one object per image with its ``top`` list) or
    CSV (one row per image and rank: ``image,rank,class_index,class_name,probability``)."""
    if format == "json":
        records = [
            {"image": str(p.image), "top": [
                {"class_index": i, "class_name": c, "probability": q}
                for i, c, q in zip(p.indices, p.classes, p.probabilities)
            ]}
            for p in predictions
        ]
        text = json.dumps({"predictions": records}, indent=1) + "\n"
    elif format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "rank", "class_index", "class_name", "probability"])
        for p in predictions:
            for rank, (i, c, q) in enumerate(zip(p.indices, p.classes, p.probabilities), start=1):
                writer.writerow([str(p.image), rank, i, c, f"{q:.6g}"])
        text = buffer.getvalue()
    else:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(PREDICTION_FORMATS)}")
    return write_atomically(path, lambda stream: stream.write(text.encode()))


# -------------------------------------------------------------------------- segmentation

@torch.no_grad()
def segment_images(
    model: nn.Module, meta: RunMeta, paths: Sequence[Path], out_dir: str | os.PathLike, *,
    roots: Sequence[Path | None] | None = None, overlay: bool = False, tile_size: int | None = None,
    max_pixels: int = WHOLE_IMAGE_MAX_PIXELS, forward: Runner | None = None,
) -> list[MaskPrediction]:
    """Segment each image and write ``NAME_mask.png`` (and ``NAME_overlay.png``) under ``out_dir``.

    ``roots[i]`` is the folder image ``i`` was found in (its sub-folders are kept under
    ``out_dir``) or ``None`` (a file given by name: ``NAME`` is its stem). Names that
    would collide get ``-2``, ``-3``, ... appended.
    """
    out_dir = Path(out_dir)
    names = _output_names(paths, roots or [None] * len(paths))
    class_names = meta.class_names
    palette = class_palette(len(class_names))  # the colours of the run's own plots
    predictions = []
    for path, name in zip(paths, names):
        image = read_image(path, channels=meta.in_chans)
        if forward is not None:  # a compiled runner takes tiles of the size it was built for
            tile_size = forward.input_size[1]
        labels, tiled = segment_image(model, prepare_image(image, meta, resize=False), tile_size, max_pixels,
                                      forward=forward)
        labels_np = labels.numpy()
        mask_path = out_dir / f"{name}_mask.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        write_label_map(mask_path, labels_np, palette)
        overlay_path = None
        if overlay:
            overlay_path = out_dir / f"{name}_overlay.png"
            write_overlay(overlay_path, image.permute(1, 2, 0).numpy(), labels_np, palette=palette)
        counts = np.bincount(labels_np.ravel(), minlength=len(class_names))
        fractions = {class_names[i]: float(counts[i] / labels_np.size) for i in np.flatnonzero(counts)}
        predictions.append(MaskPrediction(path, tuple(labels_np.shape), tiled, mask_path, overlay_path, fractions))
    return predictions


# ------------------------------------------------------------------------ reconstruction

@torch.no_grad()
def reconstruct_images(
    model: nn.Module, meta: RunMeta, paths: Sequence[Path], out_dir: str | os.PathLike, *,
    roots: Sequence[Path | None] | None = None,
) -> list[ImageReconstruction]:
    """Give each image back through the auto-encoder, at its own size, and write
    ``NAME_reconstruction.png`` under ``out_dir`` (names as :func:`segment_images`')."""
    out_dir = Path(out_dir)
    device = model_device(model)
    predictions = []
    for path, name in zip(paths, _output_names(paths, roots or [None] * len(paths))):
        image = read_image(path, channels=meta.in_chans)
        output = model(prepare_image(image, meta, resize=False).to(device))[0].float().clamp(0, 1).cpu()
        psnr = psnr_from_mse(float(((output - image) ** 2).mean()))
        pixels = (output.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        target = out_dir / f"{name}_reconstruction.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_png(target, pixels)
        predictions.append(ImageReconstruction(path, tuple(image.shape[-2:]), target, psnr))
    return predictions


# ---------------------------------------------------------------------------- the whole job

def _load(source: str | os.PathLike, which: str, device: torch.device, weights: str | os.PathLike | None) -> Trained:
    """A trained run's model, or a registered model with pretrained weights (and the
    weights' metadata as its run's)."""
    if weights is None:
        return load_trained(source, which=which, map_location=device)
    model, origin = load_model_source(str(source), weights=weights)
    return Trained(model.to(device), origin.meta)


def predict(
    source: str | os.PathLike, inputs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None,
    top_k: int = 5, format: str | None = None, tile_size: int | None = None, overlay: bool = False,
    which: str = "best", device: str = "auto", runtime: str = "torch", precision: str = "fp32",
    max_drop: float = DEFAULT_MAX_DROP, keep_aspect: bool = False, weights: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> PredictResult:
    """Predict every image in ``inputs`` (files or folders) with the trained run ``source``
    (a run directory or a ``.safetensors`` checkpoint), or with registered model ``source``
    built with pretrained ``weights`` (``"IMAGENET1K_V2"``: the ImageNet-1k classes, the
    weights' own preprocessing).

    Auto-encoders: ``NAME_reconstruction.png`` per image under ``out`` (default ``predictions``).
    Classifiers: the ``top_k`` classes per image, written to ``out/predictions.json`` (or
    ``.csv`` with ``format="csv"``) when ``out`` is given; ``keep_aspect`` resizes images
    of a run without ``resize_size`` to cover its size and crops the centre, instead of
    resizing them to it (:func:`prepare_image`). Segmenters: masks (and overlays
    with ``overlay=True``) under ``out`` (default ``predictions``). Every input is checked
    (exists, decodes) and the output folder made before anything is written. ``device``:
    ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    ``runtime`` / ``precision``: eager PyTorch in fp32 by default; anything else compiles the
    model first (:func:`cnnzoo.engine.compile.compile_model`: ``"auto"`` measures the
    runtimes; int8 is calibrated on the run's training images and refused when it costs
    more than ``max_drop`` on its validation split). Compiled runners run on the CPU.

    Files already under ``out`` that this prediction would write are refused unless
    ``overwrite``; the outputs are written into a hidden folder there and moved into place
    once every image is done, so a failure part-way leaves nothing half-made.
    """
    compiled = runtime != "torch" or precision != "fp32"
    if compiled and device not in ("auto", "cpu"):
        raise ValueError(f"a compiled runner runs on the CPU; --device {device} goes with --runtime torch --precision fp32")
    trained = _load(source, which, resolve_device("cpu" if compiled else device), weights)
    task = trained.meta.task
    _check_options(task, top_k, format, tile_size, overlay, keep_aspect)
    if compiled and task == "reconstruction":
        raise ValueError("an auto-encoder predicts with --runtime torch --precision fp32 (compiled runners are "
                         "for classifiers and segmenters)")
    out_dir = _check_out_dir(out if out is not None else (None if task == "classification" else "predictions"))
    paths = find_images(inputs)
    roots = _roots(paths, inputs)
    for path in paths:
        check_image_file(path)  # a bad file is named now, before any output is written
    format = format or "json"
    if out_dir is not None:
        refuse_to_replace(_targets(task, out_dir, format, _output_names(paths, roots), overlay), overwrite)
    runner = None
    if compiled:
        size = (tile_size, tile_size) if task == "segmentation" and tile_size else None
        runner = compile_model(source, runtime, precision, input_size=size, max_drop=max_drop, which=which, log=None,
                               weights=weights)
    notes = runner.report.notes if runner is not None else []
    if task == "classification":
        predictions = classify_images(trained.model, trained.meta, paths, top_k, forward=runner,
                                      keep_aspect=keep_aspect)
        if out_dir is None:
            return PredictResult(task, predictions, [], notes)
        with StagedFolder(out_dir) as staged:  # every check has passed: only now is anything created
            written = write_class_predictions(predictions, staged.path / f"predictions.{format}", format)
        return PredictResult(task, predictions, [staged.final(written)], notes)
    if task == "reconstruction":
        with StagedFolder(out_dir) as staged:
            predictions = reconstruct_images(trained.model, trained.meta, paths, staged.path, roots=roots)
        predictions = [replace(p, reconstruction=staged.final(p.reconstruction)) for p in predictions]
        return PredictResult(task, predictions, [p.reconstruction for p in predictions], notes)
    with StagedFolder(out_dir) as staged:
        predictions = segment_images(trained.model, trained.meta, paths, staged.path, roots=roots, overlay=overlay,
                                     tile_size=tile_size, forward=runner)
    predictions = [replace(p, mask=staged.final(p.mask), overlay=p.overlay and staged.final(p.overlay))
                   for p in predictions]
    files = [f for p in predictions for f in (p.mask, p.overlay) if f is not None]
    return PredictResult(task, predictions, files, notes)


def _targets(task: str, out_dir: Path, format: str, names: list[str], overlay: bool) -> list[Path]:
    """The files a prediction writes under ``out_dir``."""
    if task == "classification":
        return [out_dir / f"predictions.{format}"]
    if task == "reconstruction":
        return [out_dir / f"{name}_reconstruction.png" for name in names]
    suffixes = ["_mask.png", *(["_overlay.png"] if overlay else [])]
    return [out_dir / f"{name}{suffix}" for name in names for suffix in suffixes]


# ------------------------------------------------------------------------------- helpers

def _check_options(task: str, top_k: int, format: str | None, tile_size: int | None, overlay: bool,
                   keep_aspect: bool = False) -> None:
    if task == "classification":
        _check_positive("top_k", top_k)
        if format is not None and format not in PREDICTION_FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {', '.join(PREDICTION_FORMATS)}")
        if tile_size is not None:
            raise ValueError("a tile size applies only to segmentation models; this run is a classifier")
        if overlay:
            raise ValueError("overlays apply only to segmentation models; this run is a classifier")
    elif task in DENSE_TASKS:
        model = "a segmenter writes PNG masks" if task == "segmentation" else "an auto-encoder writes PNG images"
        if format is not None:
            raise ValueError(f"a format (json, csv) applies only to classifiers; {model}")
        if keep_aspect:
            raise ValueError(f"keeping the aspect ratio applies only to classifiers; {model}, each at the "
                             "image's own size")
        if task == "reconstruction" and (tile_size is not None or overlay):
            raise ValueError(f"tiles and overlays apply only to segmentation models; {model}")
        if tile_size is not None:
            _check_positive("tile_size", tile_size)
    else:
        raise ValueError(f"cannot predict with a {task!r} model")


def _check_out_dir(out: str | os.PathLike | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file; give a folder")
    return out


def _roots(paths: Sequence[Path], inputs: Sequence[str | os.PathLike]) -> list[Path | None]:
    """For each image, the input folder it was found in (the first that holds it) or None."""
    folders = [Path(entry) for entry in inputs if Path(entry).is_dir()]
    roots = []
    for path in paths:
        roots.append(next((folder for folder in folders if path.is_relative_to(folder)), None))
    return roots


def _output_names(paths: Sequence[Path], roots: Sequence[Path | None]) -> list[str]:
    names, used = [], set()
    for path, root in zip(paths, roots):
        base = (path.relative_to(root).with_suffix("") if root is not None else Path(path.stem)).as_posix()
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{base}-{number}"
        used.add(name)
        names.append(name)
    return names


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
