"""The KFP pipeline parameters and where each one lands in the Kedro run.

This is the one place that maps a Kubeflow run parameter (what a user sets in the KFP UI) to the
Kedro parameter it overrides (``kedro run --params key=value``) and/or the environment variable
it sets in the task container. Defaults are read from the project's configuration at compile
time, so a compiled pipeline starts from exactly what ``kedro run --env ENV`` would use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineParameter:
    """One KFP pipeline parameter.

    Attributes:
        name: the KFP parameter name (a Python identifier).
        type: ``int`` or ``str``; the KFP parameter type.
        kedro_key: dotted Kedro parameter it overrides (``block.key``), or ``None``.
        env_var: environment variable it sets in the task process, or ``None``.
        fallback: default used when the project configuration does not define ``kedro_key``.
        description: shown in the KFP UI / docs.
    """

    name: str
    type: type
    kedro_key: str | None
    env_var: str | None
    fallback: Any
    description: str

    @property
    def block(self) -> str | None:
        """Top-level Kedro parameter block (``training`` for ``training.epochs``)."""
        return self.kedro_key.split(".", 1)[0] if self.kedro_key else None


PIPELINE_PARAMETERS: tuple[PipelineParameter, ...] = (
    PipelineParameter("imgsz", int, "preprocessing.imgsz", None, 640, "Square input size, px."),
    PipelineParameter("epochs", int, "training.epochs", None, 100, "Training epochs."),
    PipelineParameter("batch", int, "training.batch", None, 16, "Training batch size, images."),
    PipelineParameter(
        "model_scale", str, "training.scale", None, "n", "YOLO11 scale: n, s, m, l or x."
    ),
    PipelineParameter(
        "data_source",
        str,
        "data_ingestion.source",
        None,
        "",
        "Dataset archive: a path inside the image/PVC or a URL.",
    ),
    PipelineParameter(
        "mlflow_tracking_uri",
        str,
        "tracking.uri",
        "MLFLOW_TRACKING_URI",
        "",
        "MLflow tracking URI; empty keeps the project's configured store.",
    ),
    PipelineParameter(
        "registered_model_name",
        str,
        "register.model_name",
        None,
        "yolo11n-coco128",
        "Name of the MLflow registered model.",
    ),
)

PARAMETERS_BY_NAME: dict[str, PipelineParameter] = {p.name: p for p in PIPELINE_PARAMETERS}


def lookup(params: Mapping[str, Any], dotted_key: str) -> tuple[bool, Any]:
    """Return ``(found, value)`` for ``dotted_key`` in a nested parameter mapping."""
    node: Any = params
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def parameter_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """Default value of every pipeline parameter, taken from the project parameters.

    Args:
        params: the resolved Kedro parameters of the compile environment (``context.params``).

    Returns:
        ``{parameter name: default}``; a parameter whose Kedro key is not configured (or is
        ``null``) gets its fallback, cast to the parameter's type.
    """
    defaults: dict[str, Any] = {}
    for parameter in PIPELINE_PARAMETERS:
        found, value = lookup(params, parameter.kedro_key) if parameter.kedro_key else (False, None)
        if not found or value is None:
            value = parameter.fallback
        defaults[parameter.name] = parameter.type(value)
    return defaults


def configured_kedro_keys(params: Mapping[str, Any]) -> set[str]:
    """Names of the pipeline parameters whose Kedro block exists in the project parameters.

    Only these are passed on as ``--params`` overrides: overriding a block the project does not
    define would add an unknown block. The block, not the key, is checked because an
    environment may override a block partly (``conf/ci`` sets only ``register.promotion``,
    while the block's dataclass still has ``model_name``).
    """
    names = set()
    for parameter in PIPELINE_PARAMETERS:
        if parameter.block and isinstance(params.get(parameter.block), Mapping):
            names.add(parameter.name)
        elif parameter.block:
            logger.warning(
                "Kedro parameter block %r is not configured: KFP parameter %r will not override %r",
                parameter.block,
                parameter.name,
                parameter.kedro_key,
            )
    return names
