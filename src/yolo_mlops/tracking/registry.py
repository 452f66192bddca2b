"""Log the detector as a pyfunc model, register a version, and run the promotion gate.

Registry review uses aliases and tags only (stages are deprecated in MLflow 3):

- the logged model is created in the run's experiment, named after the registered model, and
  is the run's output (the UI's "Logged models"), with the evaluation metrics;
- every new version gets the alias ``challenger``, the tags ``precision``, ``recall``,
  ``mAP50``, ``mAP50-95``, ``speed_ms/inference``, ``dataset_sha256``, ``run_id``,
  ``git_commit``, ``base_weights.*``, ``training.precision`` (the run's, ``unknown`` for a run
  that did not train), and a model card as its description (:mod:`.model_card`,
  :mod:`.registry_review`);
- the gate moves ``champion`` to the new version when its mAP50-95 clears the absolute floor
  ``min_map50_95`` AND beats the current champion's by at least ``min_improvement`` (strictly
  better when the margin is 0); with no champion yet, clearing the floor is enough. The decision
  and its numbers are written as version tags (``promotion.*``), run tags and run metrics
  (``verdict/*``).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model

import yolo_mlops
from yolo_mlops.tracking import lineage, model_card, pyfunc_model, registry_review, reports
from yolo_mlops.tracking.run import TrackedRun, using_tracking_uri

logger = logging.getLogger(__name__)

PINNED_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "opencv-python-headless",
    "pandas",
    "mlflow",
    "pyyaml",
)
ENTRY_FILE = Path(pyfunc_model.__file__).with_name("pyfunc_entry.py")


@dataclass(frozen=True)
class PromotionPolicy:
    """``register.promotion``: when a challenger becomes champion."""

    min_improvement: float = 0.0
    min_map50_95: float = 0.0


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the numbers it was made on."""

    promoted: bool
    reason: str
    challenger_map50_95: float
    champion_map50_95: float | None
    champion_version: str | None
    min_improvement: float
    min_map50_95: float


def decide_promotion(
    challenger: float,
    champion: float | None,
    policy: PromotionPolicy,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Pure gate: promote iff floor cleared and (no champion, or improvement >= margin and > 0)."""

    def verdict(promoted: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promoted,
            reason,
            challenger,
            champion,
            champion_version,
            policy.min_improvement,
            policy.min_map50_95,
        )

    if not math.isfinite(challenger) or challenger < policy.min_map50_95:
        return verdict(False, f"mAP50-95 {challenger:.4f} below floor {policy.min_map50_95:.4f}")
    if champion is None:
        return verdict(True, "no current champion with a mAP50-95 tag; floor cleared")
    gain = challenger - champion
    versus = f"mAP50-95 {challenger:.4f} vs champion v{champion_version}'s {champion:.4f}"
    if gain > 0 and gain >= policy.min_improvement:
        return verdict(True, f"{versus}: better by {gain:+.4f}")
    if gain <= 0:
        return verdict(False, f"{versus}: not strictly better ({gain:+.4f})")
    return verdict(
        False,
        f"{versus}: better by {gain:+.4f}, less than the required margin "
        f"{policy.min_improvement:.4f}",
    )


def pinned_requirements() -> list[str]:
    """``pkg==version`` for the inference dependencies as installed (local tags like +cu130 cut)."""
    pins = []
    for package in PINNED_PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{package}=={version.split('+')[0]}")
    return pins


def example_input(size: int = 64) -> pd.DataFrame:
    """A one-row input example: a synthetic JPEG (grey gradient with a dark square)."""
    ramp = np.linspace(40, 220, size, dtype=np.uint8)
    image = np.repeat(np.tile(ramp, (size, 1))[..., None], 3, axis=2)
    image[size // 4 : size // 2, size // 4 : size // 2] = 20
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:  # pragma: no cover - opencv always encodes a valid uint8 image
        raise RuntimeError("could not encode the example image")
    return pd.DataFrame({pyfunc_model.IMAGE_COLUMN: [encoded.tobytes()]})


def _metric(metrics: Mapping[str, Any], key: str) -> float:
    try:
        return float(metrics[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def _champion(client: MlflowClient, name: str, alias: str) -> tuple[str | None, float | None]:
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None, None
    try:
        return str(version.version), float(version.tags["mAP50-95"])
    except (KeyError, TypeError, ValueError):
        return str(version.version), None


def _write_inference_checkpoint(checkpoint: Mapping[str, Any], folder: Path) -> Path:
    """The checkpoint without trainer state (smaller; only what inference needs)."""
    from yolo_mlops.yolo.io.checkpoint import save_checkpoint

    return save_checkpoint(
        folder / "model.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )


def _champion_metrics(client: MlflowClient, name: str, version: str | None) -> dict[str, float]:
    """The champion's headline metrics from its version tags (older versions: fewer)."""
    if version is None:
        return {}
    try:
        tags = client.get_model_version(name, version).tags
    except MlflowException:
        return {}
    return {key: _metric(tags, key) for key, *_ in model_card.HEADLINE_METRICS if key in tags}


def _ensure_eval_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, Any]) -> None:
    """Put the evaluation metrics on the run at step 0 when the hook has not (a standalone
    ``register`` run). ``Model.log`` copies a run's step-0 metrics to the logged model."""
    existing = client.get_run(run_id).data.metrics
    now = int(time.time() * 1000)
    missing = [
        Metric(key, value, now, 0)
        for key, value in reports.numeric_items(metrics, reports.EVAL_PREFIX).items()
        if key not in existing and math.isfinite(value)
    ]
    if missing:
        client.log_batch(run_id, metrics=missing)


