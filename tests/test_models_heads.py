"""The head contract (models/_base.py): every classifier declares which top-level children
form its head, and the declaration is checked here against an independent finding of them:
the children a ``forward_features`` pass never runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models._base import Classifier
from cnnzoo.registry import create_meta_model

CLASSIFIERS = cnnzoo.list_models(task="classification")
# Options that add or remove head children: the Inception nets' auxiliary heads.
HEAD_OPTIONS = {"googlenet": [{}, {"aux_logits": True}], "inception_v3": [{}, {"aux_logits": False}]}
CASES = [(name, options) for name in CLASSIFIERS for options in HEAD_OPTIONS.get(name, [{}])]


def children_forward_features_skips(classifier: Classifier) -> list[str]:
    """The top-level children none of whose leaf modules runs during ``forward_features``
    on a small zero input, found with forward pre-hooks (this is how EncoderUNet found the
    head before the families declared it). Meta tensors run the hooks without computing."""
    used: set[str] = set()
    hooks = [
        module.register_forward_pre_hook(lambda *_, _top=name.split(".")[0]: used.add(_top))
        for name, module in classifier.named_modules()
        if name and not any(True for _ in module.children())
    ]
    side = max(classifier.min_input_size, 32)
    try:
        with torch.no_grad():
            classifier.eval().forward_features(torch.zeros(1, classifier.in_chans, side, side, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return [name for name, _ in classifier.named_children() if name not in used]


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}{'-' + str(o) if o else ''}" for n, o in CASES])
def test_declared_head_is_what_forward_features_never_runs(name, options):
    classifier = create_meta_model(name, **options)
    assert isinstance(classifier, Classifier)
    declared = classifier.head_children()
    assert declared, f"{name} declares no head"
    assert sorted(declared) == sorted(children_forward_features_skips(classifier))


def test_aux_heads_are_part_of_the_head_only_when_built():
    assert create_meta_model("googlenet").head_children() == ["avgpool", "dropout", "fc"]
    assert create_meta_model("googlenet", aux_logits=True).head_children() == ["avgpool", "dropout", "fc", "aux1", "aux2"]
    assert create_meta_model("inception_v3").head_children() == ["avgpool", "dropout", "fc", "AuxLogits"]


def test_a_classifier_that_declares_no_head_says_so():
    class Headless(Classifier):
        def __init__(self) -> None:
            super().__init__(2, 3)

    with pytest.raises(NotImplementedError, match="Headless does not declare its head_names"):
        Headless().head_children()
    with pytest.raises(ValueError, match="cannot convolutionalize a Headless"):
        Headless().head_convolutions()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_head_convolutions_are_convolutions(name):
    # Every linear layer of the head becomes a convolution; no global pooling survives.
    classifier = create_meta_model(name)
    layers = classifier.head_convolutions()
    assert any(isinstance(layer, nn.Conv2d) for layer in layers)
    assert not any(isinstance(layer, (nn.Linear, nn.AdaptiveAvgPool2d, nn.Flatten)) for layer in layers)
