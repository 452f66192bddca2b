"""The registered detector as an MLflow pyfunc model.

Input: a pandas DataFrame with one column ``image`` holding ENCODED image files (JPEG, PNG, any
format OpenCV decodes) as ``bytes``, one image per row. Over REST (``mlflow models serve``) the
same column is sent base64-encoded, because JSON carries no bytes; the signature types the column
``any`` so that the model, not MLflow's parser, decodes the base64 text and names a bad row::

    {"dataframe_split": {"columns": ["image"], "data": [["<base64 of the file>"]]},
     "params": {"conf": 0.25}}

Output: a DataFrame with one row per detection, columns ``image_index`` (row of the input),
``class_id``, ``class_name``, ``score``, ``x1, y1, x2, y2`` (pixels of the ORIGINAL image).
Predict-time params: ``conf`` (score threshold), ``iou`` (NMS IoU), ``max_det`` (per image).

A row that is not base64 text or bytes of a decodable image raises ``MlflowException``
(INVALID_PARAMETER_VALUE, HTTP 400 when served) naming the row index.

Limits (the ``model_config`` of the logged model, set from ``register.serving``), all checked on
the image headers before anything is decoded (decoding allocates 3 bytes per pixel whatever the
file size, so a 100 KB PNG can cost 100 MB): an image announcing more than ``max_pixels`` pixels,
a request whose images total more than ``max_request_pixels`` pixels (``None``: sized to the
serving machine, :func:`request_pixel_budget`) or more than ``max_request_bytes`` encoded bytes,
and formats whose header cannot be read (anything but JPEG, PNG, BMP, GIF, WebP, TIFF) are
refused. Predict params out of range (``conf`` outside [0, 1], ``iou`` outside (0, 1],
``max_det`` < 1) are refused.

Backends (``model_config`` ``backend``, set from ``register.serving.backend``): ``onnxruntime``
runs the exported ``model.onnx`` (artifact ``onnx``) with ONNX Runtime and numpy NMS, without
importing torch; ``torch`` runs the checkpoint (artifact ``checkpoint``). A model logged without
the key serves with ``torch``. Both run the one predict path of :mod:`yolo_mlops.yolo.inference`:
letterbox at the model's ``imgsz`` (same-shape batches to the smallest stride multiple, centred,
pad 114), BGR -> RGB, ``/255``, NMS, boxes back to original pixels.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import cv2
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

from yolo_mlops.ingestion import image_format

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("image_index", "class_id", "class_name", "score", "x1", "y1", "x2", "y2")
DEFAULT_PREDICT_PARAMS = {"conf": 0.25, "iou": 0.7, "max_det": 300}
#: Serving backends (``model_config`` ``backend``); models logged without the key use ``torch``.
SERVING_BACKENDS = ("onnxruntime", "torch")
#: Default serving limits (``model_config`` keys): 40 megapixels decode to 120 MB of BGR;
#: ``max_request_pixels`` None: :func:`request_pixel_budget` of the serving machine.
DEFAULT_SERVING_LIMITS = {
    "max_pixels": 40_000_000,
    "max_request_pixels": None,
    "max_request_bytes": 64 * 1024 * 1024,
}
#: Share of the machine's memory one request's decoded images (3 bytes per pixel) may take.
REQUEST_MEMORY_SHARE = 1 / 32
_BATCH = 16


def request_pixel_budget(max_pixels: int = DEFAULT_SERVING_LIMITS["max_pixels"]) -> int:
    """Decoded pixels one request may hold on this machine: :data:`REQUEST_MEMORY_SHARE` of its
    physical memory at 3 bytes per pixel, never less than one image of ``max_pixels``."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        memory = 8 * 1024**3
    return max(int(max_pixels), int(memory * REQUEST_MEMORY_SHARE / 3))