def log_and_register(
    run: TrackedRun,
    checkpoint: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    model_name: str,
    policy: PromotionPolicy,
    challenger_alias: str = "challenger",
    champion_alias: str = "champion",
    predict_defaults: Mapping[str, Any] | None = None,
    project_path: Path | None = None,
    serving_limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log ``checkpoint`` as a pyfunc model in ``run``, register it, apply the gate.

    The logged model is created in the run's own experiment, named ``model_name``, linked to
    the run as its output and carries the run's step-0 metrics (the evaluation metrics). The
    version gets a model card as its description (see :mod:`yolo_mlops.tracking.model_card`)
    and the run the dataset as a dataset input.

    Args:
        run: the pipeline's run (its store is also the registry).
        checkpoint: the checkpoint dict (``config`` + ``state_dict``; trainer state is dropped).
        metrics: evaluation metrics with ``mAP50`` and ``mAP50-95`` (fractions).
        model_name: registered model name.
        policy: promotion thresholds.
        predict_defaults: defaults of the predict params ``conf``, ``iou``, ``max_det``.
        project_path: the Kedro project root (dataset manifest, validation summary); cwd if None.
        serving_limits: the model's ``model_config`` (``max_pixels``, ``max_request_bytes``).

    Returns:
        The registration record (JSON-able): model name, version, URIs, aliases, decision.
    """
    project_path = Path(project_path or Path.cwd())
    client = MlflowClient(tracking_uri=run.uri)
    mlflow_run = client.get_run(run.run_id)
    run_tags, run_params = mlflow_run.data.tags, mlflow_run.data.params
    experiment_id = mlflow_run.info.experiment_id
    dataset_sha = run_tags.get("data.archive_sha256") or lineage.dataset_sha256(project_path)
    git_commit = run_tags.get("git.commit") or lineage.git_tags(project_path)["git.commit"]
    trained_in = run_tags.get("training.precision", lineage.UNKNOWN)  # set when the run trained
    map50, map50_95 = _metric(metrics, "mAP50"), _metric(metrics, "mAP50-95")
    headline = {key: _metric(metrics, key) for key, *_ in model_card.HEADLINE_METRICS}
    signature = pyfunc_model.model_signature(**dict(predict_defaults or {}))

    _ensure_eval_metrics(client, run.run_id, metrics)
    # Created here, in the run's experiment: Model.log alone would create it in the fluent
    # API's current experiment ("Default" when none is set), away from its run.
    logged = client.create_logged_model(
        experiment_id,
        name=model_name,
        source_run_id=run.run_id,
        tags={"mAP50": str(map50), "mAP50-95": str(map50_95), "git_commit": git_commit},
        model_type="object-detection",
    )
    with tempfile.TemporaryDirectory() as tmp, using_tracking_uri(run.uri):
        ckpt_path = _write_inference_checkpoint(checkpoint, Path(tmp))
        info = Model.log(
            artifact_path=None,
            name=model_name,
            model_id=logged.model_id,
            flavor=mlflow.pyfunc,
            python_model=str(ENTRY_FILE),
            artifacts={"checkpoint": str(ckpt_path)},
            code_paths=[str(Path(yolo_mlops.__file__).parent)],
            signature=signature,
            model_config={**pyfunc_model.DEFAULT_SERVING_LIMITS, **dict(serving_limits or {})},
            input_example=example_input(),
            pip_requirements=pinned_requirements(),
            registered_model_name=model_name,
            run_id=run.run_id,
        )
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    version = str(info.registered_model_version)
    logger.info("MLflow: logged model %s, registered %s v%s", info.model_uri, model_name, version)

    champion_version, champion_value = _champion(client, model_name, champion_alias)
    champion_metrics = _champion_metrics(client, model_name, champion_version)
    decision = decide_promotion(map50_95, champion_value, policy, champion_version)
    version_tags = {
        **{key: value for key, value in headline.items() if math.isfinite(value)},
        "mAP50": map50,
        "mAP50-95": map50_95,
        "dataset_sha256": dataset_sha or lineage.UNKNOWN,
        "run_id": run.run_id,
        "git_commit": git_commit,
        **lineage.checkpoint_weights_tags(checkpoint),
        "training.precision": trained_in,
        "promotion.decision": "promoted" if decision.promoted else "not_promoted",
        "promotion.reason": decision.reason,
        "promotion.champion_version_before": champion_version or "none",
        "promotion.champion_mAP50-95_before": champion_value,
        "promotion.min_improvement": policy.min_improvement,
        "promotion.min_map50_95": policy.min_map50_95,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    client.set_registered_model_alias(model_name, challenger_alias, version)
    aliases = [challenger_alias]
    if decision.promoted:
        client.set_registered_model_alias(model_name, champion_alias, version)
        aliases.append(champion_alias)

    facts = registry_review.dataset_facts(project_path, run_tags)
    registry_review.log_dataset_input(client, run.run_id, project_path, facts)
    card = model_card.ModelCard(
        model_name=model_name,
        version=version,
        run_id=run.run_id,
        experiment_id=experiment_id,
        run_name=mlflow_run.info.run_name or run.run_id,
        metrics=headline,
        promoted=decision.promoted,
        reason=decision.reason,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        challenger_alias=challenger_alias,
        champion_alias=champion_alias,
        dataset=facts,
        base_weights=registry_review.base_weights(run_params, run_tags),
        recipe=registry_review.recipe_line(run_params),
        precision=trained_in,
        git_commit=git_commit,
        git_dirty=run_tags.get("git.dirty"),
        logged_model_id=logged.model_id,
    )
    registry_review.describe(
        client, card, min_map50_95=policy.min_map50_95, min_improvement=policy.min_improvement
    )
    transition = model_card.transition(card)
    logger.info("MLflow: %s v%s: %s", model_name, version, transition)

    client.set_tag(run.run_id, "registry.model_name", model_name)
    client.set_tag(run.run_id, "registry.version", version)
    client.set_tag(run.run_id, "promotion.decision", version_tags["promotion.decision"])
    client.set_tag(run.run_id, "promotion.reason", decision.reason)
    for key, value in (("challenger", map50_95), ("champion_before", champion_value)):
        if value is not None and math.isfinite(value):
            client.log_metric(run.run_id, f"{reports.GATE_PREFIX}/{key}_mAP50-95", value)

    return {
        "status": "registered",
        "model_name": model_name,
        "version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "logged_model_uri": info.model_uri,
        "logged_model_id": logged.model_id,
        "run_id": run.run_id,
        "experiment_id": experiment_id,
        "tracking_uri": run.uri,
        "aliases": aliases,
        "transition": transition,
        "metrics": {key: _finite(value) for key, value in headline.items()},
        "dataset_sha256": dataset_sha,
        "git_commit": git_commit,
        "promotion": {k: _finite(v) for k, v in asdict(decision).items()},
    }


def _finite(value: Any) -> Any:
    """NaN/inf -> None so the record stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
