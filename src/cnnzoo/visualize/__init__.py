"""Pictures that teach: what a network looks at and what it has learnt, on one image.

Grad-CAM and gradient saliency per class, the first layer's filters, the feature maps of
each stage, and the effective receptive field of a stage's centre unit beside the
theoretical one (:func:`cnnzoo.analysis.summarize`'s): tensors in
:mod:`~cnnzoo.visualize.attribution` and :mod:`~cnnzoo.visualize.stages`, PNGs in
:mod:`~cnnzoo.visualize.pictures`, all of them for one image with
:func:`~cnnzoo.visualize.write.write_pictures` (``cnnzoo visualize``). See
``docs/visualize.md``.
"""

from cnnzoo.visualize.attribution import (
    Attribution,
    ReceptiveFields,
    effective_receptive_field,
    grad_cam,
    predicted_class,
    receptive_fields,
    saliency,
    theoretical_receptive_field,
)
from cnnzoo.visualize.pictures import filter_tiles
from cnnzoo.visualize.stages import (
    StageMap,
    StageOutput,
    class_scores,
    deepest_conv,
    first_conv,
    stage_maps,
)
from cnnzoo.visualize.write import PICTURES, write_pictures

__all__ = [
    "PICTURES", "Attribution", "ReceptiveFields", "StageMap", "StageOutput", "class_scores", "deepest_conv",
    "effective_receptive_field", "filter_tiles", "first_conv", "grad_cam", "predicted_class", "receptive_fields",
    "saliency", "stage_maps", "theoretical_receptive_field", "write_pictures",
]
