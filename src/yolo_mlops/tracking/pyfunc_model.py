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

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("image_index", "class_id", "class_name", "score", "x1", "y1", "x2", "y2")
DEFAULT_PREDICT_PARAMS = {"conf": 0.25, "iou": 0.7, "max_det": 300}
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


def _bad_row(row: int, why: str) -> MlflowException:
    return MlflowException(
        f"row {row}: column '{IMAGE_COLUMN}' {why}; send the encoded bytes of a JPEG/PNG file "
        "(base64 in JSON requests)",
        error_code=INVALID_PARAMETER_VALUE,
    )


def decode_image(value: Any, row: int) -> np.ndarray:
    """Encoded image bytes (or their base64 text) -> HWC BGR uint8; bad input names ``row``."""
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
    try:
        image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise _bad_row(row, f"is not a decodable image ({len(value)} bytes)")
    return image


def letterbox_square(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Letterbox to ``imgsz x imgsz`` (scale up allowed); returns (canvas, gain, (pad_x, pad_y))."""
    from yolo_mlops.yolo.data.letterbox import letterbox

    boxed = letterbox(image, imgsz, scaleup=True, center=True)
    return boxed.image, boxed.gain, boxed.pad


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

    def _detect(self, images: list[np.ndarray], conf: float, iou: float, max_det: int) -> list:
        from yolo_mlops.yolo.model.decode import decode
        from yolo_mlops.yolo.model.postprocess import non_max_suppression, scale_boxes

        boxed = [letterbox_square(image, self.imgsz) for image in images]
        batch = np.stack([canvas[..., ::-1] for canvas, _, _ in boxed])  # [B, S, S, 3] RGB
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        tensor = tensor.to(self.device).float() / 255.0  # [B, 3, S, S] in [0, 1]
        with torch.inference_mode():
            pred = decode(self.model(tensor), self.strides)  # [B, 4 + nc, A]
            detections = non_max_suppression(pred, conf=conf, iou=iou, max_det=max_det)
        out = []
        for image, (_, gain, pad), found in zip(images, boxed, detections, strict=True):
            rows = found.cpu()  # [n, 6] x1, y1, x2, y2, score, class (input pixels)
            boxes = scale_boxes(rows[:, :4], gain, pad, image.shape[:2])
            out.append((boxes.numpy(), rows[:, 4].numpy(), rows[:, 5].long().numpy()))
        return out

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
        images = [decode_image(v, i) for i, v in enumerate(frame[IMAGE_COLUMN].tolist())]
        rows: list[tuple] = []
        for start in range(0, len(images), _BATCH):
            chunk = images[start : start + _BATCH]
            results = self._detect(
                chunk, float(settings["conf"]), float(settings["iou"]), int(settings["max_det"])
            )
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
