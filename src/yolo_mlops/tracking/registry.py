"""Log the detector as a pyfunc model, register a version, and run the promotion gate.

Registry review uses aliases and tags only (stages are deprecated in MLflow 3):

- every new version gets the alias ``challenger`` and the tags ``mAP50``, ``mAP50-95``,
  ``dataset_sha256``, ``run_id``, ``git_commit``;
- the gate moves ``champion`` to the new version when its mAP50-95 clears the absolute floor
  ``min_map50_95`` AND beats the current champion's by at least ``min_improvement`` (strictly
  better when the margin is 0); with no champion yet, clearing the floor is enough. The decision
  and its numbers are written as version tags (``promotion.*``), run tags and run metrics.
"""

from __future__ import annotations

import logging
import math
import tempfile
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
from mlflow.exceptions import MlflowException
from mlflow.models import Model

import yolo_mlops
from yolo_mlops.tracking import lineage, pyfunc_model
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
    if gain > 0 and gain >= policy.min_improvement:
        return verdict(True, f"beats champion v{champion_version} by {gain:+.4f}")
    return verdict(
        False,
        f"improvement {gain:+.4f} over champion v{champion_version} "
        f"does not reach {policy.min_improvement:.4f}",
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
    serving_limits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log ``checkpoint`` as a pyfunc model in ``run``, register it, apply the gate.

    Args:
        run: the pipeline's run (its store is also the registry).
        checkpoint: the checkpoint dict (``config`` + ``state_dict``; trainer state is dropped).
        metrics: evaluation metrics with ``mAP50`` and ``mAP50-95`` (fractions).
        model_name: registered model name.
        policy: promotion thresholds.
        predict_defaults: defaults of the predict params ``conf``, ``iou``, ``max_det``.
        serving_limits: the model's ``model_config`` (``max_pixels``, ``max_request_bytes``).

    Returns:
        The registration record (JSON-able): model name, version, URIs, aliases, decision.
    """
    client = MlflowClient(tracking_uri=run.uri)
    run_tags = client.get_run(run.run_id).data.tags
    dataset_sha = run_tags.get("data.archive_sha256") or lineage.dataset_sha256(Path.cwd())
    git_commit = run_tags.get("git.commit") or lineage.git_tags(Path.cwd())["git.commit"]
    map50, map50_95 = _metric(metrics, "mAP50"), _metric(metrics, "mAP50-95")
    signature = pyfunc_model.model_signature(**dict(predict_defaults or {}))

    with tempfile.TemporaryDirectory() as tmp, using_tracking_uri(run.uri):
        ckpt_path = _write_inference_checkpoint(checkpoint, Path(tmp))
        info = Model.log(
            artifact_path=None,
            name="model",
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
            tags={"mAP50": map50, "mAP50-95": map50_95},
        )
    version = str(info.registered_model_version)
    logger.info("MLflow: logged model %s, registered %s v%s", info.model_uri, model_name, version)

    champion_version, champion_value = _champion(client, model_name, champion_alias)
    decision = decide_promotion(map50_95, champion_value, policy, champion_version)
    version_tags = {
        "mAP50": map50,
        "mAP50-95": map50_95,
        "dataset_sha256": dataset_sha or lineage.UNKNOWN,
        "run_id": run.run_id,
        "git_commit": git_commit,
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
    logger.info("MLflow: promotion gate for %s v%s: %s", model_name, version, decision.reason)

    client.set_tag(run.run_id, "registry.model_name", model_name)
    client.set_tag(run.run_id, "registry.version", version)
    client.set_tag(run.run_id, "promotion.decision", version_tags["promotion.decision"])
    client.set_tag(run.run_id, "promotion.reason", decision.reason)
    for key, value in (("challenger", map50_95), ("champion_before", champion_value)):
        if value is not None and math.isfinite(value):
            client.log_metric(run.run_id, f"promotion/{key}_mAP50-95", value)

    return {
        "status": "registered",
        "model_name": model_name,
        "version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "logged_model_uri": info.model_uri,
        "run_id": run.run_id,
        "tracking_uri": run.uri,
        "aliases": aliases,
        "metrics": {"mAP50": _finite(map50), "mAP50-95": _finite(map50_95)},
        "dataset_sha256": dataset_sha,
        "git_commit": git_commit,
        "promotion": {k: _finite(v) for k, v in asdict(decision).items()},
    }


def _finite(value: Any) -> Any:
    """NaN/inf -> None so the record stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
