"""The registered detector as an MLflow pyfunc model.

Input: a pandas DataFrame with one column ``image`` holding ENCODED image files (JPEG, PNG, any
format OpenCV decodes) as ``bytes``, one image per row. Over REST (``mlflow models serve``) the
same column is sent base64-encoded, because MLflow's JSON format carries binary columns as
base64 strings::

    {"dataframe_split": {"columns": ["image"], "data": [["<base64 of the file>"]]},
     "params": {"conf": 0.25}}

Output: a DataFrame with one row per detection, columns ``image_index`` (row of the input),
``class_id``, ``class_name``, ``score``, ``x1, y1, x2, y2`` (pixels of the ORIGINAL image).
Predict-time params: ``conf`` (score threshold), ``iou`` (NMS IoU), ``max_det`` (per image).

A row whose bytes are not a decodable image raises ``MlflowException`` (INVALID_PARAMETER_VALUE,
HTTP 400 when served) naming the row index.

Limits (the ``model_config`` of the logged model, set from ``register.serving``): an image whose
header announces more than ``max_pixels`` pixels is refused before it is decoded (decoding
allocates 3 bytes per pixel whatever the file size), formats whose header cannot be read
(anything but JPEG, PNG, BMP, GIF, WebP, TIFF) are refused for the same reason, and a request
whose images total more than ``max_request_bytes`` encoded bytes is refused as a whole. Predict
params out of range (``conf`` outside [0, 1], ``iou`` outside (0, 1], ``max_det`` < 1) are refused.

Preprocessing matches inference in Ultralytics' predict mode: letterbox to the checkpoint's
``imgsz`` square (scale up allowed, centred, pad 114), BGR -> RGB, ``/255``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import cv2
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from yolo_mlops.ingestion import image_format
from yolo_mlops.yolo.inference import detect_images

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("image_index", "class_id", "class_name", "score", "x1", "y1", "x2", "y2")
DEFAULT_PREDICT_PARAMS = {"conf": 0.25, "iou": 0.7, "max_det": 300}
#: Default serving limits (``model_config`` keys): 40 megapixels decode to 120 MB of BGR.
DEFAULT_SERVING_LIMITS = {"max_pixels": 40_000_000, "max_request_bytes": 64 * 1024 * 1024}
_BATCH = 16


def model_signature(conf: float = 0.25, iou: float = 0.7, max_det: int = 300) -> ModelSignature:
    """The input/output/params schema described in the module docstring."""
    inputs = Schema([ColSpec(DataType.binary, IMAGE_COLUMN)])
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


def check_serving_limits(max_pixels: int, max_request_bytes: int) -> None:
    """Raise ``ValueError`` naming the limit when it is not a positive number."""
    for name, value in (("max_pixels", max_pixels), ("max_request_bytes", max_request_bytes)):
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


def decode_image(
    value: Any, row: int, max_pixels: int = DEFAULT_SERVING_LIMITS["max_pixels"]
) -> np.ndarray:
    """Encoded image bytes (or their base64 text) -> HWC BGR uint8; bad input names ``row``.

    The header is read first: an unreadable header or more than ``max_pixels`` pixels is refused
    before the decoder allocates anything.
    """
    value = encoded_bytes(value, row)
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
    try:
        image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise _bad_row(row, f"is not a decodable image ({len(value)} bytes)")
    return image


class YoloDetectorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a yolo-mlops checkpoint (artifact ``checkpoint``)."""

    def load_context(self, context) -> None:
        from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint

        ckpt = read_checkpoint(context.artifacts["checkpoint"])
        config = ckpt["config"]
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model_from_checkpoint(ckpt).to(self.device).eval()
        self.names = list(config["names"])
        self.imgsz = int(config.get("imgsz") or 640)
        self.strides = tuple(int(s) for s in (config.get("stride") or (8, 16, 32)))
        limits = {**DEFAULT_SERVING_LIMITS, **(getattr(context, "model_config", None) or {})}
        self.max_pixels = int(limits["max_pixels"])
        self.max_request_bytes = int(limits["max_request_bytes"])
        check_serving_limits(self.max_pixels, self.max_request_bytes)

    def _detect(self, images: list[np.ndarray], conf: float, iou: float, max_det: int) -> list:
        """``(boxes [n, 4] original px, scores [n], class ids [n])`` per image (yolo.inference)."""
        found = detect_images(self.model, images, self.imgsz, conf=conf, iou=iou, max_det=max_det)
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
        total = sum(len(data) for data in encoded)
        if total > self.max_request_bytes:
            raise MlflowException(
                f"request holds {total} bytes of images in {len(encoded)} rows, over the served "
                f"model's limit of {self.max_request_bytes} bytes (model_config "
                "max_request_bytes); send fewer or smaller images per request",
                error_code=INVALID_PARAMETER_VALUE,
            )
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
