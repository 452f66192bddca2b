"""Validate every parameter block when a run starts.

Each pipeline parses its own block into a dataclass inside its node; this hook parses them all as
soon as the Kedro context exists, so a typo in ``conf/`` (or in ``--params``) fails before the
download starts rather than an hour later when the evaluation node first reads its block. When the
pipeline about to run trains, the training settings that need no data (device, split names, the
resume checkpoint, a resumed run's recipe given again on the command line) are checked too,
before the first node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams
from yolo_mlops.pipelines.export.exporting import ExportParams
from yolo_mlops.pipelines.ingest.nodes import DataIngestionParams
from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.pipelines.predict.predicting import PredictParams
from yolo_mlops.pipelines.preprocess.nodes import PreprocessingParams
from yolo_mlops.pipelines.register.nodes import RegisterParams
from yolo_mlops.pipelines.tune.config import TuneParams
from yolo_mlops.pipelines.validate.nodes import DataValidationParams
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.yolo.io.checkpoint import read_checkpoint
from yolo_mlops.yolo.train.resume import check_given
from yolo_mlops.yolo.train.run_guard import check_train_settings, resume_path
from yolo_mlops.yolo.train.trainer import TrainConfig

logger = logging.getLogger(__name__)

#: The node whose settings are checked before a pipeline that contains it starts.
TRAIN_NODE = "train_model"

#: The top-level parameter blocks of ``conf/*/parameters_*.yml`` and the dataclass of each.
PARAMETER_BLOCKS: dict[str, type] = {
    "data_ingestion": DataIngestionParams,
    "data_validation": DataValidationParams,
    "preprocessing": PreprocessingParams,
    "training": TrainConfig,
    "evaluation": EvaluationParams,
    "export": ExportParams,
    "register": RegisterParams,
    "predict": PredictParams,
    "tracking": TrackingParams,
    "tune": TuneParams,
}


def validate_parameters(params: Mapping[str, Any]) -> None:
    """Parse every known block of ``params``; raise on an unknown block or a bad value.

    Raises:
        ParameterError: naming the dotted key and the parameters file to fix.
    """
    unknown = sorted(set(params) - set(PARAMETER_BLOCKS))
    if unknown:
        raise ParameterError(
            f"unknown parameter block(s) {', '.join(unknown)}; known blocks: "
            f"{', '.join(PARAMETER_BLOCKS)} (check conf/*/parameters_*.yml and --params)"
        )
    for block, schema in PARAMETER_BLOCKS.items():
        if block in params:
            parse_params(schema, params[block], block)


class ParameterValidationHook:
    """Fails a ``kedro run`` whose parameters do not match the declared blocks, before any node."""

    def __init__(self) -> None:
        self._params: Mapping[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_parameters(context.params)
        self._params = context.params
        logger.debug("parameters valid: %s", ", ".join(sorted(context.params)))

    @hook_impl(tryfirst=True)  # before the weights hook fetches anything and before MLflow starts
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        """Check the training settings when the pipeline trains (before any download); a resume
        may not change its recipe from the command line (:func:`check_resume_params`)."""
        if any(node.name == TRAIN_NODE for node in pipeline.nodes):
            config = parse_params(TrainConfig, self._params.get("training"), "training")
            check_train_settings(config)
            given = (run_params.get("runtime_params") or {}).get("training") or {}
            check_resume_params(config, given)


def check_resume_params(config: TrainConfig, given: Mapping[str, Any]) -> None:
    """Raise when a resumed run is given a ``training`` value that differs from its checkpoint's
    and may not change (``yolo.train.resume``); no-op for a new run."""
    path = resume_path(config.resume, Path(config.save_dir))
    if path is None:
        return
    recorded = read_checkpoint(path)["config"].get("train_args") or {}
    check_given(config, recorded, set(given))
