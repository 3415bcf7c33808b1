"""The shipped Fashion-MNIST reference results and `cnnzoo results`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo.analysis import count_macs, count_params
from cnnzoo.cli.main import main
from cnnzoo.engine.config import load_config
from cnnzoo.engine.reference_results import RESULTS_FILE, load_reference_results, results_table

ROOT = Path(__file__).resolve().parents[1]

# zalandoresearch/fashion-mnist README, "Benchmark" table (submitted results): the best test
# accuracy listed for a network of each family.
PUBLISHED = {"resnet": 0.967, "densenet": 0.954, "mobilenet": 0.950, "squeezenet": 0.900, "vgg": 0.935,
             "alexnet": 0.899, "googlenet": 0.937, "plain": None, "efficientnet": None}


ROWS = load_reference_results()


RECIPES = sorted((ROOT / "configs" / "fashion-mnist").glob("*.yaml"))


def test_every_row_has_its_recipe_shipped():
    assert {ROOT / row.recipe for row in ROWS} <= set(RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.name)
def test_every_shipped_recipe_builds_its_model_at_the_size_it_trains_at(path):
    # Recipes shipped without a measured row yet (docs/results.md names them) are checked too:
    # the options are trainer options, and the model takes a batch at the recipe's size.
    recipe = load_config(path)
    assert recipe["data"] == "fashion-mnist" and recipe["epochs"] > 0
    model = cnnzoo.create_model(recipe["model"], num_classes=10, in_chans=1, **recipe.get("model_kwargs", {}))
    size = recipe.get("image_size", 28)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.recipe.rsplit("/", 1)[-1])
def test_each_row_is_its_recipe_and_its_costs_are_the_cost_calculus(row):
    recipe = load_config(ROOT / row.recipe)
    assert recipe["model"] == row.model and recipe["data"] == "fashion-mnist"
    assert recipe.get("model_kwargs", {}) == row.model_kwargs and recipe["epochs"] == row.epochs
    assert recipe.get("image_size", 28) == row.image_size
    assert [run.seed for run in row.runs] == sorted({run.seed for run in row.runs})
    model = cnnzoo.create_model(row.model, num_classes=10, in_chans=1, **row.model_kwargs)
    assert count_params(model) == row.params
    assert count_macs(model, (1, row.image_size, row.image_size)) == row.macs  # at the size it trains at
    for run in row.runs:
        assert 0.1 < run.test_acc1 <= 1 and run.epoch_minutes <= run.minutes


def test_published_figures_are_the_benchmark_tables():
    for row in ROWS:
        assert row.published.accuracy == PUBLISHED[row.family]


def test_several_seeds_give_the_mean_and_the_sample_standard_deviation(tmp_path):
    document = json.loads(RESULTS_FILE.read_text())
    row = document["rows"][0]
    first = dict(row["runs"][0], seed=0, test_acc1=0.90)
    row["runs"] = [first, dict(first, seed=1, test_acc1=0.92), dict(first, seed=2, test_acc1=0.97)]
    document["rows"] = [row]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    (loaded,) = load_reference_results(path)
    assert loaded.mean_accuracy == pytest.approx(0.93)
    # sqrt(((0.03)^2 + (0.01)^2 + (0.04)^2) / 2) = sqrt(0.0013)
    assert loaded.spread == pytest.approx(0.0013 ** 0.5)
    assert results_table([loaded])[1][0][1] == "0.9300 ± 0.0361"


def test_the_docs_hold_the_table_the_command_prints(capsys):
    assert main(["results", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in (ROOT / "docs" / "results.md").read_text()


def test_the_command_filters_and_writes_csv_and_json(capsys):
    assert main(["results", "resnet*", "--format", "csv"]) == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert lines[0][0] == "model" and {line[0] for line in lines[1:]} == {r.model for r in ROWS if r.model.startswith("resnet")}
    assert main(["results", "--format", "json"]) == 0
    assert [entry["recipe"] for entry in json.loads(capsys.readouterr().out)] == [row.recipe for row in ROWS]


def test_a_pattern_without_results_is_a_user_error(capsys):
    assert main(["results", "nothing*"]) == 2
    err = capsys.readouterr().err
    assert "no reference result" in err and len(err.strip().splitlines()) == 1
