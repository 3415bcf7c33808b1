"""The zoo's read-only commands: ``list``, ``summary``, ``compare`` and ``explain``."""

from __future__ import annotations

import argparse
import sys

from torch import nn

import cnnzoo
from cnnzoo import analysis
from cnnzoo.analysis import explain
from cnnzoo.cli.options import (
    add_model_kwargs_option,
    add_weights_option,
    add_which_option,
    parse_model_kwargs,
    parse_size_option,
)
from cnnzoo.engine.sources import default_input_size, load_model_source, resolve_input_size
from cnnzoo.registry import create_meta_model
from cnnzoo.utils.atomic import check_output_path
from cnnzoo.utils.sizes import parse_input_size
from cnnzoo.utils.text import format_count, format_table

FORMATS = ("table", "csv", "json", "markdown")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    formatter = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "list", help="list the registered models", formatter_class=formatter,
        description="List the registered models with their family, year, default input and parameters.",
        epilog="example:\n  cnnzoo list 'resnet*'",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'vgg*' (default: all)")
    p.set_defaults(run=run_list)

    p = subparsers.add_parser(
        "summary", help="per-layer costs of one model", formatter_class=formatter,
        description=(
            "Per layer: output shape, parameters, multiply-adds (MACs; FLOPs = 2 x MACs), activation "
            "memory and receptive field, then the totals. Runs on the meta device: no real compute. "
            "A trained run's model (its directory or a .safetensors checkpoint) is summarised at the "
            "run's input size."
        ),
        epilog="examples:\n  cnnzoo summary resnet50 --depth 2\n"
               "  cnnzoo summary mobilenet_v1 -k width_mult=0.5 --input 3x160x160 --format json\n"
               "  cnnzoo summary resnet20 -k in_chans=1 --input 1x28x28\n"
               "  cnnzoo summary runs/resnet20-fashion-mnist-20250101-120000\n"
               "  cnnzoo summary vgg16 --plot vgg16_costs.png",
    )
    p.add_argument("model", help="a registered model name (see `cnnzoo list`), a run directory or a .safetensors checkpoint")
    p.add_argument("--input", default=None, metavar="CxHxW",
                   help="input size, also HxW with the model's channels (default: the model's own, a run's size)")
    p.add_argument("--depth", type=int, default=None, help="fold layers deeper than N levels into their parent")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also write a PNG of MACs and parameters per block (at --depth, default 1)")
    add_model_kwargs_option(p)
    add_which_option(p)
    add_weights_option(p)
    p.set_defaults(run=run_summary)

    p = subparsers.add_parser(
        "compare", help="several models side by side", formatter_class=formatter,
        description=("Parameters, MACs and activation memory at each model's default input (or --input), with "
                     "the published top-1 accuracy, which was measured at the model's own input."),
        epilog="example:\n  cnnzoo compare vgg16 resnet50 mobilenet_v1 efficientnet_b0",
    )
    p.add_argument("models", nargs="+", help="registered model names")
    p.add_argument("--input", default=None, metavar="CxHxW", help="one input size for all (default: each model's own)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(run=run_compare)

    p = subparsers.add_parser(
        "explain", help="the formulas and the lecture notes' worked examples, computed", formatter_class=formatter,
        description="Explain a building block's cost with the lecture notes' worked numbers, computed by the library.",
        epilog="examples:\n  cnnzoo explain            # list the topics\n  cnnzoo explain depthwise-separable\n"
               "  cnnzoo explain notes      # where the lecture notes are wrong, with the evidence",
    )
    p.add_argument("topic", nargs="?", help="a topic; without one, the list of topics")
    p.set_defaults(run=run_explain)


def input_size_for(name: str, text: str | None, kwargs: dict, hint: str = "add -k in_chans={}") -> tuple[int, int, int]:
    """``--input`` as (C, H, W) for the registered model ``name`` built with ``kwargs``: its
    default input when none is given, its channels when the text names none. Channels the
    model is not built with are a ``ValueError`` ending in ``hint`` (``{}``: the input's channels)."""
    default = cnnzoo.model_info(name).default_input
    channels = kwargs.get("in_chans", default[0])
    if text is None:
        return (channels, default[1], default[2])
    size = parse_input_size(text, default_channels=channels)
    check_channels(name, channels, text, size, hint.format(size[0]))
    return size


def check_channels(what: str, channels: int, text: str | None, size: tuple[int, int, int], hint: str) -> None:
    """``ValueError`` when ``--input`` (``text``, read as ``size``) has other channels than the
    model (``what``) is built with; ``hint`` says what to do instead."""
    if size[0] != channels:
        raise ValueError(f"{what} is built with {channels} input channel(s) but --input {text} has {size[0]}: {hint}")


def summary_target(args: argparse.Namespace) -> tuple[nn.Module, str, tuple[int, int, int]]:
    """The model ``cnnzoo summary`` describes, its name and its input size: a registered model
    built on the meta device, or a trained run's model (a run directory or a checkpoint) at the
    run's own input size (:func:`cnnzoo.engine.sources.load_model_source`)."""
    kwargs = parse_model_kwargs(args.model_kwargs)
    if args.model in cnnzoo.list_models() and args.weights is None:
        return create_meta_model(args.model, **kwargs), args.model, input_size_for(args.model, args.input, kwargs)
    if args.weights is not None:  # the weights load (and say what loaded); their input size is the default
        model, source = load_model_source(args.model, kwargs, weights=args.weights)
        print(f"weights: {model.pretrained_cfg['weights']}: {model.pretrained_cfg['loaded']}")
        return model, args.model, resolve_input_size(model, source, parse_size_option(args.input))
    # a run or a checkpoint; an unknown name fails in it, with the closest registered names
    model, source = load_model_source(args.model, kwargs, which=args.which)
    size = resolve_input_size(model, source, parse_size_option(args.input))
    check_channels(f"the run's {source.name}", default_input_size(model, source)[0], args.input, size,
                   "give --input as HxW (the run's channels)")
    return model, f"{source.name} ({args.model})", size


def run_list(args: argparse.Namespace) -> int:
    names = cnnzoo.list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; `cnnzoo list` shows them all")
    rows = []
    for name in names:
        info = cnnzoo.model_info(name)
        params = analysis.count_params(create_meta_model(name))
        rows.append([name, info.task, info.family, str(info.year), "x".join(map(str, info.default_input)), format_count(params)])
    print(format_table(["model", "task", "family", "year", "input", "params"], rows, align_right={5}))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    model, name, input_size = summary_target(args)
    if args.plot:
        check_output_path(args.plot, create_folder=True)  # before any output is printed
    summary = analysis.summarize(model, input_size)
    summary.model_name = name  # the registered name tells resnet18 from resnet50
    renderers = {
        "table": lambda: summary.to_table(depth=args.depth),
        "csv": lambda: summary.to_csv(depth=args.depth),
        "json": lambda: summary.to_json(depth=args.depth),
        "markdown": lambda: summary.to_markdown(depth=args.depth),
    }
    sys.stdout.write(renderers[args.format]().rstrip("\n") + "\n")
    if args.plot:
        depth = 1 if args.depth is None else args.depth  # every layer would be hundreds of bars
        summary.plot(args.plot, depth=depth, title=f"{name} at {'x'.join(map(str, input_size))}")
        sys.stdout.flush()  # the summary's last line first, where both streams go to one place
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def compare_rows(names: list[str], input_text: str | None) -> list[dict]:
    """One row per model: its costs at ``input_text`` (its own input when ``None``), its
    published top-1 with the input (``top1_input``, HxW) that accuracy was measured at, and
    the paper's own figures (``paper_*``) where the published ones are torchvision's."""
    rows = []
    for name in names:
        info = cnnzoo.model_info(name)
        input_size = input_size_for(name, input_text, {}, hint="give --input as HxW (each model's own channels)")
        total = analysis.summarize(create_meta_model(name), input_size).total
        rows.append({
            "model": name,
            "input": "x".join(map(str, input_size)),
            "params": total.params,
            "macs": total.macs,
            "activation_bytes": total.activation_bytes,
            "top1": info.top1,
            "top1_input": "x".join(map(str, info.default_input[1:])) if info.top1 is not None else None,
            "dataset": info.dataset if info.top1 is not None else None,
            "source": info.source or None,
            # the authors' own figures, where the ones above are torchvision's
            "paper_params": info.paper_params,
            "paper_macs": info.paper_macs,
            "paper_top1": info.paper_top1,
            "paper_source": info.paper_source or None,
        })
    return rows


def run_compare(args: argparse.Namespace) -> int:
    for name in args.models:
        cnnzoo.model_info(name)
    rows = compare_rows(args.models, args.input)
    columns = ["model", "input", "params", "macs", "activation_bytes", "top1", "top1_input", "dataset"]
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
        return 0
    if args.format == "csv":
        import csv

        paper_columns = ["paper_params", "paper_macs", "paper_top1", "paper_source"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns + ["source"] + paper_columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    header = ["model", "input", "params", "MACs", "activations", "top-1 %", "paper top-1 %", "on"]
    body = [[
        r["model"], r["input"], format_count(r["params"]), format_count(r["macs"]),
        format_count(r["activation_bytes"], unit="B"),
        _percent(r["top1"]), _percent(r["paper_top1"]), r["dataset"] or "-",
    ] for r in rows]
    print(format_table(header, body, align_right={2, 3, 4, 5, 6}, markdown=args.format == "markdown"))
    if args.format == "table":
        print("\nMACs = multiply-adds for one image (FLOPs = 2 x MACs); activations = bytes of every layer output (float32).")
    for note in (top1_note(rows), paper_note(rows)):
        if note:
            print(("" if args.format == "table" else "\n") + note)
    return 0


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def paper_note(rows: list[dict]) -> str | None:
    """The paper's own figures of each row that has them, with their source: ``top-1 %`` is
    torchvision's where ``paper top-1 %`` is given. The paper's MACs are set against the
    computed ones when the row is at the model's own input. ``None`` when no row has any."""
    lines = []
    for r in rows:
        if r["paper_source"] is None:
            continue
        figures = []
        if r["paper_params"] is not None:
            figures.append(f"{format_count(r['paper_params'])} params")
        if r["paper_macs"] is not None:
            at_own_input = r["top1_input"] == r["input"].split("x", 1)[1]
            difference = f" (computed here: {100 * (r['macs'] / r['paper_macs'] - 1):+.1f}%)" if at_own_input else ""
            figures.append(f"{format_count(r['paper_macs'])} MACs{difference}")
        if r["paper_top1"] is not None:
            figures.append(f"top-1 {r['paper_top1']:.2f} %")
        lines.append(f"  {r['model']}: {', '.join(figures)}; {r['paper_source']}")
    if not lines:
        return None
    return "\n".join(["the papers' own figures, where top-1 % is torchvision's:", *lines])


def top1_note(rows: list[dict]) -> str | None:
    """The footnote a table needs when its costs are not at the input its top-1 was measured
    at: ``top-1 % at the published input (224x224), not at 128x128``; ``None`` when they all are."""
    moved = [r for r in rows if r["top1_input"] and r["top1_input"] != r["input"].split("x", 1)[1]]
    if not moved:
        return None
    published = sorted({r["top1_input"] for r in moved})
    at = published[0] if len(published) == 1 else ", ".join(f"{r['model']} {r['top1_input']}" for r in moved)
    measured = sorted({r["input"].split("x", 1)[1] for r in moved})
    return f"top-1 % at the published input ({at}), not at {', '.join(measured)}: the costs alone follow --input."


def run_explain(args: argparse.Namespace) -> int:
    # no topic: the list of topics; the zoo's models are built on the meta device, to be counted
    print(explain.explain(args.topic, create_model=create_meta_model).rstrip("\n"))
    return 0
