"""OpenVINO's own model files: ``NAME.xml`` (the graph) and ``NAME.bin`` (the weights).

Written from the model's ONNX graph by OpenVINO's converter, both to temporary names in the
destination folder and then renamed, the weights first: a reader never finds a graph whose
weights are missing or half written.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from cnnzoo.utils.text import first_line

__all__ = ["save_openvino", "weights_path"]


def weights_path(xml: str | os.PathLike) -> Path:
    """The ``.bin`` beside an OpenVINO ``.xml``."""
    return Path(xml).with_suffix(".bin")


def save_openvino(onnx: bytes, xml: str | os.PathLike) -> tuple[Path, Path]:
    """Convert the ONNX graph and write ``xml`` and its ``.bin`` atomically (full precision:
    no fp16 compression of the weights); returns both paths."""
    import openvino  # the runtime's own import (0.5 s), for this format only

    xml = Path(xml)
    if xml.suffix != ".xml":
        raise ValueError(f"an OpenVINO model is written as NAME.xml (+ NAME.bin), got {xml.name}")
    try:
        graph = openvino.convert_model(io.BytesIO(onnx))
    except Exception as err:  # OpenVINO names the operator it cannot convert
        raise ValueError(f"OpenVINO cannot convert the model: {first_line(err)}") from err
    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=f".{xml.stem}.") as folder:
        staged = Path(folder) / "model.xml"
        openvino.save_model(graph, staged, compress_to_fp16=False)
        os.replace(weights_path(staged), weights_path(xml))
        os.replace(staged, xml)
    return xml, weights_path(xml)
