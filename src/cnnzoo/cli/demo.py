"""``make demo``: a tour of the zoo and of what its building blocks cost.

Prints the registered models, a side-by-side cost comparison of the classic classifiers,
and the lecture notes' worked examples, all computed by the library.
"""

from __future__ import annotations

import sys

import cnnzoo
from cnnzoo.cli.main import main as cnnzoo_main

CLASSICS = [
    "alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnext50_32x4d",
    "densenet121", "mobilenet_v1", "squeezenet1_0", "efficientnet_b0",
]
TOPICS = ["convolution-cost", "bottleneck", "depthwise-separable"]


def section(title: str) -> None:
    print(f"\n== {title} ==\n", flush=True)


def run(argv: list[str]) -> None:
    code = cnnzoo_main(argv)
    if code:
        sys.exit(code)


def main() -> None:
    section("The zoo: `cnnzoo list`")
    run(["list"])
    registered = [name for name in CLASSICS if cnnzoo.list_models(name)]
    section("Costs side by side: `cnnzoo compare " + " ".join(registered) + "`")
    run(["compare", *registered])
    from cnnzoo.analysis import explain

    for topic in [t for t in TOPICS if t in explain.topics()]:
        section(f"`cnnzoo explain {topic}`")
        run(["explain", topic])
    section("Next")
    print("cnnzoo summary resnet50 --depth 2     per-layer costs and receptive fields")
    print("cnnzoo explain                        every lecture topic, computed")


if __name__ == "__main__":
    main()
