"""One evaluation of a checkpoint, for the ``evaluate_model`` node and for scripts.

:class:`EvaluationParams` is the ``evaluation`` parameter block and the one set of defaults of
both ways in:

* the node, :func:`evaluate_cache`: a split of the image cache;
* scripts and benchmarks, :func:`evaluate_checkpoint`: a checkpoint file on a YOLO-format dataset
  YAML (no Kedro, no MLflow)::

      from yolo_mlops.pipelines.evaluate.evaluation import evaluate_checkpoint
      metrics = evaluate_checkpoint("runs/last.pt", "coco16b.yaml", imgsz=320)
      metrics["mAP50-95"]

Both end in :func:`run_evaluation`: the model on ``device``, letterboxed batches of
``batch_size`` (rectangular like the reference's ``val``, ``rect``), NMS (``conf``, ``iou``,
``max_det``) and the metric rules of ``protocol`` (:mod:`yolo_mlops.yolo.eval.protocol`). The
defaults are those of ``conf/base/parameters_evaluation.yml`` and of the reference's ``val``
(Ultralytics 8.4.190): batch 16 (rectangular canvases, hence predictions, depend on the batch;
the parity figures are at 16, equal to the reference's to 5 decimals on its checkpoints), conf
0.001, iou 0.7, max_det 300; device ``auto`` (cuda, then mps, then cpu).

Which model the node evaluates (:func:`open_model`):

* ``evaluation.checkpoint`` a registered version, ``models:/<name>@<alias>`` or
  ``models:/<name>/<version>`` → its file, downloaded once into ``evaluation.registry_cache``
  from the ``tracking`` block's store, as ``predict.model`` is
  (:mod:`yolo_mlops.pipelines.registered_model`): its ``model.onnx`` with ``backend`` ``auto``,
  ``onnxruntime`` or ``openvino`` (its checkpoint when it has none), its checkpoint with
  ``torch``; then evaluated as that file is;
* ``evaluation.checkpoint`` ending in ``.onnx`` (or an OpenVINO IR ``.xml``) → that exported
  file, run on the CPU by ONNX Runtime
  (:class:`~yolo_mlops.yolo.export.runtime.OnnxRuntimeDetector`) or, with ``backend: openvino``
  or an ``.xml``, by OpenVINO: the same rectangular batches, NMS and metric rules; its class
  count must be the dataset's; ``imgsz`` defaults to the size recorded in the file;
* ``evaluation.checkpoint`` set otherwise → that file (ours or an Ultralytics ``.pt``), an
  official name (``yolo11n.pt``) or an ``http(s)://`` URL, fetched into the weights cache
  (:func:`checkpoint_weights`) and read with the restricted unpickler;
* otherwise the ``model_checkpoint`` input (the trainer's best checkpoint) when the node has one,
  else the file ``data/06_models/best.pt``.

At which size: ``evaluation.imgsz``, by default the training size recorded in the checkpoint (else
the image cache's). The cached pixels are used when the cache was built at that size; otherwise the
original images are read again (:func:`yolo_mlops.yolo.data.eval_data.build_eval_images`), so one
``kedro run --pipelines evaluate`` evaluates at any size. Scripts always decode the originals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from yolo_mlops.ingestion.dataset_yaml import label_path, parse_dataset_yaml
from yolo_mlops.ingestion.label_checks import DUPLICATE_ROW, check_image, read_labels
from yolo_mlops.ingestion.weights_cache import BaseWeights, fetch_weights
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.registered_model import is_registered, local_model_file
from yolo_mlops.yolo.boxes import xywh_to_xyxy
from yolo_mlops.yolo.data.eval_data import (
    EvalImages,
    FileImages,
    build_eval_images,
    build_letterbox_loader,
)
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.device import select_device
from yolo_mlops.yolo.eval.evaluate import EvalResult, evaluate
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint
from yolo_mlops.yolo.io.weights import OFFICIAL_BASE_URL, check_sha256

if TYPE_CHECKING:
    from yolo_mlops.yolo.export.runtime import ExportedDetector

logger = logging.getLogger(__name__)

BLOCK = "evaluation"
STRIDE = 32  # canvas sides are multiples of the largest model stride
DEFAULT_CHECKPOINT = "data/06_models/best.pt"
EXPORTED_SUFFIXES = (".onnx", ".xml")  # run by ONNX Runtime / OpenVINO, not torch
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
LABEL_TOLERANCE = 0.01  # coordinates may exceed [0, 1] by 1 % (the reference's label check)


@dataclass(frozen=True)
class EvaluationParams:
    """The ``evaluation`` parameter block (conf/*/parameters_evaluation.yml); its defaults are
    those of the module docstring, for the node and for :func:`evaluate_checkpoint` alike."""

    checkpoint: str | None = ""  # ""/None = the trained model (model_checkpoint / best.pt)
    backend: str = "auto"  # auto (suffix; models:/ → model.onnx), torch, onnxruntime, openvino
    registry_cache: str = "data/06_models/registry"  # where models:/ files are downloaded
    checkpoint_sha256: str | None = None  # expected sha256 of the checkpoint file
    weights_base_url: str = OFFICIAL_BASE_URL  # where official names (yolo11n.pt) resolve
    split: str = "val"
    imgsz: int = 0  # 0 = the training size recorded in the checkpoint, else the cache's
    rect: bool = True  # rectangular batches (the reference's val); False = imgsz x imgsz canvases
    protocol: Literal["8.3.0", "8.4.190"] = "8.4.190"  # metric rules of that Ultralytics val
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    batch_size: int = 16  # the reference val's: rect canvases, hence predictions, depend on it
    workers: int = 0
    device: str = "auto"
    coco_eval: bool = True  # node only: the pycocotools cross-check
    plot_images: int = 16  # node only: images in the prediction grid
    verbose: bool = True  # log one table row per class
    confusion_all_classes: bool = False  # node only; False: classes with a true or predicted box

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf < 1.0:
            raise ValueError(f"conf must be in [0, 1), got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")
        if self.max_det < 1 or self.batch_size < 1:
            raise ValueError("max_det and batch_size must be >= 1")
        if self.workers < 0 or self.plot_images < 0:
            raise ValueError("workers and plot_images must be >= 0")
        if self.imgsz != 0 and (self.imgsz < STRIDE or (not self.rect and self.imgsz % STRIDE)):
            raise ValueError(
                f"imgsz must be 0 (the checkpoint's training size) or >= {STRIDE}, and a multiple "
                f"of {STRIDE} when rect is false; got {self.imgsz}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        check_sha256(self.checkpoint_sha256, "evaluation.checkpoint_sha256")
        object.__setattr__(self, "checkpoint", self.checkpoint or "")  # frozen dataclass


def is_exported(source: str | os.PathLike[str] | None) -> bool:
    """Whether ``source`` names an exported model (``.onnx``, ``.xml``) rather than a checkpoint."""
    return bool(source) and Path(source).suffix.lower() in EXPORTED_SUFFIXES


def open_exported(
    source: str | os.PathLike[str], names: list[str] | None, backend: str = "auto"
) -> ExportedDetector:
    """An exported file in ONNX Runtime or OpenVINO (``backend``; ``auto``: by suffix), checked
    against the dataset's class count (``names``; None: no check).

    Raises:
        FileNotFoundError: no such file. OnnxModelError: unreadable, truncated, a wrong output
            shape, or another class count than ``names`` (each naming the file).
        ValueError: ``backend`` is ``torch``.
    """
    if backend == "torch":
        raise ValueError(
            f"evaluation.checkpoint={str(source)!r} is an exported model; evaluation.backend "
            "torch runs checkpoints: use auto, onnxruntime or openvino"
        )
    from yolo_mlops.yolo.inference import load_detector  # the runtimes only when used

    count = None if names is None else len(names)
    chosen = None if backend == "auto" else backend
    detector = load_detector(source, chosen, num_classes=count)
    if names is not None and detector.names != names:
        logger.warning("%s: class names differ from the dataset's; using the dataset's", source)
    return detector


def run_evaluation(
    model: dict[str, Any] | ExportedDetector,
    images: EvalImages,
    names: list[str],
    params: EvaluationParams,
) -> EvalResult:
    """A checkpoint's model (on ``params.device``) or an exported model (ONNX Runtime or
    OpenVINO, CPU) over ``images`` with the settings of ``params`` (see the module)."""
    if isinstance(model, dict):
        model = model_from_checkpoint(model).to(select_device(params.device))
    loader = build_letterbox_loader(
        images, params.batch_size, rect=params.rect, workers=params.workers
    )
    return evaluate(
        model, loader, names, conf=params.conf, iou=params.iou, max_det=params.max_det,
        verbose=params.verbose, protocol=params.protocol,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the node's way
def checkpoint_weights(params: EvaluationParams) -> BaseWeights | None:
    """``evaluation.checkpoint`` fetched (a name or URL, into the weights cache) and checked;
    None when it is empty, a registered version (``models:/``, resolved by the node) or an
    exported file (a local file, checked when opened). The run-start hook calls it too: the
    node then finds the file cached."""
    if is_registered(params.checkpoint):
        return None
    if is_exported(params.checkpoint):
        if not Path(params.checkpoint).is_file():
            raise FileNotFoundError(
                f"evaluation.checkpoint={params.checkpoint!r}: no such exported file; export one "
                "with `kedro run --pipelines export` or fix the path"
            )
        return None
    return fetch_weights(
        params.checkpoint or "",
        parameter="evaluation.checkpoint",
        base_url=params.weights_base_url,
        sha256=params.checkpoint_sha256,
    )


def select_checkpoint(params: EvaluationParams, model_checkpoint: dict[str, Any] | None) -> dict:
    """The checkpoint the node evaluates when ``evaluation.checkpoint`` is a checkpoint or
    empty (see the module docstring)."""
    weights = checkpoint_weights(params)
    if weights is not None:
        logger.info("evaluating %s (evaluation.checkpoint=%s)", weights.path, params.checkpoint)
        return read_checkpoint(weights.path)
    if model_checkpoint is not None:
        logger.info("evaluating the trained model (model_checkpoint)")
        return model_checkpoint
    logger.info("evaluating %s (evaluation.checkpoint is empty)", DEFAULT_CHECKPOINT)
    return read_checkpoint(DEFAULT_CHECKPOINT)


def _check_classes(checkpoint: dict[str, Any], names: list[str]) -> None:
    model_nc = int(checkpoint["config"]["nc"])
    if model_nc != len(names):
        raise ValueError(
            f"the checkpoint predicts {model_nc} classes but the dataset has {len(names)}; "
            "evaluate a checkpoint trained on this dataset (evaluation.checkpoint)"
        )
    if list(checkpoint["config"]["names"]) != names:
        logger.warning("checkpoint class names differ from the dataset's; using the dataset's")


def _check_backend(params: EvaluationParams) -> None:
    """An exported backend asked for a checkpoint: an error naming both keys."""
    if params.backend in ("onnxruntime", "openvino"):
        raise ValueError(
            f"evaluation.backend={params.backend} runs exported files but "
            f"evaluation.checkpoint={params.checkpoint!r} is a checkpoint; export it "
            "(`kedro run --pipelines export`) and evaluate the .onnx, or use backend auto/torch"
        )


def open_model(
    params: EvaluationParams,
    model_checkpoint: dict[str, Any] | None,
    names: list[str],
    tracking: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | ExportedDetector, int | None]:
    """The model the node evaluates (a checkpoint dict or an exported model, checked against
    ``names``) and the image size it records (None: none); see the module docstring.

    ``tracking``: the ``tracking`` block (or ``{"uri": ...}``), read for ``models:/`` only.
    """
    if is_registered(params.checkpoint):
        wanted = "onnxruntime" if params.backend == "auto" else params.backend
        path = local_model_file(params.checkpoint, tracking, params.registry_cache, wanted)
        params = replace(params, checkpoint=str(path), checkpoint_sha256=None)
        if not is_exported(path):  # a version without an exported file: its checkpoint
            params = replace(params, backend="torch")
    if is_exported(params.checkpoint):
        checkpoint_weights(params)  # a clear error for a missing file
        logger.info("evaluating %s with %s (evaluation.checkpoint)", params.checkpoint,
                    params.backend)  # fmt: skip
        detector = open_exported(params.checkpoint, names, params.backend)
        return detector, detector.imgsz
    if params.checkpoint:
        _check_backend(params)
    checkpoint = select_checkpoint(params, model_checkpoint)
    _check_classes(checkpoint, names)
    return checkpoint, checkpoint["config"].get("imgsz")


def evaluate_cache(
    image_cache: ImageCache,
    params: EvaluationParams,
    model_checkpoint: dict[str, Any] | None,
    tracking: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Evaluate the selected model on ``params.split`` of the image cache.

    Raises:
        ValueError: the model predicts another number of classes than the dataset has.
        RegisteredModelError: ``evaluation.checkpoint`` names no registered version.
    """
    names = list(image_cache.names)
    model, trained_size = open_model(params, model_checkpoint, names, tracking)
    imgsz = params.imgsz or int(trained_size or image_cache.imgsz)
    images, how = build_eval_images(image_cache, params.split, imgsz)
    logger.info(
        "evaluating at imgsz %d (%s) from %s, %s batches of %d, %s metric rules",
        imgsz, "evaluation.imgsz" if params.imgsz else "training size", how,
        "rectangular" if params.rect else "square", params.batch_size, params.protocol,
    )  # fmt: skip
    return run_evaluation(model, images, names, params)


# ----------------------------------------------------------------------------- scripts' way
def _labelled_image(image: Path, nc: int) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    """(xyxy boxes normalised to [0, 1] ``[n, 4]``, classes ``[n]``, (h, w)) of one image, or
    None (with a warning) when the image or a label row other than a duplicate is bad."""
    width, height, problems = check_image(image)
    _, file_problems, rows = read_labels(label_path(image), nc, LABEL_TOLERANCE)
    bad = [p for row in rows for p in row.problems if p.code != DUPLICATE_ROW]
    if problems or file_problems or bad:
        first = (problems or file_problems or bad)[0]
        logger.warning("ignoring %s: %s (line %d)", image, first.message, first.line)
        return None
    values = np.array([row.values for row in rows if not row.problems], np.float32)
    values = values.reshape(-1, 5)
    boxes = xywh_to_xyxy(values[:, 1:5]).clip(0, 1)
    return boxes, values[:, 0].astype(np.int64), (height, width)


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
    labelled = [(image, _labelled_image(image, spec.nc)) for image in spec.splits[split]]
    kept = [(image, found) for image, found in labelled if found is not None]
    if not kept:
        raise ValueError(f"{dataset_yaml}: split {split!r} has no readable image")
    paths = [image for image, _ in kept]
    boxes, classes, shapes = (
        list(column) for column in zip(*(found for _, found in kept), strict=True)
    )
    return FileImages(paths, boxes, classes, np.array(shapes, np.int64), imgsz=imgsz)


def evaluate_checkpoint_full(
    checkpoint_path: str | os.PathLike[str],
    dataset_yaml_path: str | os.PathLike[str],
    imgsz: int | None = None,
    **options: Any,
) -> EvalResult:
    """:func:`evaluate_checkpoint`, returning the whole :class:`EvalResult` (tables, curves,
    predictions in original pixels, speed)."""
    params = parse_params(EvaluationParams, {**options, "imgsz": imgsz or 0}, "options")
    if is_exported(checkpoint_path):
        model: dict[str, Any] | ExportedDetector = open_exported(
            checkpoint_path, None, params.backend
        )
        names, size = list(model.names), params.imgsz or model.imgsz
    else:
        model = read_checkpoint(checkpoint_path)
        names = [str(name) for name in model["config"]["names"]]
        size = params.imgsz or int(model["config"]["imgsz"])
    images = dataset_images(dataset_yaml_path, params.split, size)
    logger.info(
        "evaluating %s on %s (%s, %d images) at imgsz %d, %s batches of %d",
        checkpoint_path, dataset_yaml_path, params.split, len(images), size,
        "rectangular" if params.rect else "square", params.batch_size,
    )  # fmt: skip
    return run_evaluation(model, images, names, params)


def evaluate_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    dataset_yaml_path: str | os.PathLike[str],
    imgsz: int | None = None,
    **options: Any,
) -> dict[str, float]:
    """Evaluate a checkpoint (ours or an Ultralytics ``.pt``) on a YOLO-format dataset.

    Args:
        checkpoint_path: the weights; anything :func:`~yolo_mlops.yolo.read_checkpoint` reads,
            or an exported ``.onnx`` (run by ONNX Runtime; its class names are the dataset's).
        dataset_yaml_path: an Ultralytics-style dataset YAML; its ``val`` split is evaluated.
        imgsz: long side of the evaluated images, pixels; ``None`` = the training size recorded
            in the checkpoint. The originals are always decoded (no cache).
        **options: fields of :class:`EvaluationParams`, with its defaults: ``split`` ("val"),
            ``batch_size`` (16), ``rect`` (True), ``conf`` (0.001), ``iou`` (0.7), ``max_det``
            (300), ``device`` ("auto"), ``workers`` (0), ``verbose`` (True) and ``protocol``
            ("8.4.190", the metric rules of that Ultralytics version; "8.3.0" for the older
            ones). The node-only fields (checkpoint, coco_eval, plots) have no effect here.

    Returns:
        Fractions: ``precision``, ``recall`` (at the max-F1 confidence), ``mAP50``,
        ``mAP50-95``, ``mAP75`` and ``fitness``.

    Raises:
        ParameterError: an unknown option or a bad value.
    """
    result = evaluate_checkpoint_full(checkpoint_path, dataset_yaml_path, imgsz, **options)
    return dict(result.metrics)
