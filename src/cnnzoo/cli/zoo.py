"""The zoo's read-only commands: ``list``, ``summary``, ``compare`` and ``explain``."""

from __future__ import annotations

import argparse
import sys

import cnnzoo
from cnnzoo import analysis
from cnnzoo.analysis import explain
from cnnzoo.cli.options import add_model_kwargs_option, parse_model_kwargs
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
            "memory and receptive field, then the totals. Runs on the meta device: no real compute."
        ),
        epilog="examples:\n  cnnzoo summary resnet50 --depth 2\n"
               "  cnnzoo summary mobilenet_v1 -k width_mult=0.5 --input 3x160x160 --format json\n"
               "  cnnzoo summary vgg16 --plot vgg16_costs.png",
    )
    p.add_argument("model", help="a registered model name (see `cnnzoo list`)")
    p.add_argument("--input", default=None, metavar="CxHxW", help="input size (default: the model's own)")
    p.add_argument("--depth", type=int, default=None, help="fold layers deeper than N levels into their parent")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also write a PNG of MACs and parameters per block (at --depth, default 1)")
    add_model_kwargs_option(p)
    p.set_defaults(run=run_summary)

    p = subparsers.add_parser(
        "compare", help="several models side by side", formatter_class=formatter,
        description="Parameters, MACs and activation memory at each model's default input, with the published accuracy.",
        epilog="example:\n  cnnzoo compare vgg16 resnet50 mobilenet_v1 efficientnet_b0",
    )
    p.add_argument("models", nargs="+", help="registered model names")
    p.add_argument("--input", default=None, metavar="CxHxW", help="one input size for all (default: each model's own)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(run=run_compare)

    p = subparsers.add_parser(
        "explain", help="the formulas and the lecture notes' worked examples, computed", formatter_class=formatter,
        description="Explain a building block's cost with the lecture notes' worked numbers, computed by the library.",
        epilog="examples:\n  cnnzoo explain            # list the topics\n  cnnzoo explain depthwise-separable",
    )
    p.add_argument("topic", nargs="?", help="a topic; without one, the list of topics")
    p.set_defaults(run=run_explain)


def input_size_for(name: str, text: str | None, kwargs: dict) -> tuple[int, int, int]:
    default = cnnzoo.model_info(name).default_input
    channels = kwargs.get("in_chans", default[0])
    if text is None:
        return (channels, default[1], default[2])
    return parse_input_size(text, default_channels=channels)


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
    kwargs = parse_model_kwargs(args.model_kwargs)
    cnnzoo.model_info(args.model)  # an unknown name fails here, with the closest names
    if args.plot:
        check_output_path(args.plot, create_folder=True)  # before any output is printed
    input_size = input_size_for(args.model, args.input, kwargs)
    summary = analysis.summarize(create_meta_model(args.model, **kwargs), input_size)
    summary.model_name = args.model  # the registered name tells resnet18 from resnet50
    renderers = {
        "table": lambda: summary.to_table(depth=args.depth),
        "csv": lambda: summary.to_csv(depth=args.depth),
        "json": lambda: summary.to_json(depth=args.depth),
        "markdown": lambda: summary.to_markdown(depth=args.depth),
    }
    sys.stdout.write(renderers[args.format]().rstrip("\n") + "\n")
    if args.plot:
        depth = 1 if args.depth is None else args.depth  # every layer would be hundreds of bars
        summary.plot(args.plot, depth=depth, title=f"{args.model} at {'x'.join(map(str, input_size))}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def compare_rows(names: list[str], input_text: str | None) -> list[dict]:
    rows = []
    for name in names:
        info = cnnzoo.model_info(name)
        input_size = input_size_for(name, input_text, {})
        total = analysis.summarize(create_meta_model(name), input_size).total
        rows.append({
            "model": name,
            "input": "x".join(map(str, input_size)),
            "params": total.params,
            "macs": total.macs,
            "activation_bytes": total.activation_bytes,
            "top1": info.top1,
            "dataset": info.dataset if info.top1 is not None else None,
            "source": info.source or None,
        })
    return rows


def run_compare(args: argparse.Namespace) -> int:
    for name in args.models:
        cnnzoo.model_info(name)
    rows = compare_rows(args.models, args.input)
    columns = ["model", "input", "params", "macs", "activation_bytes", "top1", "dataset"]
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
        return 0
    if args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns + ["source"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    header = ["model", "input", "params", "MACs", "activations", "top-1 %", "on"]
    body = [[
        r["model"], r["input"], format_count(r["params"]), format_count(r["macs"]),
        format_count(r["activation_bytes"], unit="B"),
        "-" if r["top1"] is None else f"{r['top1']:.2f}", r["dataset"] or "-",
    ] for r in rows]
    print(format_table(header, body, align_right={2, 3, 4, 5}, markdown=args.format == "markdown"))
    if args.format == "table":
        print("\nMACs = multiply-adds for one image (FLOPs = 2 x MACs); activations = bytes of every layer output (float32).")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    print(explain.explain(args.topic).rstrip("\n"))  # no topic: the list of topics
    return 0
