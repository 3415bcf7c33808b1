"""Segmentation before deep learning: region growing, clustering, split and merge.

The lecture notes (seed 004) define a segmentation as regions that cover the image, do not
overlap, and each satisfy a similarity predicate that the union of two different regions
does not. The three methods they name all return an HxW label map 0..R-1 with every pixel in
exactly one region, and share the predicates of :mod:`cnnzoo.classical.predicates`:

>>> import numpy as np
>>> from cnnzoo.classical import segment, MaxRange
>>> image = np.zeros((4, 6), dtype=np.uint8); image[:, 3:] = 200
>>> segment(image, "split_and_merge", predicate=MaxRange(10)).tolist()[0]
[0, 0, 0, 1, 1, 1]

:mod:`cnnzoo.classical.evaluate` scores label maps against ground-truth classes with the same
IoU and pixel accuracy as the CNN segmenters. This package imports no model code.
"""

from cnnzoo.classical.clustering import kmeans_clusters, kmeans_segmentation, pixel_features
from cnnzoo.classical.evaluate import (
    MethodEvaluation,
    compare_methods,
    evaluate_method,
    format_table,
    hungarian_mapping,
    majority_mapping,
    region_class_overlap,
    regions_to_classes,
    score_regions,
)
from cnnzoo.classical.methods import METHODS, segment
from cnnzoo.classical.metrics import (
    UNASSIGNED,
    SegmentationScores,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    score_segmentation,
)
from cnnzoo.classical.predicates import (
    FunctionPredicate,
    MaxRange,
    MaxStd,
    MeanDistance,
    Predicate,
    RegionStats,
    make_predicate,
)
from cnnzoo.classical.region_growing import region_growing
from cnnzoo.classical.split_merge import merge_adjacent_regions, quadtree_split, split_and_merge

__all__ = [
    "METHODS",
    "UNASSIGNED",
    "FunctionPredicate",
    "MaxRange",
    "MaxStd",
    "MeanDistance",
    "MethodEvaluation",
    "Predicate",
    "RegionStats",
    "SegmentationScores",
    "compare_methods",
    "confusion_matrix",
    "evaluate_method",
    "format_table",
    "hungarian_mapping",
    "iou_per_class",
    "kmeans_clusters",
    "kmeans_segmentation",
    "majority_mapping",
    "make_predicate",
    "mean_iou",
    "merge_adjacent_regions",
    "pixel_accuracy",
    "pixel_features",
    "quadtree_split",
    "region_class_overlap",
    "region_growing",
    "regions_to_classes",
    "score_regions",
    "score_segmentation",
    "segment",
    "split_and_merge",
]
