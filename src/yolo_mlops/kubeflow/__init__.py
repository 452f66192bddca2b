"""Compile the project's Kedro pipelines into Kubeflow Pipelines (KFP v2) specs.

``kedro kubeflow compile --pipeline training --image IMAGE --output pipeline.yaml``; see
docs/kubeflow.md. This package never imports mlflow (the tracking layer does).
"""

from yolo_mlops.kubeflow.compiler import (
    CompileOptions,
    build_pipeline,
    compile_pipeline,
    compile_project,
)
from yolo_mlops.kubeflow.grouping import (
    GroupingError,
    PreflightError,
    StageGroup,
    group_stages,
    preflight_check,
)
from yolo_mlops.kubeflow.parameters import PIPELINE_PARAMETERS, PipelineParameter

__all__ = [
    "PIPELINE_PARAMETERS",
    "CompileOptions",
    "GroupingError",
    "PipelineParameter",
    "PreflightError",
    "StageGroup",
    "build_pipeline",
    "compile_pipeline",
    "compile_project",
    "group_stages",
    "preflight_check",
]
