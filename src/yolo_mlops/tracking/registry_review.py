"""What a reviewer sees at registration: dataset input, model card, model description.

:mod:`yolo_mlops.tracking.registry` calls these after it logged and registered a version:

- :func:`dataset_facts` reads the dataset manifest (name, archive sha256, source) and the
  validation summary (image, instance and class counts) of the project;
- :func:`log_dataset_input` records the dataset as an MLflow dataset input of the run (the UI's
  "Datasets used"); the digest is the archive's sha256 prefix;
- :func:`recipe_line` and :func:`base_weights` read the run's params and tags;
- :func:`describe` writes the model card as the version's description and the registered
  model's description.

Every call here is best effort: a failure is logged and never fails the registration.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from yolo_mlops.tracking import lineage, model_card

logger = logging.getLogger(__name__)

VALIDATION_SUMMARY = Path("data/08_reporting/validation_summary.json")
DATASET_CONTEXT = "training"
# Tag (or param) that issue 12's base-weights lineage sets; read when present.
BASE_WEIGHTS_KEYS = ("base_weights", "base_weights.path", "training.pretrained")


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def dataset_facts(project_path: Path, run_tags: Mapping[str, str]) -> model_card.DatasetFacts:
    """Name, hashes and counts of the dataset this project trained on (unknown parts ``None``)."""
    project_path = Path(project_path)
    manifest = _read_json(project_path / lineage.MANIFEST)
    summary = _read_json(project_path / VALIDATION_SUMMARY)
    return model_card.DatasetFacts(
        name=str(manifest.get("name") or "unknown"),
        archive_sha256=run_tags.get("data.archive_sha256") or manifest.get("sha256"),
        dvc_md5=run_tags.get("data.dvc_md5") or lineage.dvc_data_hash(project_path),
        images=_int(summary.get("images")),
        instances=_int(summary.get("instances")),
        classes_present=_int(summary.get("classes_present")),
    )


def _source_uri(source: str | None, project_path: Path) -> str:
    if not source:
        return (Path(project_path) / lineage.RAW_DATA_PREFIX).resolve().as_uri()
    if "://" in source:
        return source
    path = Path(source)
    return (path if path.is_absolute() else Path(project_path) / path).resolve().as_uri()


def log_dataset_input(
    client: MlflowClient, run_id: str, project_path: Path, facts: model_card.DatasetFacts
) -> bool:
    """Log the dataset as a dataset input of ``run_id``; False when it is unknown or failed."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    if facts.name == "unknown" and facts.archive_sha256 is None:
        logger.info("MLflow: no dataset manifest; no dataset input logged")
        return False
    manifest = _read_json(Path(project_path) / lineage.MANIFEST)
    try:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": same class
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(_source_uri(manifest.get("source"), project_path))
        digest = (facts.archive_sha256 or "")[:16] or None
        dataset = MetaDataset(source, name=facts.name, digest=digest)
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT)]
        client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])
    except Exception as error:  # best effort: never fail the registration for it
        logger.warning("MLflow: could not log the dataset input: %s", error)
        return False
    return True


def _param(params: Mapping[str, str], *keys: str, default: str = "?") -> str:
    for key in keys:
        if params.get(key) not in (None, ""):
            return str(params[key])
    return default


def recipe_line(params: Mapping[str, str]) -> str:
    """The training recipe in one line, from the run's flattened params."""
    if "training.epochs" not in params:
        return "not in this run (the model was trained by an earlier run)"
    scale = _param(params, "training.scale")
    return (
        f"YOLO11{scale}, {_param(params, 'preprocessing.imgsz')} px, "
        f"{params['training.epochs']} epochs, batch {_param(params, 'training.batch')}, "
        f"optimizer {_param(params, 'training.optimizer')} "
        f"(lr0 {_param(params, 'training.lr0')}), seed {_param(params, 'training.seed')}, "
        f"device {_param(params, 'training.device')}"
    )


def base_weights(params: Mapping[str, str], tags: Mapping[str, str]) -> str | None:
    """The base weights the model started from, or ``None`` (from scratch)."""
    for key in BASE_WEIGHTS_KEYS:
        value = tags.get(key) or params.get(key)
        if value:
            return str(value)
    return None


def describe(
    client: MlflowClient,
    card: model_card.ModelCard,
    *,
    min_map50_95: float,
    min_improvement: float,
) -> None:
    """Write the model card and the registered model's description (best effort)."""
    try:
        client.update_model_version(card.model_name, card.version, model_card.render(card))
        client.update_registered_model(
            card.model_name,
            model_card.registered_model_description(
                card.model_name,
                min_map50_95=min_map50_95,
                min_improvement=min_improvement,
                challenger_alias=card.challenger_alias,
                champion_alias=card.champion_alias,
            ),
        )
    except Exception as error:  # best effort: the version and its aliases already exist
        logger.warning("MLflow: could not write the model descriptions: %s", error)
