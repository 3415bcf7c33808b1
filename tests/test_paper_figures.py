"""The papers' own figures beside torchvision's: the registry holds the published tables, the
computed costs agree with torchvision's, and the zoo's output shows both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cnnzoo
from cnnzoo.analysis import count_macs
from cnnzoo.cli.main import main
from cnnzoo.registry import create_meta_model

METADATA = json.loads((Path(__file__).parent / "fixtures/torchvision/metadata.json").read_text())["models"]

# Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs", Table 2: #Params, #FLOPS
# (multiply-adds) and top-1 accuracy, as printed there.
EFFICIENTNET_TABLE_2 = {
    "efficientnet_b0": (5.3e6, 0.39e9, 77.1),
    "efficientnet_b1": (7.8e6, 0.70e9, 79.1),
    "efficientnet_b2": (9.2e6, 1.0e9, 80.1),
    "efficientnet_b3": (12e6, 1.8e9, 81.6),
    "efficientnet_b4": (19e6, 4.2e9, 82.9),
    "efficientnet_b5": (30e6, 9.9e9, 83.6),
    "efficientnet_b6": (43e6, 19e9, 84.0),
    "efficientnet_b7": (66e6, 37e9, 84.3),
}

# ImageNet top-1 error, 224x224 single crop, of the authors' Torch models: the table "Results on
# ImageNet and Pretrained Models" of github.com/liuzhuang13/DenseNet README.md.
DENSENET_AUTHORS_TOP1_ERROR = {"densenet121": 25.0, "densenet169": 23.6, "densenet201": 22.5, "densenet161": 22.2}

# Szegedy et al. 2016, "Rethinking the Inception Architecture", Table 3 (single crop, single
# model) and abstract: Inception-v3 (BN-auxiliary), 21.2 % top-1 error.
INCEPTION_V3_TOP1_ERROR = 21.2

# The differences docs/models/efficientnet.md states between cnnzoo's computed MACs at each
# model's resolution and Table 2's, in percent.
DOCUMENTED_MACS_OVER_PAPER = {"efficientnet_b4": 4.6, "efficientnet_b5": 3.7}


def computed_macs(name: str, size: int | None = None) -> int:
    info = cnnzoo.model_info(name)
    input_size = info.default_input if size is None else (3, size, size)
    return count_macs(create_meta_model(name), input_size)


@pytest.mark.parametrize("name", sorted(EFFICIENTNET_TABLE_2))
def test_efficientnet_paper_figures_are_table_2(name):
    info = cnnzoo.model_info(name)
    assert (info.paper_params, info.paper_macs, info.paper_top1) == pytest.approx(EFFICIENTNET_TABLE_2[name])
    assert "Tan & Le 2019, Table 2" in info.paper_source
    assert info.params == METADATA[name]["num_params"]  # the torchvision figures stay beside them


@pytest.mark.parametrize("name", sorted(DENSENET_AUTHORS_TOP1_ERROR))
def test_densenet_paper_top1_is_the_authors_readme(name):
    info = cnnzoo.model_info(name)
    assert info.paper_top1 == pytest.approx(100 - DENSENET_AUTHORS_TOP1_ERROR[name])
    assert "liuzhuang13/DenseNet" in info.paper_source
    assert info.top1 == pytest.approx(METADATA[name]["top1"])


def test_inception_v3_paper_top1_is_table_3():
    info = cnnzoo.model_info("inception_v3")
    assert info.paper_top1 == pytest.approx(100 - INCEPTION_V3_TOP1_ERROR)
    assert "Table 3" in info.paper_source and info.paper_params is None and info.paper_macs is None


def test_models_without_paper_figures_have_none():
    info = cnnzoo.model_info("resnet18")
    assert (info.paper_params, info.paper_macs, info.paper_top1, info.paper_source) == (None, None, None, "")


@pytest.mark.parametrize("name", sorted(EFFICIENTNET_TABLE_2))
def test_computed_efficientnet_macs_are_torchvisions(name):
    # torchvision's "GFLOPS" (multiply-adds, 3 decimals) at its weights' crop, which for B2 is
    # 288, not the released 260; measured difference at most 0.05 %.
    size = 288 if name == "efficientnet_b2" else None
    assert computed_macs(name, size) / (METADATA[name]["gmacs"] * 1e9) - 1 == pytest.approx(0, abs=5e-4)


@pytest.mark.parametrize("name", sorted(DOCUMENTED_MACS_OVER_PAPER))
def test_macs_over_the_paper_are_what_the_docs_state(name):
    over = 100 * (computed_macs(name) / EFFICIENTNET_TABLE_2[name][1] - 1)
    assert over == pytest.approx(DOCUMENTED_MACS_OVER_PAPER[name], abs=0.05)
    docs = (Path(__file__).parents[1] / "docs/models/efficientnet.md").read_text()
    assert f"{DOCUMENTED_MACS_OVER_PAPER[name]}% higher for {name[-2:].upper()}" in docs


def test_compare_shows_both_figures(capsys):
    assert main(["compare", "efficientnet_b4", "densenet121", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines()[:4]]
    assert cells[0][5:7] == ["top-1 %", "paper top-1 %"]
    rows = {row[0]: row for row in cells[2:]}
    assert rows["efficientnet_b4"][5:7] == ["83.38", "82.90"]  # torchvision's, then the paper's
    assert rows["densenet121"][5:7] == ["74.43", "75.00"]
    assert "efficientnet_b4: 19.00 M params, 4.20 G MACs (computed here: +4.6%), top-1 82.90 %" in out
    assert "densenet121: top-1 75.00 %; Huang et al." in out


def test_compare_json_carries_the_paper_fields(capsys):
    assert main(["compare", "efficientnet_b4", "resnet18", "--format", "json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    b4 = rows["efficientnet_b4"]
    assert (b4["top1"], b4["paper_top1"], b4["paper_macs"]) == (pytest.approx(83.384), 82.9, 4_200_000_000)
    assert rows["resnet18"]["paper_top1"] is None and rows["resnet18"]["paper_source"] is None
