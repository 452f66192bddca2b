"""One export of the trained checkpoint, for the ``export_model`` node.

:class:`ExportParams` is the ``export`` parameter block (``conf/base/parameters_export.yml``).
:func:`export_models` writes the formats it names into a temporary folder with the library
(:mod:`yolo_mlops.yolo.export`), checks each file against the PyTorch model on a few cached
images (:func:`~yolo_mlops.yolo.export.parity.decoded_parity`) and returns the files' bytes and
the report:

* ``onnx`` → ``model.onnx``: fp32, decoded output ``[B, 4 + nc, A]``, dynamic batch/height/width,
  metadata (class names, strides, imgsz, the checkpoint's sha256, the project version). Its
  parity must hold (scores within ``score_tolerance``, boxes within ``box_tolerance`` relative),
  else :class:`ExportParityError` stops the run before anything downstream uses it;
* ``int8`` → ``model_int8.onnx``: static QDQ quantisation with per-channel weights, calibrated on
  ``calibration_images`` training images of the image cache drawn with ``calibration_seed``. Its
  parity figures are reported, not gated (INT8 is judged by its mAP: ``docs/export.md``);
* ``openvino`` → ``model_openvino.xml`` + ``model_openvino.bin``: OpenVINO IR converted from the
  fp32 ONNX file (fp32 weights, run at fp32), parity gated as the fp32 ONNX file's. Needs the
  optional ``openvino`` package.

``simplify`` runs onnxscript's graph optimiser in the exporter; the report records it and the
fp32 graph's node count.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch

from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.export.onnx_export import DEFAULT_OPSET, ExportSettings, export_onnx
from yolo_mlops.yolo.export.parity import Parity, decoded_parity
from yolo_mlops.yolo.export.quantize import choose_calibration, quantize_onnx
from yolo_mlops.yolo.export.runtime import ExportedDetector, OnnxRuntimeDetector
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint

logger = logging.getLogger(__name__)

BLOCK = "export"
#: File name of each format inside the ``exported_models`` folder.
FILE_NAMES = {"onnx": "model.onnx", "int8": "model_int8.onnx", "openvino": "model_openvino.xml"}
#: Formats whose parity must hold (fp32); INT8's is reported only.
GATED = ("onnx", "openvino")
STRIDE = 32


class ExportParityError(RuntimeError):
    """The fp32 export's outputs differ from the PyTorch model's beyond the tolerances."""


@dataclass(frozen=True)
class ExportParams:
    """The ``export`` parameter block; see ``conf/base/parameters_export.yml``."""

    formats: tuple[Literal["onnx", "int8", "openvino"], ...] = ("onnx", "int8")
    imgsz: int = 0  # 0 = the training size recorded in the checkpoint
    opset: int = DEFAULT_OPSET
    simplify: bool = True  # onnxscript's graph optimiser in the exporter
    calibration_split: str = "train"
    calibration_images: int = 64
    calibration_seed: int = 0
    parity_split: str = "val"
    parity_images: int = 4
    score_tolerance: float = 1e-4
    box_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.formats[:1] != ("onnx",):
            raise ValueError(
                f"formats must start with 'onnx' (INT8 and OpenVINO are made from it), got "
                f"{self.formats}"
            )
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats lists a format twice: {self.formats}")
        if self.imgsz and (self.imgsz < STRIDE or self.imgsz % STRIDE):
            raise ValueError(f"imgsz must be 0 or a multiple of {STRIDE}, got {self.imgsz}")
        if self.calibration_images < 1 or self.parity_images < 1:
            raise ValueError("calibration_images and parity_images must be >= 1")
        if self.score_tolerance <= 0 or self.box_tolerance <= 0:
            raise ValueError("score_tolerance and box_tolerance must be > 0")


def checkpoint_sha256(checkpoint: dict[str, Any]) -> str:
    """sha256 of the checkpoint serialised as the project writes it (= the file's sha256 for a
    checkpoint the trainer wrote: ``torch.save`` of the same dict gives the same bytes)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _cache_images(cache: ImageCache, indices: list[int]) -> Iterator[np.ndarray]:
    """Cached images (HWC BGR uint8), read one at a time."""
    return (np.ascontiguousarray(cache.image(i)) for i in indices)


