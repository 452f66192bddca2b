"""Batch prediction over a folder, a glob or a list file, streamed in chunks.

:class:`PredictParams` is the ``predict`` parameter block (``conf/base/parameters_predict.yml``).
:func:`predict_source` opens ``predict.model`` (a checkpoint, ours or Ultralytics', an exported
``.onnx`` run by ONNX Runtime (or OpenVINO with ``backend: openvino``), an OpenVINO IR ``.xml``,
or a registered version ``models:/name@alias`` / ``models:/name/N``, whose file is downloaded
once into ``predict.registry_cache``: :mod:`yolo_mlops.pipelines.registered_model`) and walks
``predict.source`` once, ``chunk_images`` images at a time: each chunk is decoded, letterboxed
in batches of ``batch_size`` (a same-shape batch, one image included, to the smallest
stride-multiple canvas, as the reference's predict), run through
:func:`yolo_mlops.yolo.inference.detect_images` and turned into a table of detections in
original pixels. Only one chunk of images is in memory at a time, so memory stays flat in the
number of images. A file that cannot be decoded is skipped and listed in the report.

``predict.source`` forms:

* a folder: every image in it and below (by suffix, sorted);
* a ``.txt`` file: one image path per line (relative paths are relative to the list file);
* anything else: a glob pattern (``**`` recurses), e.g. ``data/incoming/*.jpg``.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from yolo_mlops.ingestion.dataset_yaml import IMAGE_SUFFIXES
from yolo_mlops.pipelines.registered_model import local_model_file
from yolo_mlops.yolo.device import select_device
from yolo_mlops.yolo.inference import ImageDetections, detect_images, load_detector
from yolo_mlops.yolo.io.checkpoint import read_checkpoint

logger = logging.getLogger(__name__)

BLOCK = "predict"
#: Columns of the detections table and their dtypes (boxes in original pixels).
DTYPES = {"image": "object", "class": "int64", "name": "object", "score": "float32",
          "x1": "float32", "y1": "float32", "x2": "float32", "y2": "float32"}  # fmt: skip
COLUMNS = list(DTYPES)
LIST_SUFFIX = ".txt"
BACKENDS = ("onnxruntime", "openvino", "torch")
EXPORTED_SUFFIXES = (".onnx", ".xml")  # run by onnxruntime / openvino, not torch


@dataclass(frozen=True)
class PredictParams:
    """The ``predict`` parameter block; see ``conf/base/parameters_predict.yml``."""

    source: str = ""  # a folder, a glob, or a .txt list of image paths
    model: str = "data/06_models/best.pt"  # a checkpoint, an exported .onnx or models:/...
    backend: str = "onnxruntime"  # onnxruntime or openvino (runs model.onnx), torch (model.pt)
    registry_cache: str = "data/06_models/registry"  # where models:/ files are downloaded
    imgsz: int = 0  # 0 = the size recorded in the model (training size / export size)
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    batch_size: int = 1
    chunk_images: int = 256  # images per Parquet part (and per report update)
    device: str = "auto"  # torch models only; .onnx runs on the CPU
    threads: int = 0  # ONNX Runtime / OpenVINO intra-op threads; 0 = all cores
    save_images: bool = False  # also write annotated copies (data/07_model_output/annotated)

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError(
                "predict.source is empty: --params predict.source=<folder, glob or .txt list>"
            )
        if not 0.0 <= self.conf < 1.0 or not 0.0 < self.iou <= 1.0:
            raise ValueError(
                f"conf must be in [0, 1) and iou in (0, 1], got {self.conf}, {self.iou}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if min(self.max_det, self.batch_size, self.chunk_images) < 1 or self.threads < 0:
            raise ValueError("max_det, batch_size and chunk_images must be >= 1, threads >= 0")


@dataclass
class Chunk:
    """What one chunk of images produced.

    Attributes:
        table: detections, columns :data:`COLUMNS` (boxes in original pixels).
        report: the running report (images, detections, skipped files so far).
        annotated: ``{name: callable returning the annotated PIL image}`` with ``save_images``
            (called when saved: the image is read again, so a chunk holds no pixels).
    """

    table: pd.DataFrame
    report: dict[str, Any]
    annotated: dict[str, Callable[[], Image.Image]] = field(default_factory=dict)


def image_paths(source: str) -> list[Path]:
    """The image files ``source`` names (see the module docstring), in a stable order.

    Raises:
        FileNotFoundError: ``source`` matches no file.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() == LIST_SUFFIX:
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        found = [path.parent / line for line in lines if line and not line.startswith("#")]
    else:
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not found:
        raise FileNotFoundError(
            f"predict.source={source!r} names no image (a folder, a glob such as 'dir/*.jpg', "
            f"or a {LIST_SUFFIX} file with one image path per line)"
        )
    return found


def model_file(params: PredictParams, tracking: Mapping[str, Any] | None = None) -> Path:
    """The file ``predict.model`` names; a ``models:/`` URI is downloaded from the registry
    (``tracking``: the ``tracking`` parameter block, for the store's URI).

    Raises:
        RegisteredModelError: the URI names no version of the registry, or one without a file.
    """
    return local_model_file(params.model, tracking, params.registry_cache, params.backend)


