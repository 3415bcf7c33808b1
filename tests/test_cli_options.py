"""The CLI's value parsers and table formatting."""

import pytest

from cnnzoo.cli.options import parse_model_kwargs
from cnnzoo.utils.sizes import parse_input_size
from cnnzoo.utils.text import closest_names, format_count, format_table


@pytest.mark.parametrize("text, expected", [
    ("3x224x224", (3, 224, 224)), ("1x28x32", (1, 28, 32)), ("160", (3, 160, 160)), ("64x48", (3, 64, 48)), (" 4X8X8 ", (4, 8, 8)),
])
def test_parse_input_size(text, expected):
    assert parse_input_size(text) == expected


def test_parse_input_size_uses_default_channels():
    assert parse_input_size("32", default_channels=1) == (1, 32, 32)


@pytest.mark.parametrize("text", ["", "3x", "axb", "3x224x224x2", "-3x4x4", "0x4x4", "3.5x2"])
def test_malformed_input_size(text):
    with pytest.raises(ValueError, match="input size"):
        parse_input_size(text)


def test_parse_model_kwargs_literals_and_strings():
    assert parse_model_kwargs(["width_mult=0.5", "aux_logits=False", "num_classes=10", "act=relu6"]) == {
        "width_mult": 0.5, "aux_logits": False, "num_classes": 10, "act": "relu6",
    }
    assert parse_model_kwargs(None) == {}


@pytest.mark.parametrize("bad", ["width_mult", "=3", "1x=2"])
def test_malformed_model_kwargs(bad):
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_model_kwargs([bad])


@pytest.mark.parametrize("value, text", [(None, "-"), (999, "999"), (1500, "1.50 k"), (25_557_032, "25.56 M"), (4_089_184_256, "4.09 G")])
def test_format_count(value, text):
    assert format_count(value) == text


def test_format_table_aligns_columns():
    table = format_table(["a", "bb"], [["x", "1"], ["long", "22"]], align_right={1})
    assert table.splitlines() == ["a     bb", "----  --", "x      1", "long  22"]
    md = format_table(["a", "n"], [["x", "1"]], align_right={1}, markdown=True)
    assert md.splitlines() == ["| a | n |", "|---|--:|", "| x | 1 |"]


@pytest.mark.parametrize("name, expected", [
    ("lr_rate", ["lr", "clip_grad"]),  # difflib alone offers only clip_grad
    ("epoch", ["epochs", "warmup_epochs"]),
    ("batchsize", ["batch_size"]),
    ("LR", ["lr"]),
    ("weight", ["weight_decay"]),
    ("zqx", []),
])
def test_closest_names_rank_related_names_before_similar_ones(name, expected):
    keys = ["model", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "clip_grad"]
    assert closest_names(name, keys) == expected
    assert len(closest_names("e", keys, n=2)) <= 2