def _calibration_indices(cache: ImageCache, params: ExportParams) -> list[int]:
    """``calibration_images`` of ``calibration_split``, drawn with ``calibration_seed``."""
    split = [int(i) for i in cache.indices(params.calibration_split)]
    return choose_calibration(split, params.calibration_images, params.calibration_seed)


def _artifact(path: Path, parity: Parity, params: ExportParams, gated: bool) -> dict[str, Any]:
    passed = parity.within(params.score_tolerance, params.box_tolerance)
    return {"file": path.name, "bytes": path.stat().st_size, "parity": parity.record(),
            "parity_passed": passed, "parity_gated": gated}  # fmt: skip


def _check_parity(record: dict[str, Any], params: ExportParams) -> None:
    if record["parity_gated"] and not record["parity_passed"]:
        raise ExportParityError(
            f"{record['file']}: decoded outputs differ from the PyTorch model's "
            f"({record['parity']})"
            f" beyond export.score_tolerance={params.score_tolerance} / export.box_tolerance="
            f"{params.box_tolerance}; the export is not used. Check the opset and onnxruntime"
        )


def _convert(name: str, fp32: Path, cache: ImageCache, params: ExportParams, imgsz: int) -> Path:
    """The file of format ``name`` made from the checked fp32 ONNX file ``fp32``."""
    target = fp32.parent / FILE_NAMES[name]
    if name == "int8":
        chosen = _calibration_indices(cache, params)
        return quantize_onnx(fp32, target, _cache_images(cache, chosen), imgsz)
    try:  # optional dependency: imported only when the format is asked for
        from yolo_mlops.yolo.export.openvino_ir import export_openvino
    except ImportError as error:
        raise ImportError(
            f"export.formats lists 'openvino' but OpenVINO cannot be imported ({error}); "
            "install it (pip install 'yolo-mlops[openvino]') or drop the format"
        ) from error
    return export_openvino(fp32, target)


def _open(path: Path, nc: int) -> ExportedDetector:
    if path.suffix == ".xml":
        from yolo_mlops.yolo.export.openvino_ir import OpenVinoDetector

        return OpenVinoDetector(path, num_classes=nc)
    return OnnxRuntimeDetector(path, num_classes=nc)


def export_models(
    checkpoint: dict[str, Any], cache: ImageCache, params: ExportParams
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The exported files (name → bytes) and the export report (see the module docstring).

    Raises:
        ExportParityError: the fp32 ONNX or OpenVINO model fails its parity check.
        KeyError: a split the parameters name is not in the image cache.
        ImportError: ``openvino`` is asked for and not installed.
    """
    model = model_from_checkpoint(checkpoint)
    imgsz = params.imgsz or int(checkpoint["config"].get("imgsz") or cache.imgsz)
    sha256 = checkpoint_sha256(checkpoint)
    settings = ExportSettings(imgsz=imgsz, opset=params.opset, checkpoint_sha256=sha256,
                              simplify=params.simplify)  # fmt: skip
    parity_indices = [int(i) for i in cache.indices(params.parity_split)[: params.parity_images]]
    report: dict[str, Any] = {"imgsz": imgsz, "opset": params.opset, "checkpoint_sha256": sha256,
                              "simplified": params.simplify, "artifacts": {}}  # fmt: skip
    files = {}
    with tempfile.TemporaryDirectory(prefix="export-") as work:
        fp32 = export_onnx(model, Path(work) / FILE_NAMES["onnx"], settings)
        report["onnx_nodes"] = len(onnx.load(str(fp32), load_external_data=False).graph.node)
        for name in params.formats:  # "onnx" first: the others are made from the checked file
            path = fp32 if name == "onnx" else _convert(name, fp32, cache, params, imgsz)
            if name == "int8":
                report["calibration"] = {"split": params.calibration_split,
                                         "images": len(_calibration_indices(cache, params)),
                                         "seed": params.calibration_seed}  # fmt: skip
            detector = _open(path, model.nc)
            parity = decoded_parity(model, detector, _cache_images(cache, parity_indices), imgsz)
            record = _artifact(path, parity, params, gated=name in GATED)
            logger.info("export %s: %s", name, record)
            _check_parity(record, params)
            report["artifacts"][name] = record
            files[path.name] = path.read_bytes()
            if path.suffix == ".xml":  # the IR's weights, beside it
                weights = path.with_suffix(".bin")
                record["weights"] = weights.name
                files[weights.name] = weights.read_bytes()
    return files, report
