"""``cnnzoo visualize``: Grad-CAM, saliency, filters, feature maps and receptive fields of a
model on one image, as PNGs (:mod:`cnnzoo.visualize`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from cnnzoo.cli.options import (
    add_model_kwargs_option,
    add_overwrite_option,
    add_threads_option,
    add_weights_option,
    add_which_option,
    apply_threads,
    parse_model_kwargs,
)
from cnnzoo.data.in_memory import fit_image
from cnnzoo.engine.predict import prepare_image
from cnnzoo.engine.runmeta import RunMeta
from cnnzoo.engine.sources import ModelSource, load_model_source, meta_of_weights
from cnnzoo.images.read import read_image
from cnnzoo.utils.atomic import StagedFolder, check_new_folder
from cnnzoo.visualize import PICTURES, write_pictures
from cnnzoo.visualize.write import check_pictures

RANDOM_WEIGHTS = "none (random initialization)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "visualize", help="Grad-CAM, saliency, filters, feature maps and receptive fields as PNGs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Pictures of what a model looks at and what it has learnt, on one image, one PNG each in DIR:\n"
            "  gradcam   Grad-CAM at the last convolutional stage (Selvaraju et al. 2017)\n"
            "  saliency  max over channels of |d score / d input| (Simonyan et al. 2014)\n"
            "  filters   the first layer's filters, each normalized\n"
            "  features  per stage, the channel mean and the first channels of its map\n"
            "  erf       the effective receptive field of a stage's centre unit (Luo et al. 2016),\n"
            "            the theoretical one of `cnnzoo summary` drawn over it\n"
            "The image is prepared as `cnnzoo predict` prepares it. Classifiers: the predicted class (or\n"
            "--class-index); segmenters: every class, a class's score being its logits summed over the pixels.\n"
            "A registered name without --weights has random weights (ImageNet normalization, its default size)."
        ),
        epilog=(
            "examples:\n"
            "  cnnzoo visualize runs/resnet20-fashion shirt.png --out pictures\n"
            "  cnnzoo visualize resnet50 --weights IMAGENET1K_V2 cat.jpg --out cat --what gradcam,saliency\n"
            "  cnnzoo visualize resnet20 photo.png --out erf --what erf --stage 0 --erf-input noise"
        ),
    )
    p.add_argument("model", metavar="MODEL_OR_RUN",
                   help="a registered model name, a run directory or a .safetensors checkpoint")
    p.add_argument("image", help="the image file")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder the PNGs go into (new or empty)")
    p.add_argument("--what", default=",".join(PICTURES), metavar="LIST",
                   help=f"comma-separated pictures (default: all of {','.join(PICTURES)})")
    p.add_argument("--class-index", type=int, metavar="K", help="the class of Grad-CAM and saliency "
                   "(default: the predicted class; segmenters: every class)")
    p.add_argument("--layer", metavar="NAME", help="Grad-CAM's layer, a dotted module name (default: the last stage)")
    p.add_argument("--stage", type=int, default=-1, metavar="N",
                   help="the stage of the effective receptive field (default -1: the deepest)")
    p.add_argument("--erf-input", choices=("image", "noise"), default="image",
                   help="the receptive field's input: the image, or seeded Gaussian noise of its size (default: image)")
    p.add_argument("--channels", type=int, default=8, metavar="N", help="channels shown per stage (default 8)")
    add_model_kwargs_option(p)
    add_which_option(p)
    add_weights_option(p)
    add_threads_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)


def preprocessing(model: nn.Module, source: ModelSource) -> RunMeta:
    """How to feed the model: a run's or its weights' metadata; for a registered model with
    random weights, its default input size with ImageNet's normalization
    (:func:`~cnnzoo.engine.sources.meta_of_weights`'s convention for unknown normalization)."""
    if source.meta is not None:
        return source.meta
    if source.name is None:
        raise ValueError("the preprocessing of this model is not known: give a run or a registered name")
    return meta_of_weights(source.name, model, {"weights": RANDOM_WEIGHTS}, source.model_kwargs)


def prepared_input(model: nn.Module, meta: RunMeta, path: str) -> tuple[torch.Tensor, torch.Tensor, str | None]:
    """``(model input, the image it shows, a note)`` as prediction prepares them
    (:func:`cnnzoo.engine.predict.prepare_image`): a classifier's image fitted to the run's
    size; a segmenter's at its own size, or fitted to the run's when the network cannot
    take that size (gradients need the whole image in one pass, not tiles)."""
    image = read_image(path, channels=meta.in_chans)
    if meta.task == "segmentation":
        check = getattr(model, "check_input", None)
        try:
            if check is not None:
                check(image[None])
            return prepare_image(image, meta, resize=False), image, None
        except ValueError as refused:
            note = f"note: {refused}; the image is resized to {meta.image_size[0]}x{meta.image_size[1]}"
            image = fit_image(image, meta.image_size, None, meta.interpolation)
            return prepare_image(image, meta, resize=False), image, note
    image = fit_image(image, meta.image_size, meta.resize_size, meta.interpolation)
    return prepare_image(image, meta, resize=False), image, None


def run(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    what = check_pictures([name.strip() for name in args.what.split(",") if name.strip()])
    if args.channels < 1:
        raise ValueError(f"--channels must be a positive integer, got {args.channels}")
    out = Path(args.out)
    check_new_folder(out, args.overwrite)
    model, source = load_model_source(args.model, parse_model_kwargs(args.model_kwargs), which=args.which,
                                      weights=args.weights)
    meta = preprocessing(model, source)
    if meta.task not in ("classification", "segmentation"):
        raise ValueError(f"visualize draws the pictures of classifiers and segmenters; {source.name} is a "
                         f"{meta.task} model (its reconstructions are in its run's plots/reconstructions.png)")
    x, image, note = prepared_input(model, meta, args.image)
    if note:
        print(note)
    # Gaussian noise of the input's size, the same on every call (Luo et al.'s random input)
    erf_input = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) if args.erf_input == "noise" else None
    with StagedFolder(out) as staged:  # every picture made before any is put in place
        written = write_pictures(
            model, x, image, staged.path, what=what, class_names=meta.class_names, target=args.class_index,
            per_class=meta.task == "segmentation", stage=args.stage, layer=args.layer, channels=args.channels,
            erf_input=erf_input,
        )
    weights = meta.weights or "trained run"
    print(f"{source.name} on {args.image} at {x.shape[-2]}x{x.shape[-1]} (weights: {weights})")
    for path in written:
        print(f"wrote {staged.final(path)}")
    return 0
