"""A small trained-looking checkpoint with its ONNX export and export report, for registry tests.

The model is :func:`tests.yolo.export.conftest.small_model` (spread-out class scores, so score
and box comparisons mean something), saved as the trainer would and exported as the export stage
does; the report has the shape of ``data/08_reporting/export.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tracking.helpers import NAMES
from tests.yolo.export.conftest import small_model
from yolo_mlops.yolo.export.onnx_export import ExportSettings, export_onnx
from yolo_mlops.yolo.io.checkpoint import FORMAT, FORMAT_VERSION, make_config

IMGSZ = 64


def small_checkpoint(imgsz: int = IMGSZ) -> dict[str, Any]:
    """The small model as a checkpoint dict (what CheckpointDataset loads)."""
    model = small_model()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": make_config(scale="n", nc=len(NAMES), names=NAMES, imgsz=imgsz),
        "state_dict": model.state_dict(),
        "training": None,
    }


def export_report(onnx: Path, passed: bool = True) -> dict[str, Any]:
    """An ``export.json`` for ``onnx`` whose fp32 parity passed (or failed)."""
    parity = {"images": 4, "max_score_diff": 2e-6 if passed else 0.3,
              "max_box_diff_px": 1e-4, "max_box_diff_rel": 3e-6}  # fmt: skip
    record = {"file": onnx.name, "bytes": onnx.stat().st_size, "parity": parity,
              "parity_passed": passed, "parity_gated": True}  # fmt: skip
    return {"imgsz": IMGSZ, "opset": 18, "checkpoint_sha256": "ab" * 32,
            "artifacts": {"onnx": record}}  # fmt: skip


def export_small_model(folder: Path, imgsz: int = IMGSZ) -> Path:
    """``folder/model.onnx``: the small model exported at ``imgsz`` (a few seconds)."""
    settings = ExportSettings(imgsz=imgsz, checkpoint_sha256="ab" * 32)
    return export_onnx(small_model(), folder / "model.onnx", settings)
