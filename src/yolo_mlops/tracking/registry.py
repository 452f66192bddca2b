"""Log the detector as a pyfunc model, register a version, and apply the promotion gate.

Registry review uses aliases and tags only (stages are deprecated in MLflow 3):

- the logged model is created in the run's experiment, named after the registered model, and
  is the run's output (the UI's "Logged models"), with the evaluation metrics;
- every new version gets the alias ``challenger``, the tags ``precision``, ``recall``,
  ``mAP50``, ``mAP50-95``, ``speed_ms/inference``, ``dataset_sha256``, ``run_id``,
  ``git_commit``, ``base_weights.*``, ``training.precision`` (the run's, ``unknown`` for a run
  that did not train), and a model card as its description (:mod:`.model_card`,
  :mod:`.registry_review`);
- the gate (:mod:`.promotion`) moves ``champion`` to the new version when its mAP50-95 clears
  the floor and beats the current champion's by the margin. The decision and its numbers are
  written as version tags (``promotion.*``), run tags and run metrics (``verdict/*``).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Metric
from mlflow.models import Model

import yolo_mlops
from yolo_mlops.tracking import lineage, model_card, pyfunc_model, registry_review, reports
from yolo_mlops.tracking.promotion import (
    PromotionDecision,
    PromotionPolicy,
    champion_metrics,
    current_champion,
    decide_promotion,
    read_metric,
)
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
class Registration:
    """What to register and how: the ``register`` block as the registry needs it.

    Attributes:
        model_name: the registered model's name (also the logged model's).
        policy: the promotion gate's thresholds.
        challenger_alias: the alias every new version gets.
        champion_alias: the alias the gate moves to a version that clears it.
        predict_defaults: defaults of the predict params ``conf``, ``iou``, ``max_det``.
        serving_limits: the model's ``model_config`` (``max_pixels``, ``max_request_bytes``);
            keys left out keep :data:`pyfunc_model.DEFAULT_SERVING_LIMITS`.
    """

    model_name: str
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"
    predict_defaults: Mapping[str, Any] = field(default_factory=dict)
    serving_limits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _RunFacts:
    """What the registration reads about the run that trained the model."""

    run_id: str
    experiment_id: str
    run_name: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    dataset: model_card.DatasetFacts
    dataset_sha: str | None
    git_commit: str
    precision: str  # the run's training.precision tag; unknown when the run did not train


@dataclass(frozen=True)
class _LoggedVersion:
    """The logged model and the registered version it became."""

    model_id: str
    model_uri: str
    version: str


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


def _write_inference_checkpoint(checkpoint: Mapping[str, Any], folder: Path) -> Path:
    """The checkpoint without trainer state (smaller; only what inference needs)."""
    from yolo_mlops.yolo.io.checkpoint import save_checkpoint

    return save_checkpoint(
        folder / "model.pt", state_dict=checkpoint["state_dict"], config=checkpoint["config"]
    )


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
    registration: Registration,
    project_path: Path | None = None,
) -> dict[str, Any]:
    """Log ``checkpoint`` as a pyfunc model in ``run``, register it, apply the gate.

    The logged model is created in the run's own experiment, named after the registered model,
    linked to the run as its output and carries the run's step-0 metrics (the evaluation
    metrics). The version gets a model card as its description (see
    :mod:`yolo_mlops.tracking.model_card`) and the run the dataset as a dataset input.

    Args:
        run: the pipeline's run (its store is also the registry).
        checkpoint: the checkpoint dict (``config`` + ``state_dict``; trainer state is dropped).
        metrics: evaluation metrics with ``mAP50`` and ``mAP50-95`` (fractions).
        registration: the model name, aliases, promotion thresholds and serving defaults.
        project_path: the Kedro project root (dataset manifest, validation summary); cwd if None.

    Returns:
        The registration record (JSON-able): model name, version, URIs, aliases, decision.
    """
    project_path = Path(project_path or Path.cwd())
    client = run.client
    facts = _read_run(client, run.run_id, project_path)
    headline = {key: read_metric(metrics, key) for key, *_ in model_card.HEADLINE_METRICS}

    _ensure_eval_metrics(client, run.run_id, metrics)
    logged = _log_model(run, checkpoint, registration, facts, headline)
    decision, champion = _gate(client, registration, headline["mAP50-95"])
    tags = _version_tags(checkpoint, facts, headline, decision)
    aliases = _tag_version(client, registration, logged.version, tags, decision.promoted)

    registry_review.log_dataset_input(client, run.run_id, project_path, facts.dataset)
    card = _model_card(registration, facts, logged, decision, headline=headline, champion=champion)
    transition = _describe(client, card, registration.policy)
    _tag_run(client, card, decision)
    return {
        "status": "registered",
        "model_name": registration.model_name,
        "version": logged.version,
        "model_uri": f"models:/{registration.model_name}/{logged.version}",
        "logged_model_uri": logged.model_uri,
        "logged_model_id": logged.model_id,
        "run_id": run.run_id,
        "experiment_id": facts.experiment_id,
        "tracking_uri": run.uri,
        "aliases": aliases,
        "transition": transition,
        "metrics": {key: _finite(value) for key, value in headline.items()},
        "dataset_sha256": facts.dataset_sha,
        "git_commit": facts.git_commit,
        "promotion": {key: _finite(value) for key, value in asdict(decision).items()},
    }


def _read_run(client: MlflowClient, run_id: str, project_path: Path) -> _RunFacts:
    """The run's tags and params, with the project's dataset and git facts as fallbacks."""
    mlflow_run = client.get_run(run_id)
    tags, params = mlflow_run.data.tags, mlflow_run.data.params
    return _RunFacts(
        run_id=run_id,
        experiment_id=mlflow_run.info.experiment_id,
        run_name=mlflow_run.info.run_name or run_id,
        tags=tags,
        params=params,
        dataset=registry_review.dataset_facts(project_path, tags),
        dataset_sha=tags.get("data.archive_sha256") or lineage.dataset_sha256(project_path),
        git_commit=tags.get("git.commit") or lineage.git_tags(project_path)["git.commit"],
        precision=tags.get("training.precision", lineage.UNKNOWN),  # set when the run trained
    )


def _log_model(
    run: TrackedRun,
    checkpoint: Mapping[str, Any],
    registration: Registration,
    facts: _RunFacts,
    headline: Mapping[str, float],
) -> _LoggedVersion:
    """Log the pyfunc model into the run's experiment and register it as a new version."""
    client = run.client
    name = registration.model_name
    # Created here, in the run's experiment: Model.log alone would create it in the fluent
    # API's current experiment ("Default" when none is set), away from its run.
    logged = client.create_logged_model(
        facts.experiment_id,
        name=name,
        source_run_id=run.run_id,
        tags={
            "mAP50": str(headline["mAP50"]),
            "mAP50-95": str(headline["mAP50-95"]),
            "git_commit": facts.git_commit,
        },
        model_type="object-detection",
    )
    with tempfile.TemporaryDirectory() as tmp, using_tracking_uri(run.uri):
        info = Model.log(
            artifact_path=None,
            name=name,
            model_id=logged.model_id,
            flavor=mlflow.pyfunc,
            python_model=str(ENTRY_FILE),
            artifacts={"checkpoint": str(_write_inference_checkpoint(checkpoint, Path(tmp)))},
            code_paths=[str(Path(yolo_mlops.__file__).parent)],
            signature=pyfunc_model.model_signature(**dict(registration.predict_defaults)),
            model_config={**pyfunc_model.DEFAULT_SERVING_LIMITS, **registration.serving_limits},
            input_example=example_input(),
            pip_requirements=pinned_requirements(),
            registered_model_name=name,
            run_id=run.run_id,
        )
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    version = str(info.registered_model_version)
    logger.info("MLflow: logged model %s, registered %s v%s", info.model_uri, name, version)
    return _LoggedVersion(model_id=logged.model_id, model_uri=info.model_uri, version=version)


