"""The common interface of the classical segmenters: one call, one label map that covers the image."""

import ast
from pathlib import Path

import numpy as np
import pytest

import cnnzoo.classical
from cnnzoo.classical import MaxRange, kmeans_segmentation, region_growing, segment, split_and_merge

OPTIONS = {"region_growing": {}, "kmeans": {"k": 3}, "split_and_merge": {}}


@pytest.mark.parametrize("method", list(OPTIONS))
@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).integers(0, 256, size=(13, 17, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 65536, size=(9, 21), dtype=np.uint16),
        np.random.default_rng(2).random((16, 5)),
        np.random.default_rng(3).random((7, 7)) > 0.5,
    ],
    ids=["rgb-uint8", "gray-uint16", "gray-float", "bool"],
)
def test_every_pixel_gets_exactly_one_label_from_0_to_r_minus_1(method, image):
    labels = segment(image, method, **OPTIONS[method])
    assert labels.shape == image.shape[:2]  # one label per pixel: regions cover and do not overlap
    assert labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(labels.max() + 1))


@pytest.mark.parametrize("method", list(OPTIONS))
def test_single_pixel_image(method):
    options = {"k": 1} if method == "kmeans" else {}
    np.testing.assert_array_equal(segment(np.array([[7]], dtype=np.uint8), method, **options), [[0]])


def test_segment_is_the_method_function():
    image = np.random.default_rng(4).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(segment(image, "region-growing", threshold=60), region_growing(image, threshold=60))
    np.testing.assert_array_equal(segment(image, "clustering", k=2), kmeans_segmentation(image, 2))
    np.testing.assert_array_equal(segment(image, "split-merge", predicate=MaxRange(90)),
                                  split_and_merge(image, MaxRange(90)))


def test_segment_errors():
    image = np.zeros((4, 4))
    with pytest.raises(ValueError, match="unknown segmentation method 'watershed'; choose from region-growing"):
        segment(image, "watershed")
    with pytest.raises(ValueError, match="split_and_merge has no option k"):
        segment(image, "split_and_merge", k=3)
    with pytest.raises(ValueError, match="kmeans_segmentation needs k"):
        segment(image, "kmeans")


def test_classical_imports_no_model_code():
    # DESIGN.md: `classical` stands beside the model code and imports none of it.
    forbidden = ("torch", "cnnzoo.models", "cnnzoo.layers", "cnnzoo.registry", "cnnzoo.engine", "cnnzoo.cli")
    package = Path(cnnzoo.classical.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(forbidden), f"{source.name} imports {name}"
