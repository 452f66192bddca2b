"""Export node: the trained checkpoint → ONNX files in ``data/06_models/export`` and a report.

A Kedro adapter: :mod:`.exporting` exports, quantises and checks parity.
"""

from __future__ import annotations

from typing import Any

from yolo_mlops.pipelines.export.exporting import BLOCK, ExportParams, export_models
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.yolo.data.image_cache import ImageCache


def export_model(
    model_checkpoint: dict[str, Any], image_cache: ImageCache, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Export the checkpoint in the formats of ``export.formats``.

    Args:
        model_checkpoint: the trainer's checkpoint dict (``data/06_models/best.pt``).
        image_cache: calibration (training split) and parity (validation split) images.
        parameters: the ``export`` block (see :class:`ExportParams`).

    Returns:
        ``exported_models``: ``{file name: bytes}`` (``model.onnx``, ``model_int8.onnx``);
        ``export_report``: imgsz, opset, checkpoint sha256, calibration, and per artifact its
        file, size in bytes and parity figures.
    """
    params = parse_params(ExportParams, parameters, BLOCK)
    files, report = export_models(model_checkpoint, image_cache, params)
    return {"exported_models": files, "export_report": report}