def model_signature(conf: float = 0.25, iou: float = 0.7, max_det: int = 300) -> ModelSignature:
    """The input/output/params schema described in the module docstring."""
    inputs = Schema([ColSpec(AnyType(), IMAGE_COLUMN)])  # bytes, or base64 text in JSON
    outputs = Schema(
        [
            ColSpec(DataType.long, "image_index"),
            ColSpec(DataType.long, "class_id"),
            ColSpec(DataType.string, "class_name"),
            ColSpec(DataType.double, "score"),
            *(ColSpec(DataType.double, c) for c in ("x1", "y1", "x2", "y2")),
        ]
    )
    params = ParamSchema(
        [
            ParamSpec("conf", DataType.double, float(conf)),
            ParamSpec("iou", DataType.double, float(iou)),
            ParamSpec("max_det", DataType.long, int(max_det)),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def check_predict_params(conf: float, iou: float, max_det: int) -> None:
    """Raise ``ValueError`` naming the param when a predict param is out of range."""
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"predict param conf={conf} must be in [0, 1] (a score threshold)")
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"predict param iou={iou} must be in (0, 1] (the NMS IoU threshold)")
    if max_det < 1:
        raise ValueError(f"predict param max_det={max_det} must be >= 1 (detections per image)")


def check_serving_limits(
    max_pixels: int, max_request_bytes: int, max_request_pixels: int | None = None
) -> None:
    """Raise ``ValueError`` naming the limit when it is not a positive number."""
    limits = (
        ("max_pixels", max_pixels),
        ("max_request_bytes", max_request_bytes),
        ("max_request_pixels", 1 if max_request_pixels is None else max_request_pixels),
    )
    for name, value in limits:
        if value < 1:
            raise ValueError(f"serving limit {name}={value} must be >= 1")


def _bad_row(row: int, why: str) -> MlflowException:
    return MlflowException(
        f"row {row}: column '{IMAGE_COLUMN}' {why}; send the encoded bytes of a JPEG/PNG file "
        "(base64 in JSON requests)",
        error_code=INVALID_PARAMETER_VALUE,
    )


def encoded_bytes(value: Any, row: int) -> bytes:
    """A row's value (bytes or their base64 text) -> the encoded file; bad input names ``row``."""
    if isinstance(value, str):
        try:
            value = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _bad_row(row, "is a string that is not base64 (not a decodable image)") from None
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise _bad_row(row, f"holds {type(value).__name__}, not bytes")
    if not value:
        raise _bad_row(row, "is empty")
    return value