def _gate(
    client: MlflowClient, registration: Registration, challenger: float
) -> tuple[PromotionDecision, dict[str, float]]:
    """The gate's decision against the current champion, and the champion's headline metrics."""
    name = registration.model_name
    version, value = current_champion(client, name, registration.champion_alias)
    decision = decide_promotion(challenger, value, registration.policy, version)
    return decision, champion_metrics(client, name, version)


def _version_tags(
    checkpoint: Mapping[str, Any],
    facts: _RunFacts,
    headline: Mapping[str, float],
    decision: PromotionDecision,
) -> dict[str, Any]:
    """The new version's tags: metrics, lineage, and the gate's decision with its numbers."""
    return {
        **{key: value for key, value in headline.items() if math.isfinite(value)},
        "mAP50": headline["mAP50"],
        "mAP50-95": headline["mAP50-95"],
        "dataset_sha256": facts.dataset_sha or lineage.UNKNOWN,
        "run_id": facts.run_id,
        "git_commit": facts.git_commit,
        **lineage.checkpoint_weights_tags(checkpoint),
        "training.precision": facts.precision,
        "promotion.decision": decision.label,
        "promotion.reason": decision.reason,
        "promotion.champion_version_before": decision.champion_version or "none",
        "promotion.champion_mAP50-95_before": decision.champion_map50_95,
        "promotion.min_improvement": decision.min_improvement,
        "promotion.min_map50_95": decision.min_map50_95,
    }