def open_model(params: PredictParams, path: Path) -> tuple[Any, int]:
    """The model at ``path`` (either backend) and the image size to letterbox to."""
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        backend = "openvino" if params.backend == "openvino" else None  # else: the suffix's
        model = load_detector(path, backend, threads=params.threads or None)
        return model, params.imgsz or model.imgsz
    checkpoint = read_checkpoint(path)
    model = load_detector(path, device=select_device(params.device))
    return model, params.imgsz or int(checkpoint["config"].get("imgsz") or 640)


def _read(path: Path) -> np.ndarray | str:
    """The decoded image (HWC BGR uint8), or why it cannot be read."""
    if not path.is_file():
        return "no such file"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else "not a decodable image"


def _rows(path: Path, found: ImageDetections, names: Sequence[str]) -> pd.DataFrame:
    classes = found.classes.astype(np.int64)
    return pd.DataFrame(
        {"image": str(path), "class": classes, "name": [names[c] for c in classes],
         "score": found.scores, "x1": found.boxes[:, 0], "y1": found.boxes[:, 1],
         "x2": found.boxes[:, 2], "y2": found.boxes[:, 3]},
        columns=COLUMNS,
    )  # fmt: skip


def annotate(path: Path, table: pd.DataFrame) -> Image.Image:
    """The image at ``path`` with its detections drawn (a PIL RGB image, original size)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    for row in table.itertuples(index=False):
        corner, far = (int(row.x1), int(row.y1)), (int(row.x2), int(row.y2))
        cv2.rectangle(image, corner, far, (0, 200, 0), 2)
        label = f"{row.name} {row.score:.2f}"
        cv2.putText(image, label, (corner[0], max(corner[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 200, 0), 1, cv2.LINE_AA)  # fmt: skip
    return Image.fromarray(np.ascontiguousarray(image[..., ::-1]))


class _Predictor:
    """Runs chunks of paths through the model and keeps the running report."""

    def __init__(self, model: Any, imgsz: int, params: PredictParams) -> None:
        self.model, self.imgsz, self.params = model, imgsz, params
        self.names = list(getattr(model, "names", []))
        self.report: dict[str, Any] = {"source": params.source, "model": params.model,
                                       "imgsz": imgsz, "images": 0, "detections": 0,
                                       "skipped": []}  # fmt: skip

    def _detect(self, images: list[np.ndarray]) -> list[ImageDetections]:
        settings = {
            "conf": self.params.conf,
            "iou": self.params.iou,
            "max_det": self.params.max_det,
        }
        found = []
        for start in range(0, len(images), self.params.batch_size):
            batch = images[start : start + self.params.batch_size]
            found += detect_images(self.model, batch, self.imgsz, **settings)
        return found

    def chunk(self, paths: list[Path], first_index: int) -> Chunk:
        read = [(path, _read(path)) for path in paths]
        for path, image in read:
            if isinstance(image, str):
                logger.warning("skipping %s: %s", path, image)
                self.report["skipped"].append({"file": str(path), "reason": image})
        good = [(path, image) for path, image in read if not isinstance(image, str)]
        found = self._detect([image for _, image in good])
        tables = [
            _rows(path, dets, self.names) for (path, _), dets in zip(good, found, strict=True)
        ]
        empty = pd.DataFrame(columns=COLUMNS).astype(DTYPES)
        table = pd.concat([empty, *tables], ignore_index=True).astype(DTYPES)
        self.report["images"] += len(good)
        self.report["detections"] += len(table)
        annotated = {}
        if self.params.save_images:
            for offset, ((path, _), part) in enumerate(zip(good, tables, strict=True)):
                name = f"{first_index + offset:07d}_{path.stem}"
                annotated[name] = lambda path=path, part=part: annotate(path, part)
        return Chunk(table, dict(self.report), annotated)


def predict_source(
    params: PredictParams, tracking: Mapping[str, Any] | None = None
) -> Iterator[Chunk]:
    """Chunks of detections over ``params.source`` (see the module docstring); progress shown.

    ``tracking``: the ``tracking`` parameter block (read for ``models:/`` values only).

    Raises:
        FileNotFoundError: ``source`` names no image, or ``model`` does not exist.
        RegisteredModelError: ``model`` is a ``models:/`` URI the registry does not hold.
    """
    paths = image_paths(params.source)
    model, imgsz = open_model(params, model_file(params, tracking))
    predictor = _Predictor(model, imgsz, params)
    logger.info("predicting %d images of %s with %s at %d", len(paths), params.source,
                params.model, imgsz)  # fmt: skip
    start, files = time.perf_counter(), iter(paths)
    with tqdm(total=len(paths), desc="predict", unit="img", disable=None) as progress:
        for index in range(0, len(paths), params.chunk_images):
            chunk = predictor.chunk(list(islice(files, params.chunk_images)), index)
            chunk.report["seconds"] = round(time.perf_counter() - start, 3)
            progress.update(min(params.chunk_images, len(paths) - index))
            yield chunk
