"""``cnnzoo weights``: the published weights a model can start from, and whether they are here."""

from __future__ import annotations

import argparse
import fnmatch

from cnnzoo.pretrained import hub_checkpoints_dir, published_models, published_weights
from cnnzoo.utils.text import format_table

EPILOG = """\
examples:
  cnnzoo weights                 (every architecture torchvision publishes weights for)
  cnnzoo weights 'resnet*'
  cnnzoo train resnet50 --data photos/ --weights IMAGENET1K_V2

"cached" says whether the file is in torch.hub's cache ($TORCH_HOME/hub/checkpoints); a
weights name not cached is downloaded on first use, or, offline, cnnzoo says where to put it.
Accuracies are torchvision's published ImageNet-1k validation results (see docs/training.md).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "weights", help="list the published pretrained weights (torchvision's ImageNet-1k files)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The published weights of each architecture cnnzoo shares with torchvision: their name for "
                    "--weights, ImageNet-1k top-1 / top-5, how their images were prepared, and whether the file "
                    "is in the torch hub cache.",
        epilog=EPILOG,
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern of model names (default: all)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    models = [name for name in published_models() if fnmatch.fnmatchcase(name, args.pattern)]
    if not models:
        raise ValueError(f"no published weights for a model matching {args.pattern!r}; "
                         f"they exist for {', '.join(published_models())}")
    cache = hub_checkpoints_dir()
    rows = []
    for model in models:
        entries = published_weights(model)
        default = entries.get("DEFAULT")
        for name, entry in entries.items():
            if name == "DEFAULT":
                continue
            rows.append([model, name + (" (DEFAULT)" if entry is default else ""), _percent(entry.acc1),
                         _percent(entry.acc5), f"{entry.resize_size} -> {entry.crop_size}", entry.interpolation,
                         "yes" if (cache / entry.file_name).is_file() else "no"])
    header = ["model", "weights", "top-1", "top-5", "resize -> crop", "interpolation", "cached"]
    print(format_table(header, rows, align_right={2, 3}))
    print(f"cache: {cache}")
    return 0


def _percent(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"
