"""The Python examples of the README and docs/layers.md run, and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    "README.md",
    "docs/layers.md",
    "docs/losses_metrics.md",
    "docs/data.md",
    "docs/training.md",
    "docs/predict_export.md",
    "docs/deploy.md",
    "docs/experiments.md",
    "docs/models/fcn.md",
    "docs/models/unet_segnet.md",
    "docs/models/volpi_tuia.md",
    "docs/models/autoencoder.md",
]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


EXAMPLES = [
    pytest.param(block, id=f"{name}#{index}")
    for name in DOCUMENTS
    for index, block in enumerate(python_blocks(ROOT / name))
]


def test_there_are_examples():
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code):
    exec(compile(code, "<doc example>", "exec"), {})
