"""``cnnzoo benchmark``: img/s, latency and memory of every runtime on one model, against eager PyTorch."""

from __future__ import annotations

import argparse

from cnnzoo.cli.options import (
    add_input_size_option,
    add_model_kwargs_option,
    add_overwrite_option,
    add_threads_option,
    add_weights_option,
    add_which_option,
    parse_model_kwargs,
    parse_size_option,
)
from cnnzoo.deploy.runners import RUNTIMES
from cnnzoo.engine.benchmark import benchmark, plot_benchmark
from cnnzoo.utils.atomic import check_output_path
from cnnzoo.utils.text import format_count, format_table

EPILOG = """\
examples:
  cnnzoo benchmark resnet50                                  (every runtime, batches 1 and 8, fp32)
  cnnzoo benchmark runs/resnet20-fashion --int8 --batch 1,32 (int8 calibrated on the run's images)
  cnnzoo benchmark mobilenet_v1 --runtime onnxruntime,openvino --threads 1 --plot mobilenet.png

fp32 runners always; bf16 ones too on a CPU with bf16 instructions (AVX512-BF16 or AMX).
Every runner is timed in the same process as eager PyTorch, in alternating rounds (median),
so the ratios hold on a busy machine too. "model" is the memory a runner holds, "run" the
peak memory a batch needs on top. A segmenter is timed on the tiles of overlap-tile
prediction. Use what wins with `cnnzoo predict --runtime NAME` (or --runtime auto).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "benchmark", help="time every runtime (eager PyTorch, onnxruntime, OpenVINO; fp32, bf16 where native, int8) on one model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Images per second, latency p50/p90 and memory per runtime and batch size, with the "
                    "speed-up over eager PyTorch measured alongside.",
        epilog=EPILOG,
    )
    p.add_argument("source", metavar="MODEL|RUN_DIR|CHECKPOINT", help="a registered model name, a run directory "
                   "or a .safetensors checkpoint")
    p.add_argument("--runtime", default="all", metavar="NAMES",
                   help=f"comma-separated, of {', '.join(RUNTIMES)}; or all (default: every one installed)")
    p.add_argument("--batch", default="1,8", metavar="SIZES", help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--int8", action="store_true", help="also int8 runners (onnxruntime, openvino)")
    p.add_argument("--rounds", type=int, default=7, metavar="N", help="alternating timed rounds (default 7)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw img/s per runtime and batch")
    add_input_size_option(p, "input size (default: the run's or the model's; a segmenter's tile)")
    add_threads_option(p)
    add_which_option(p)
    add_model_kwargs_option(p)
    add_weights_option(p)
    add_overwrite_option(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.plot:
        # a bad path fails before minutes of timing
        check_output_path(args.plot, create_folder=True, overwrite=args.overwrite)
    runtimes = [name.strip() for name in args.runtime.split(",") if name.strip()]
    size, rows = benchmark(
        args.source, runtimes, _batches(args.batch), int8=args.int8, threads=args.threads,
        input_size=parse_size_option(args.input_size), rounds=args.rounds,
        model_kwargs=parse_model_kwargs(args.model_kwargs), which=args.which, log=print, weights=args.weights,
    )
    header = ["runner", "batch", "img/s", "p50 ms", "p90 ms", "model", "run", "x eager"]
    body = [[row.runner, str(row.batch), f"{row.images_per_second:.1f}", f"{row.p50_ms:.1f}", f"{row.p90_ms:.1f}",
             format_count(row.model_bytes, "B") if row.model_bytes is not None else "-",
             format_count(row.run_bytes, "B") if row.run_bytes is not None else "-", f"{row.speedup:.2f}"]
            for row in rows]
    print(f"{args.source} at {'x'.join(map(str, size))}, {args.rounds} alternating rounds")
    print(format_table(header, body, align_right={1, 2, 3, 4, 5, 6, 7}))
    if args.plot:
        plot_benchmark(rows, args.plot, f"{args.source} at {'x'.join(map(str, size))}")
        print(f"wrote {args.plot}")
    return 0


def _batches(text: str) -> list[int]:
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--batch takes comma-separated integers such as 1,8,32, got {text!r}") from None
    if not batches or any(batch < 1 for batch in batches):
        raise ValueError(f"--batch sizes must be positive integers, got {text!r}")
    return batches
