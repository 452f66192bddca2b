"""Evaluate a checkpoint on a YOLO-format dataset, without Kedro: one function for scripts.

``evaluate_checkpoint`` reads the dataset YAML (:mod:`yolo_mlops.ingestion.dataset_yaml`), the label
files next to the images, decodes the original images at the requested ``imgsz`` and evaluates in
the reference's rectangular batches (:mod:`yolo_mlops.yolo.data.eval_data`) with the metric rules
of Ultralytics 8.4.190 (:mod:`yolo_mlops.yolo.eval.protocol`), reporting what its ``val`` reports
for
the same weights (equal to 5 decimals on the reference checkpoints). It lives outside ``yolo/``
because reading a dataset YAML belongs to the data layer, which the library does not import;
nothing here imports kedro or mlflow.

    from yolo_mlops.evaluation_api import evaluate_checkpoint
    metrics = evaluate_checkpoint("runs/last.pt", "coco16b.yaml", imgsz=320)
    metrics["mAP50-95"]
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from yolo_mlops.ingestion.dataset_yaml import label_path, parse_dataset_yaml
from yolo_mlops.ingestion.label_checks import DUPLICATE_ROW, check_image, read_labels
from yolo_mlops.yolo.boxes import xywh_to_xyxy
from yolo_mlops.yolo.data.eval_data import FileImages, build_letterbox_loader
from yolo_mlops.yolo.eval.evaluate import EvalResult, evaluate
from yolo_mlops.yolo.eval.protocol import DEFAULT_PROTOCOL
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint

logger = logging.getLogger(__name__)

LABEL_TOLERANCE = 0.01  # coordinates may exceed [0, 1] by 1 % (the reference's label check)


def dataset_images(dataset_yaml: str | os.PathLike[str], split: str, imgsz: int) -> FileImages:
    """The images of ``split`` of a dataset YAML with their labels, loaded at ``imgsz``.

    Like the reference's label check: exact duplicate rows are dropped; an image whose label file
    has any other bad row, or that cannot be decoded, is left out with a warning; an image without
    a label file (or with an empty one) is a background image.

    Raises:
        DatasetYamlError: the YAML is malformed or points at missing data.
        KeyError: ``split`` is not in the YAML.
    """
    spec = parse_dataset_yaml(Path(dataset_yaml))
    if split not in spec.splits:
        raise KeyError(f"{dataset_yaml}: no split {split!r} (has {sorted(spec.splits)})")
    paths, boxes, classes, shapes = [], [], [], []
    for image in spec.splits[split]:
        width, height, problems = check_image(image)
        _, file_problems, rows = read_labels(label_path(image), spec.nc, LABEL_TOLERANCE)
        bad = [p for row in rows for p in row.problems if p.code != DUPLICATE_ROW]
        if problems or file_problems or bad:
            first = (problems or file_problems or bad)[0]
            logger.warning("ignoring %s: %s (line %d)", image, first.message, first.line)
            continue
        values = np.array([row.values for row in rows if not row.problems], np.float32)
        values = values.reshape(-1, 5)
        paths.append(image)
        boxes.append(xywh_to_xyxy(values[:, 1:5]).clip(0, 1))
        classes.append(values[:, 0].astype(np.int64))
        shapes.append((height, width))
    if not paths:
        raise ValueError(f"{dataset_yaml}: split {split!r} has no readable image")
    return FileImages(paths, boxes, classes, np.array(shapes, np.int64), imgsz=imgsz)


def evaluate_checkpoint_full(
    checkpoint_path: str | os.PathLike[str],
    dataset_yaml_path: str | os.PathLike[str],
    imgsz: int | None = None,
    *,
    split: str = "val",
    batch_size: int = 16,
    rect: bool = True,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    device: str = "cpu",
    workers: int = 0,
    protocol: str = DEFAULT_PROTOCOL,
) -> EvalResult:
    """:func:`evaluate_checkpoint`, returning the whole :class:`EvalResult` (tables, curves,
    predictions in original pixels, speed)."""
    ckpt = read_checkpoint(checkpoint_path)
    size = int(imgsz or ckpt["config"]["imgsz"])
    images = dataset_images(dataset_yaml_path, split, size)
    names = [str(n) for n in ckpt["config"]["names"]]
    model = model_from_checkpoint(ckpt).to(torch.device(device))
    loader = build_letterbox_loader(images, batch_size, rect=rect, workers=workers)
    logger.info(
        "evaluating %s on %s (%s, %d images) at imgsz %d, %s batches of %d",
        checkpoint_path, dataset_yaml_path, split, len(images), size,
        "rectangular" if rect else "square", batch_size,
    )  # fmt: skip
    return evaluate(
        model, loader, names, conf=conf, iou=iou, max_det=max_det, protocol=protocol,
    )  # fmt: skip


def evaluate_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    dataset_yaml_path: str | os.PathLike[str],
    imgsz: int | None = None,
    **options,
) -> dict[str, float]:
    """Evaluate a checkpoint (ours or an Ultralytics ``.pt``) on a YOLO-format dataset.

    Args:
        checkpoint_path: the weights; anything :func:`~yolo_mlops.yolo.read_checkpoint` reads.
        dataset_yaml_path: an Ultralytics-style dataset YAML; its ``val`` split is evaluated.
        imgsz: long side of the evaluated images, pixels; ``None`` = the training size recorded
            in the checkpoint. The originals are always decoded (no cache).
        **options: ``split`` ("val"), ``batch_size`` (16), ``rect`` (True), ``conf`` (0.001),
            ``iou`` (0.7), ``max_det`` (300), ``device`` ("cpu"), ``workers`` (0) — the
            reference's ``val`` defaults — and ``protocol`` ("8.4.190", the metric rules of
            that Ultralytics version; "8.3.0" for the older ones, see ``yolo/protocol.py``).

    Returns:
        Fractions: ``precision``, ``recall`` (at the max-F1 confidence), ``mAP50``,
        ``mAP50-95``, ``mAP75`` and ``fitness``.
    """
    result = evaluate_checkpoint_full(checkpoint_path, dataset_yaml_path, imgsz, **options)
    return dict(result.metrics)