def header_size(value: bytes, row: int, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the image header, without decoding; an unreadable header or more
    than ``max_pixels`` pixels is refused naming ``row``."""
    size = image_format.image_size(value)
    if size is None:
        raise _bad_row(
            row,
            f"is not a decodable image ({len(value)} bytes; the header of a JPEG, PNG, BMP, "
            "GIF, WebP or TIFF file was expected)",
        )
    width, height = size
    if width * height > max_pixels:
        raise MlflowException(
            f"row {row}: image of {width}x{height} = {width * height} pixels is over the "
            f"served model's limit of {max_pixels} pixels (model_config max_pixels); "
            "downscale it before sending",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return width, height


def decode_image(
    value: Any, row: int, max_pixels: int = DEFAULT_SERVING_LIMITS["max_pixels"]
) -> np.ndarray:
    """Encoded image bytes (or their base64 text) -> HWC BGR uint8; bad input names ``row``.

    The header is read first: an unreadable header or more than ``max_pixels`` pixels is refused
    before the decoder allocates anything.
    """
    value = encoded_bytes(value, row)
    header_size(value, row, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise _bad_row(row, f"is not a decodable image ({len(value)} bytes)")
    return image


def _over_budget(holds: str, limit: str) -> MlflowException:
    return MlflowException(
        f"request holds {holds}, over the served model's limit of {limit}; send fewer or "
        "smaller images per request",
        error_code=INVALID_PARAMETER_VALUE,
    )


class YoloDetectorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around an exported graph (artifact ``onnx``) or a checkpoint
    (artifact ``checkpoint``), as ``model_config`` ``backend`` says."""

    def load_context(self, context) -> None:
        config = {**DEFAULT_SERVING_LIMITS, **(getattr(context, "model_config", None) or {})}
        backend = config.get("backend") or "torch"
        if backend == "onnxruntime":
            self._load_onnx(context.artifacts)
        elif backend == "torch":
            self._load_torch(context.artifacts)
        else:
            raise MlflowException(
                f"model_config backend={backend!r} is not one of {SERVING_BACKENDS}; "
                "set register.serving.backend and register the model again",
                error_code=INVALID_PARAMETER_VALUE,
            )
        self.backend = backend
        self.max_pixels = int(config["max_pixels"])
        self.max_request_bytes = int(config["max_request_bytes"])
        budget = config["max_request_pixels"]
        check_serving_limits(self.max_pixels, self.max_request_bytes, budget)
        self.max_request_pixels = (
            request_pixel_budget(self.max_pixels) if budget is None else budget
        )

    def _load_onnx(self, artifacts: dict[str, str]) -> None:
        """The exported graph in ONNX Runtime (imports no torch)."""
        from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector

        if "onnx" not in artifacts:
            raise MlflowException(
                f"model_config backend='onnxruntime' but the model has no 'onnx' artifact "
                f"(artifacts: {sorted(artifacts)}); register it with the export stage's files "
                "or load it with model_config={'backend': 'torch'}"
            )
        self.model = OnnxRuntimeDetector(artifacts["onnx"])
        self.names, self.imgsz = list(self.model.names), self.model.imgsz

    def _load_torch(self, artifacts: dict[str, str]) -> None:
        """The checkpoint in PyTorch, on the GPU when there is one."""
        import torch

        from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint

        ckpt = read_checkpoint(artifacts["checkpoint"])
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model_from_checkpoint(ckpt).to(device).eval()
        self.names = list(ckpt["config"]["names"])
        self.imgsz = int(ckpt["config"].get("imgsz") or 640)

    def _check_request(self, encoded: list[bytes]) -> None:
        """Refuse a request over the byte or the decoded-pixel budget, reading headers only."""
        total = sum(len(data) for data in encoded)
        if total > self.max_request_bytes:
            raise _over_budget(
                f"{total} bytes of images in {len(encoded)} rows",
                f"{self.max_request_bytes} bytes (model_config max_request_bytes)",
            )
        pixels = 0
        for row, data in enumerate(encoded):
            width, height = header_size(data, row, self.max_pixels)
            pixels += width * height
            if pixels > self.max_request_pixels:
                raise _over_budget(
                    f"{pixels} pixels in its first {row + 1} of {len(encoded)} rows",
                    f"{self.max_request_pixels} decoded pixels (model_config max_request_pixels)",
                )

    def _detect(self, images: list[np.ndarray], conf: float, iou: float, max_det: int) -> list:
        """``(boxes [n, 4] original px, scores [n], class ids [n])`` per image (yolo.inference)."""
        settings = {"conf": conf, "iou": iou, "max_det": max_det}
        if self.backend == "onnxruntime":  # torch-free: letterbox, graph, numpy NMS
            found = self.model.detect_images(images, self.imgsz, **settings)
        else:
            from yolo_mlops.yolo.inference import detect_images

            found = detect_images(self.model, images, self.imgsz, **settings)
        return [(item.boxes, item.scores, item.classes) for item in found]

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Detect objects in every row's image; see the module docstring for the formats."""
        settings = {**DEFAULT_PREDICT_PARAMS, **(params or {})}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if IMAGE_COLUMN not in frame.columns:
            raise MlflowException(
                f"input needs a column '{IMAGE_COLUMN}' of encoded image bytes; "
                f"got columns {list(frame.columns)}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        conf, iou, max_det = (
            float(settings["conf"]),
            float(settings["iou"]),
            int(settings["max_det"]),
        )
        try:
            check_predict_params(conf, iou, max_det)
        except ValueError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        encoded = [encoded_bytes(v, i) for i, v in enumerate(frame[IMAGE_COLUMN].tolist())]
        self._check_request(encoded)
        images = [decode_image(data, i, self.max_pixels) for i, data in enumerate(encoded)]
        rows: list[tuple] = []
        for start in range(0, len(images), _BATCH):
            chunk = images[start : start + _BATCH]
            results = self._detect(chunk, conf, iou, max_det)
            for offset, (boxes, scores, classes) in enumerate(results):
                for box, score, cls in zip(boxes, scores, classes, strict=True):
                    name = self.names[cls] if 0 <= cls < len(self.names) else str(cls)
                    rows.append((start + offset, int(cls), name, float(score), *map(float, box)))
        result = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
        return result.astype(
            {
                "image_index": "int64",
                "class_id": "int64",
                "class_name": "object",
                "score": "float64",
            }
            | {c: "float64" for c in ("x1", "y1", "x2", "y2")}
        )
