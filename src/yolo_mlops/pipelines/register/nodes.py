"""Register node: log the trained detector to MLflow, register it, run the promotion gate."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from yolo_mlops.ingestion.paths import project_root
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.tracking import model_files, orphans, pyfunc_model, registry
from yolo_mlops.tracking import run as tracking_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictDefaults:
    """Default predict-time params baked into the model signature (callers may override)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300

    def __post_init__(self) -> None:
        pyfunc_model.check_predict_params(self.conf, self.iou, self.max_det)


@dataclass(frozen=True)
class ServingLimits:
    """How the model serves (its ``model_config``); see ``tracking/pyfunc_model.py``.

    ``backend``: ``onnxruntime`` serves the exported ``model.onnx`` without torch (torch is not in
    the model's pip requirements); ``torch`` serves the checkpoint. The rest are request limits.
    """

    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    max_pixels: int = pyfunc_model.DEFAULT_SERVING_LIMITS["max_pixels"]
    max_request_bytes: int = pyfunc_model.DEFAULT_SERVING_LIMITS["max_request_bytes"]
    max_request_pixels: int | None = None  # None: sized to the serving machine's memory

    def __post_init__(self) -> None:
        pyfunc_model.check_serving_limits(
            self.max_pixels, self.max_request_bytes, self.max_request_pixels
        )


@dataclass(frozen=True)
class RegisterParams:
    """The ``register`` block of ``conf/base/parameters_register.yml``."""

    model_name: str = "yolo11n-coco128"
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"
    promotion: registry.PromotionPolicy = field(default_factory=registry.PromotionPolicy)
    predict: PredictDefaults = field(default_factory=PredictDefaults)
    serving: ServingLimits = field(default_factory=ServingLimits)


def registration(settings: RegisterParams) -> registry.Registration:
    """The ``register`` block as the registry takes it."""
    return registry.Registration(
        model_name=settings.model_name,
        policy=settings.promotion,
        challenger_alias=settings.challenger_alias,
        champion_alias=settings.champion_alias,
        predict_defaults=dataclasses.asdict(settings.predict),
        serving_limits={
            key: value
            for key, value in dataclasses.asdict(settings.serving).items()
            if key != "backend"
        },
        serving_backend=settings.serving.backend,
    )


def register_model(
    model_checkpoint: dict[str, Any],
    metrics: dict[str, Any],
    exported_models: dict[str, Path],
    export_report: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Log the checkpoint and its exports as an MLflow pyfunc model, register it and apply the
    promotion gate.

    Args:
        model_checkpoint: checkpoint dict from ``data/06_models/best.pt`` (config + state_dict).
        metrics: ``data/08_reporting/metrics.json`` (``mAP50``, ``mAP50-95`` fractions).
        exported_models: ``{file name: path}`` of ``data/06_models/export`` (``model.onnx``, ...).
        export_report: ``data/08_reporting/export.json`` (sizes and parity of each file); a
            failed fp32 parity keeps the version from promotion.
        params: the ``register`` parameter block.

    Returns:
        The registration record for ``data/08_reporting/registration.json``. Untracked (store
        unreachable under ``tracking.on_unreachable: warn``, or tracking disabled) nothing is
        registered and the record says ``status: skipped``; ``kedro run --pipelines register``
        registers the checkpoint of ``data/06_models`` later.
    """
    settings = parse_params(RegisterParams, params, "register")
    run = tracking_run.current()
    if run is None:
        lost = tracking_run.lost_reason()
        reason = (f"MLflow tracking was lost mid-run ({lost})" if lost
                  else "no MLflow run (tracking disabled or store unreachable)")  # fmt: skip
        logger.warning(
            "register_model: %s; model NOT registered. Run `kedro run --pipelines register` "
            "once the tracking store is reachable.",
            reason,
        )
        return {"status": "skipped", "reason": reason, "model_name": settings.model_name}
    trained_by = orphans.training_run(model_checkpoint, run)  # the run that trained the model
    exported = model_files.ExportedModels(files=exported_models, report=export_report)
    return registry.log_and_register(
        trained_by,
        model_checkpoint,
        metrics,
        registration(settings),
        project_root(),
        exported=exported,
    )