def _tag_version(
    client: MlflowClient,
    registration: Registration,
    version: str,
    tags: Mapping[str, Any],
    promoted: bool,
) -> list[str]:
    """Set the version's tags and the challenger alias (and champion, if promoted)."""
    name = registration.model_name
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    aliases = [registration.challenger_alias]
    if promoted:
        aliases.append(registration.champion_alias)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return aliases


def _model_card(
    registration: Registration,
    facts: _RunFacts,
    logged: _LoggedVersion,
    decision: PromotionDecision,
    *,
    headline: Mapping[str, float],
    champion: Mapping[str, float],
) -> model_card.ModelCard:
    """The facts the version's description shows (``champion``: the champion's headline)."""
    return model_card.ModelCard(
        model_name=registration.model_name,
        version=logged.version,
        run_id=facts.run_id,
        experiment_id=facts.experiment_id,
        run_name=facts.run_name,
        metrics=headline,
        promoted=decision.promoted,
        reason=decision.reason,
        champion_version=decision.champion_version,
        champion_metrics=champion,
        challenger_alias=registration.challenger_alias,
        champion_alias=registration.champion_alias,
        dataset=facts.dataset,
        base_weights=registry_review.base_weights(facts.params, facts.tags),
        recipe=registry_review.recipe_line(facts.params),
        precision=facts.precision,
        git_commit=facts.git_commit,
        git_dirty=facts.tags.get("git.dirty"),
        logged_model_id=logged.model_id,
    )


def _describe(client: MlflowClient, card: model_card.ModelCard, policy: PromotionPolicy) -> str:
    """Write the model card as the version's description; the transition in one line."""
    registry_review.describe(
        client, card, min_map50_95=policy.min_map50_95, min_improvement=policy.min_improvement
    )
    transition = model_card.transition(card)
    logger.info("MLflow: %s v%s: %s", card.model_name, card.version, transition)
    return transition


def _tag_run(client: MlflowClient, card: model_card.ModelCard, decision: PromotionDecision) -> None:
    """The registration and the gate's verdict on the run (tags and ``verdict/*`` metrics)."""
    run_id = card.run_id
    client.set_tag(run_id, "registry.model_name", card.model_name)
    client.set_tag(run_id, "registry.version", card.version)
    client.set_tag(run_id, "promotion.decision", decision.label)
    client.set_tag(run_id, "promotion.reason", decision.reason)
    gate_values = (
        ("challenger", decision.challenger_map50_95),
        ("champion_before", decision.champion_map50_95),
    )
    for key, value in gate_values:
        if value is not None and math.isfinite(value):
            client.log_metric(run_id, f"{reports.GATE_PREFIX}/{key}_mAP50-95", value)


def _finite(value: Any) -> Any:
    """NaN/inf -> None so the record stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
