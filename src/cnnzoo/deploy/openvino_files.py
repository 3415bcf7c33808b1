"""OpenVINO's own model files: ``NAME.xml`` (the graph) and ``NAME.bin`` (the weights).

Converted from the model's ONNX graph by OpenVINO and returned as bytes (the ``.bin``
first), for the caller to write with the files that go with them
(:func:`cnnzoo.utils.atomic.write_files_atomically`, renamed in that order): a reader never
finds a graph whose weights are missing or half written. What the model says about itself
goes into the graph's ``rt_info`` (``<rt_info><cnnzoo>`` in the ``.xml``).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cnnzoo.utils.text import first_line

__all__ = ["RT_INFO_SECTION", "openvino_files", "weights_path"]

RT_INFO_SECTION = "cnnzoo"  # rt_info keys are read as model.get_rt_info(["cnnzoo", KEY])


def weights_path(xml: str | os.PathLike) -> Path:
    """The ``.bin`` beside an OpenVINO ``.xml``."""
    return Path(xml).with_suffix(".bin")


def openvino_files(onnx: bytes, xml: str | os.PathLike, rt_info: Mapping[str, str] | None = None) -> dict[Path, bytes]:
    """``{NAME.bin: weights, NAME.xml: graph}``: the ONNX graph converted by OpenVINO (full
    precision: no fp16 compression of the weights), with ``rt_info`` under
    :data:`RT_INFO_SECTION`; ``ValueError`` when OpenVINO cannot convert it."""
    import openvino  # the runtime's own import (0.5 s), for this format only

    xml = Path(xml)
    if xml.suffix != ".xml":
        raise ValueError(f"an OpenVINO model is written as NAME.xml (+ NAME.bin), got {xml.name}")
    try:
        graph = openvino.convert_model(io.BytesIO(onnx))
    except Exception as err:  # OpenVINO names the operator it cannot convert
        raise ValueError(f"OpenVINO cannot convert the model: {first_line(err)}") from err
    for key, value in (rt_info or {}).items():
        graph.set_rt_info(value, [RT_INFO_SECTION, key])
    with tempfile.TemporaryDirectory(prefix="cnnzoo-openvino-") as folder:
        staged = Path(folder) / "model.xml"
        openvino.save_model(graph, staged, compress_to_fp16=False)
        return {weights_path(xml): weights_path(staged).read_bytes(), xml: staged.read_bytes()}
